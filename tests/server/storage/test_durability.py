"""Acknowledged ingest survives SIGKILL of the server: nothing lost, nothing partial, nothing twice.

The long version (20 runs) is `python -m tests.helpers.crash_ingest`."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.crash_ingest import crash_runs


def test_acknowledged_chunks_survive_kill_9(tmp_path: Path) -> None:
    report = crash_runs(tmp_path, runs=2, seed=3, max_delay=1.0)
    assert report.acknowledged_chunks > 0, "the server was killed before it acknowledged anything"
    assert report.lost == 0
    assert report.partial_chunks == 0
    assert report.duplicated == 0
    assert report.stored_triples >= 50 * report.acknowledged_chunks
