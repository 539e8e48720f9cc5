"""Hostile input against every RPC (a few hundred cases; `python -m tests.helpers.fuzz` runs 10,000)."""

from __future__ import annotations

import pytest

from tests.helpers.fuzz import fuzz
from tests.server.conftest import RunningServer, server_config


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    server = RunningServer(server_config(tmp_path_factory.mktemp("fuzz")))
    yield server
    server.stop()


def test_every_answer_is_a_documented_status(fuzzed_server: RunningServer) -> None:
    seen: list[str] = []
    fuzz(fuzzed_server.target, examples=300, derandomize=True, on_result=seen.append)
    assert len(seen) >= 300
    assert "INVALID_ARGUMENT" in seen and "OK" in seen  # both refusals and successes were exercised
