"""The compute thread tells how long its queued work has waited, and calls are shed by that bound."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import grpc
import pytest

from graphfuse.server.core.compute import ComputeThread
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
    config.limits.max_queue_ms = 20
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
