"""The Python clients: round-robin over several servers, retries through the service config, AsyncClient."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import grpc
import pytest

from graphfuse.gnn.data.records import TripleRecord
from graphfuse.server.client import AsyncClient, Client, channel_target
from graphfuse.v1 import graphfuse_pb2 as pb
from graphfuse.v1 import graphfuse_pb2_grpc as pb_grpc
from tests.server.conftest import RunningServer, server_config
from tests.server.transport.test_gateway import ADMIN, Http, served  # noqa: F401 - served is a fixture


def asks_answered(server: RunningServer) -> float:
    labels = {"method": "Ask", "code": "OK"}
    return server.app.metrics.registry.get_sample_value("graphfuse_requests_total", labels) or 0.0


def test_targets_become_one_address_list() -> None:
    assert channel_target("localhost:50051") == "localhost:50051"
    assert channel_target(["127.0.0.1:1", "127.0.0.1:2"]) == "ipv4:127.0.0.1:1,127.0.0.1:2"
    assert channel_target("localhost:1, localhost:2").endswith(":1,127.0.0.1:2")
    with pytest.raises(ValueError, match="host:port"):
        channel_target(["127.0.0.1:1", "no-port"])
    with pytest.raises(ValueError, match="at least one target"):
        channel_target(" , ")


def test_round_robin_and_a_server_stopped_mid_run(tmp_path: Path) -> None:
    first = RunningServer(server_config(tmp_path / "a"))
    second = RunningServer(server_config(tmp_path / "b"))
    stopped = False
    try:
        with Client([first.target, second.target], timeout=30) as client:
            for _ in range(20):
                assert client.ask("what does bacterium cause", top_k=1).answers
            assert asks_answered(first) > 0 and asks_answered(second) > 0  # spread over both

            failures: list[BaseException] = []
            answered = 0

            def keep_asking() -> None:
                nonlocal answered
                for i in range(60):
                    try:
                        client.ask(f"what does bacterium cause ({i})", top_k=1)
                        answered += 1
                    except grpc.RpcError as error:
                        failures.append(error)

            caller = threading.Thread(target=keep_asking)
            before = asks_answered(first)
            caller.start()
            while answered < 10 and caller.is_alive():
                threading.Event().wait(0.01)
            second.stop()  # mid-run: in-flight calls finish (grace), later ones go to the first server
            stopped = True
            caller.join(timeout=120)
            assert not failures, failures[:3]
            assert answered == 60
            assert asks_answered(first) - before >= 60 - 10 - 10  # it took over once the second stopped
    finally:
        first.stop()
        if not stopped:
            second.stop()


class FlakyInfo(pb_grpc.InfoServicer):
    """Refuses the first ``failures`` calls with ``status``, then answers."""

    def __init__(self, failures: int, status: grpc.StatusCode) -> None:
        self.failures = failures
        self.status = status
        self.calls = 0

    async def Info(self, request: pb.InfoRequest, context: grpc.aio.ServicerContext) -> pb.InfoResponse:
        self.calls += 1
        if self.calls <= self.failures:
            await context.abort(self.status, "busy; retry later")
        return pb.InfoResponse(model="flaky")


@pytest.fixture(
    params=[grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.CANCELLED],  # CANCELLED: a stopping server's
    ids=["resource_exhausted", "cancelled"],  # calls still running at the end of its grace period
)
def flaky(request: pytest.FixtureRequest) -> tuple[str, FlakyInfo]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    servicer = FlakyInfo(failures=2, status=request.param)

    async def start() -> tuple[grpc.aio.Server, int]:
        server = grpc.aio.server()
        pb_grpc.add_InfoServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, port

    server, port = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    yield f"127.0.0.1:{port}", servicer
    asyncio.run_coroutine_threadsafe(server.stop(0), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)


def test_idempotent_calls_refused_for_now_are_retried_by_the_channel(flaky: tuple[str, FlakyInfo]) -> None:
    target, servicer = flaky
    with Client(target, timeout=30) as client:
        assert client.server_info().model == "flaky"
    assert servicer.calls == 3  # two refusals, then the answer
    servicer.calls, servicer.failures = 0, 1
    with Client(target, timeout=30, retries=1) as client:
        with pytest.raises(grpc.RpcError) as refused:
            client.server_info()
    assert refused.value.code() == servicer.status and servicer.calls == 1


def test_async_client_with_a_token(served) -> None:  # noqa: ANN001, F811
    server, _ = served

    async def run() -> None:
        async with AsyncClient(server.target, timeout=30, token=ADMIN) as client:
            assert await client.serving()
            answer = await client.ask("what does bacterium cause", top_k=2)
            assert len(answer.answers) == 2 and answer.topic_entities[0].id == "bacterium"
            facts = await client.lookup(head="antibiotic", relation="treats")
            assert facts.resolved_relation == "treats" and facts.total_facts > 0
            assert len((await client.embed(["one text"])).embeddings[0].values) == 384
            acks = [a async for a in client.ingest("async", [TripleRecord("x", "r", "y")])]
            assert [a.accepted for a in acks] == [True]
            assert (await client.graph_info("async")).triples == 1
        async with AsyncClient(server.target, timeout=30) as anonymous:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await anonymous.ask("what does bacterium cause")
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED

    asyncio.run(run())
