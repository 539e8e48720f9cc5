"""`graphfuse ingest --offline`: a bulk load straight into a data directory that no server holds."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from graphfuse.server.cli.commands import main
from graphfuse.server.storage.lock import DataDirLock
from graphfuse.server.storage.store import GraphStore
from tests.server.conftest import RunningServer, server_config

TSV = "aspirin\ttreats\theadache\nibuprofen\ttreats\tfever\nheadache\tsymptom_of\tmigraine\n"


def ingest(data_dir: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["ingest", *args, "--offline", "--data-dir", str(data_dir)])
    return result.exit_code, result.output


def test_offline_ingest_then_a_server_answers_from_it(tmp_path: Path) -> None:
    path = tmp_path / "g.tsv"
    path.write_text(TSV)
    code, out = ingest(tmp_path / "data", str(path), "--graph", "med", "--json")
    assert code == 0, out
    summary = json.loads(out)
    assert (summary["new_triples"], summary["new_entities"]) == (3, 5)
    server = RunningServer(server_config(tmp_path / "data", demo=False))
    try:
        with server.client() as client:
            info = client.graph_info("med")
            assert (info.entities, info.triples) == (5, 3)
            answer = client.lookup("med", head="aspirin", relation="treats", facts_only=True)
            assert [t.tail_id for t in answer.triples] == ["headache"]
    finally:
        server.stop()


def test_a_bad_line_stores_nothing(tmp_path: Path) -> None:
    path = tmp_path / "g.tsv"
    path.write_text(TSV + "fever\tsymptom_of\n")
    code, out = ingest(tmp_path / "data", str(path), "--graph", "med")
    assert code == 1
    assert "nothing stored" in out and "g.tsv:4: expected 3 tab-separated fields" in out
    with GraphStore(tmp_path / "data") as store:
        assert not store.has_graph("med")


def test_a_held_data_dir_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "g.tsv"
    path.write_text(TSV)
    with DataDirLock(tmp_path / "data", "a graphfuse server"):
        code, out = ingest(tmp_path / "data", str(path), "--graph", "med")
        assert code == 1 and "in use by a graphfuse server" in out and "without --offline" in out
        result = CliRunner().invoke(main, ["serve", "--data-dir", str(tmp_path / "data"), "--port", "0"])
        assert result.exit_code == 1 and "in use by a graphfuse server" in result.output
    code, out = ingest(tmp_path / "data", str(path), "--graph", "med")  # released
    assert code == 0, out
