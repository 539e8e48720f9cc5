"""Admission control: calls beyond the in-flight limit are refused at once, and the limit is a flag."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from click.testing import CliRunner

from graphfuse.server.cli.commands import _parse_limits, main
from graphfuse.v1 import graphfuse_pb2 as pb
from graphfuse.v1 import graphfuse_pb2_grpc as pb_grpc
from tests.server.conftest import RunningServer, server_config


@pytest.fixture(scope="module")
def narrow_server(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    config = server_config(tmp_path_factory.mktemp("narrow"), demo=False)
    config.limits.max_concurrent_requests = 1
    server = RunningServer(config)
    yield server
    server.stop()


def test_calls_beyond_the_limit_are_shed_at_once(narrow_server: RunningServer) -> None:
    async def burst() -> list[grpc.StatusCode]:
        async with grpc.aio.insecure_channel(narrow_server.target) as channel:
            stub = pb_grpc.EmbedderStub(channel)

            async def one(i: int) -> grpc.StatusCode:
                try:
                    await stub.Embed(
                        pb.EmbedRequest(texts=[f"text number {i} {j}" for j in range(64)]), timeout=60
                    )
                    return grpc.StatusCode.OK
                except grpc.aio.AioRpcError as error:
                    assert "limit is 1" in (error.details() or "")
                    return error.code()

            return await asyncio.gather(*(one(i) for i in range(8)))

    codes = asyncio.run(burst())
    assert grpc.StatusCode.OK in codes
    assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes
    assert set(codes) == {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
    with narrow_server.client() as client:
        assert client.serving()  # health checks are never shed


def test_limits_parse_from_flags() -> None:
    limits = _parse_limits(("max_top_k=50", "max_concurrent_requests=8"))
    assert (limits.max_top_k, limits.max_concurrent_requests) == (50, 8)
    result = CliRunner().invoke(main, ["serve", "--limit", "max_top_kk=5"])
    assert result.exit_code == 2 and "max_top_k" in result.output
