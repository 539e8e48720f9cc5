"""The compute thread tells how long its queued work has waited, and calls are shed by that bound."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import grpc
import pytest

from graphfuse.server.core.compute import ComputeThread, StandingQueue
from tests.server.conftest import RunningServer, server_config


def test_queue_delay_is_how_long_the_oldest_waiting_job_has_waited() -> None:
    compute = ComputeThread()
    try:
        assert compute.queue_delay() == 0.0
        gate = threading.Event()
        running = compute.submit(gate.wait)
        time.sleep(0.02)
        assert compute.queue_delay() == 0.0  # the running job waits for nothing
        queued = [compute.submit(time.sleep, 0.0) for _ in range(3)]
        time.sleep(0.05)
        assert 0.05 <= compute.queue_delay() < 1.0
        gate.set()
        assert running.result() and all(job.result() is None for job in queued)
        assert compute.queue_delay() == 0.0
    finally:
        compute.shutdown()


@pytest.fixture()
def bounded(tmp_path: Path):  # noqa: ANN201
    config = server_config(tmp_path)
    config.limits.max_queue_ms, config.limits.max_queue_interval_ms = 20, 0  # shed from the first look
    server = RunningServer(config)
    yield server
    server.stop()


def test_calls_are_refused_at_once_while_queued_work_waits_past_the_bound(bounded: RunningServer) -> None:
    compute = bounded.app.service.registry.compute
    gate = threading.Event()
    with bounded.client() as client:
        assert client.ask("what does bacterium cause?").answers  # admitted while nothing waits
        blocking = compute.submit(gate.wait)
        waiting = compute.submit(time.sleep, 0.0)
        time.sleep(0.05)  # it has waited 50 ms, past the 20 ms bound
        started = time.perf_counter()
        with pytest.raises(grpc.RpcError) as refused:
            client.ask("what does bacterium cause?")
        assert time.perf_counter() - started < 1.0  # refused at once, not after waiting
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "max_queue_ms" in refused.value.details()
        gate.set()
        blocking.result(), waiting.result()
        assert client.ask("what does bacterium cause?").answers  # admitted again once the queue drained


def test_a_burst_is_not_shed_and_a_standing_queue_is_until_it_drains_for_an_interval() -> None:
    gate = StandingQueue(bound=0.15, interval=0.5)
    assert not gate.look(0.4, now=0.0) and not gate.look(0.3, now=0.3)  # a burst: past the bound briefly
    assert not gate.look(0.0, now=0.4)  # drained: the interval starts again
    assert not gate.look(0.2, now=1.0) and not gate.look(0.3, now=1.4)
    assert gate.look(0.3, now=1.5) and gate.shedding  # past the bound for a whole interval: shed
    assert not gate.look(0.1, now=1.6)  # within the bound: admitted, still shedding
    assert gate.look(0.2, now=1.7)
    assert not gate.look(0.1, now=1.8) and not gate.look(0.0, now=2.4) and not gate.shedding
    assert not StandingQueue(bound=0.0, interval=0.0).look(10.0)  # no bound
