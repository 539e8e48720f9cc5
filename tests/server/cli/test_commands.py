"""The `graphfuse` command line as a user runs it: client commands against a live server, and `serve`."""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from graphfuse.server.cli.commands import main
from graphfuse.server.client import Client
from tests.server.conftest import RunningServer


def run(server: RunningServer, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, [*args, "--target", server.target])
    return result.exit_code, result.output


def test_ask_prints_answers_with_evidence(running_server: RunningServer) -> None:
    code, out = run(running_server, "ask", "What can pharmacologic substance treat?")
    assert code == 0, out
    assert "topic entities: pharmacologic substance [exact 1.00]" in out
    assert re.search(r"^\s+1\. .+score \d\.\d{3}\s+fact", out, re.MULTILINE)
    assert "pharmacologic substance -" in out and out.count("answer: ") == 1
    assert "time " in out and "touched" in out


def test_ask_json(running_server: RunningServer) -> None:
    code, out = run(running_server, "ask", "what does antibiotic treat?", "--json", "--top-k", "3")
    assert code == 0, out
    response = json.loads(out)
    assert len(response["answers"]) == 3
    assert response["topic_entities"][0]["id"] == "antibiotic"
    assert response["answers"][0]["evidence"][0]["hops"][0]["relation"]


def test_lookup_and_json(running_server: RunningServer) -> None:
    code, out = run(running_server, "lookup", "--head", "antibiotic", "--relation", "treats")
    assert code == 0, out
    assert "antibiotic -treats-> disease or syndrome  1.00 fact" in out
    code, out = run(running_server, "lookup", "--head", "antibiotic", "--relation", "treats", "--json")
    assert json.loads(out)["resolved_relation"] == "treats"


def test_errors_are_one_line_with_the_status(running_server: RunningServer) -> None:
    code, out = run(running_server, "ask", "anything", "--graph", "missing")
    assert code == 1
    assert "NOT_FOUND" in out and "missing" in out
    code, out = run(running_server, "lookup")
    assert code == 1 and "INVALID_ARGUMENT" in out


def test_ingest_file_then_ask_it(running_server: RunningServer, tmp_path: Path) -> None:
    path = tmp_path / "family.tsv"
    path.write_text("alice\tparent_of\tbob\nbob\tparent_of\tcarol\ncarol\tparent_of\tdave\n")
    code, out = run(running_server, "ingest", str(path), "--graph", "family", "--json")
    assert code == 0, out
    summary = json.loads(out)
    assert (summary["records"], summary["new_triples"], summary["rejected_chunks"]) == (3, 3, 0)
    code, out = run(
        running_server, "ask", "who is the parent of the parent of dave", "--graph", "family", "--json"
    )
    assert code == 0, out
    assert json.loads(out)["topic_entities"][0]["id"] == "dave"
    code, out = run(running_server, "graphs")
    assert "family: 4 entities, 1 relations, 3 triples" in out


def test_ingest_stops_at_a_malformed_line(running_server: RunningServer, tmp_path: Path) -> None:
    path = tmp_path / "broken.tsv"
    path.write_text("a\tr\tb\nthis line has no tabs\nc\tr\td\n")
    code, out = run(running_server, "ingest", str(path), "--graph", "broken", "--chunk-size", "1")
    assert code == 1
    assert "broken.tsv:2" in out and "expected 3 tab-separated fields" in out
    with Client(running_server.target) as client:
        assert client.graph_info("broken").triples == 1  # the chunk before the bad line is stored


def test_ingest_with_a_relation_table_then_info_shows_the_words(
    running_server: RunningServer, tmp_path: Path
) -> None:
    triples = tmp_path / "edges.tsv"
    triples.write_text("aspirin\tCtD\theadache\nDrug X\tCpD\tfever\n")
    relations = tmp_path / "relations.csv"
    relations.write_text("id,name,inverse_name,aliases,description\nCtD,treats,treated by,cures|heals,\n")
    code, out = run(
        running_server,
        "ingest",
        str(triples),
        "--graph",
        "cli_words",
        "--relations",
        str(relations),
        "--json",
    )
    assert code == 0, out
    assert (json.loads(out)["records"], json.loads(out)["new_triples"]) == (3, 2)
    metaedges = tmp_path / "metaedges.tsv"  # Hetionet's shape, as a relation table FILE of its own
    metaedges.write_text("metaedge\tabbreviation\tedges\nCompound - palliates - Disease\tCpD\t390\n")
    code, out = run(running_server, "ingest", str(metaedges), "--graph", "cli_words", "--format", "relations")
    assert code == 0 and "1 records sent" in out, out
    code, out = run(running_server, "info", "--graph", "cli_words")
    assert code == 0, out
    assert out.startswith("cli_words: 4 entities, 2 relations, 2 triples; reasoner zero-shot")
    assert "  CtD: name 'treats'; inverse 'treated by'; aliases 'cures', 'heals'" in out
    assert "  CpD: name 'palliates'; aliases 'Compound palliates Disease'" in out
    assert re.search(r"^      head -> tail: .*treats.* \| cures \| heals", out, re.MULTILINE)
    assert re.search(r"^      tail -> head: .*treated by", out, re.MULTILINE)
    code, out = run(running_server, "info", "--graph", "cli_words", "--json")
    assert [w["id"] for w in json.loads(out)["relation_words"]] == ["CpD", "CtD"]
    bad = tmp_path / "bad.tsv"
    bad.write_text("id\tname\nCtD\t\x00\n")
    code, out = run(running_server, "ingest", str(triples), "--graph", "cli_words", "--relations", str(bad))
    assert code == 1 and "bad.tsv:2" in out and "relation name" in out


def test_ingest_a_node_table_and_an_edge_table(running_server: RunningServer, tmp_path: Path) -> None:
    nodes = tmp_path / "nodes.tsv"
    nodes.write_text(
        "id\tname\tkind\n"
        "Compound::DB00945\tAspirin\tCompound\n"
        "Compound::DB01050\tIbuprofen \tCompound\n"
        "Disease::DOID:10763\thypertension\tDisease\n"
        "Gene::7124\tTNF\tGene\n"
    )
    edges = tmp_path / "edges.sif.gz"
    with gzip.open(edges, "wt", encoding="utf-8") as file:
        file.write(
            "source\tmetaedge\ttarget\n"
            "Compound::DB00945\tCtD\tDisease::DOID:10763\n"
            "Compound::DB01050\tupregulates\tGene::7124\n"
            "Disease::DOID:10763\tupregulates\tGene::7124\n"
        )
    metaedges = tmp_path / "metaedges.tsv"
    metaedges.write_text("metaedge\tabbreviation\nCompound - treats - Disease\tCtD\n")
    args = [
        "--graph",
        "cli_nodes",
        "--nodes",
        str(nodes),
        "--edges",
        str(edges),
        "--relations",
        str(metaedges),
    ]
    code, out = run(running_server, "ingest", *args, "--json")
    assert code == 0, out
    summary = json.loads(out)  # 1 relation table row, 4 nodes, 2 relations split by kinds, 3 edges
    assert (summary["records"], summary["new_triples"], summary["rejected_chunks"]) == (10, 3, 0)
    code, out = run(running_server, "lookup", "--graph", "cli_nodes", "--tail", "Gene::7124", "--json")
    assert code == 0, out
    facts = [(t["head_name"], t["relation"], t["tail_name"]) for t in json.loads(out)["triples"]]
    assert sorted(facts) == [  # names joined to ids, 'Ibuprofen ' stripped; the verb split by kinds
        ("Ibuprofen", "Compound upregulates Gene", "TNF"),
        ("hypertension", "Disease upregulates Gene", "TNF"),
    ]
    code, out = run(running_server, "info", "--graph", "cli_nodes", "--json")
    assert code == 0, out
    words = {w["id"]: w for w in json.loads(out)["relation_words"]}
    assert sorted(words) == ["Compound upregulates Gene", "CtD", "Disease upregulates Gene"]
    assert words["CtD"]["name"] == "treats"
    assert words["Compound upregulates Gene"]["name"] == "upregulates"
    assert words["Compound upregulates Gene"]["forward_answers"].lower() == "gene"  # the tails' kind
    assert words["Disease upregulates Gene"]["inverse_answers"].lower() == "disease"  # the heads' kind


def test_ingest_takes_a_file_or_nodes_and_edges(running_server: RunningServer, tmp_path: Path) -> None:
    nodes = tmp_path / "nodes.csv"
    nodes.write_text("id,name\na,A\n")
    edges = tmp_path / "edges.csv"
    edges.write_text("source,target,relation\na,b,r\n")
    for args, message in [
        ([], "give either a graph FILE or --nodes and --edges"),
        ([str(edges), "--nodes", str(nodes), "--edges", str(edges)], "not both or neither"),
        (["--nodes", str(nodes)], "--nodes and --edges go together"),
        (["--edges", str(edges)], "--nodes and --edges go together"),
        (["--nodes", str(nodes), "--edges", str(edges), "--format", "csv"], "--format applies to FILE"),
    ]:
        code, out = run(running_server, "ingest", *args, "--graph", "cli_usage")
        assert code == 2 and message in out, (args, out)
    code, out = run(
        running_server, "ingest", "--graph", "cli_usage", "--nodes", str(nodes), "--edges", str(edges)
    )
    assert code == 1 and "edges.csv:2: target 'b' is not a node id of nodes.csv" in out, out


def test_serve_starts_reports_ready_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [
        sys.executable,
        "-m",
        "graphfuse.server.cli",
        "serve",
        "--port",
        "0",
        "--data-dir",
        str(tmp_path),
    ]
    for start in ("cold", "warm"):
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        try:
            assert process.stdout is not None
            ready = ""
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not ready:
                line = process.stdout.readline()
                if not line:
                    break
                if match := re.search(r"graphfuse ready on (\S+)", line):
                    ready = match.group(1)
            assert ready, f"{start} start: server never became ready"
            with Client(ready) as client:
                assert client.serving()
                assert client.graph_info("umls").triples == 6529
        finally:
            process.send_signal(signal.SIGTERM)
            _, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        assert "stopped" in err
        if start == "warm":
            assert "loading the UMLS demo graph" not in err  # read back from the store, not rebuilt


def test_serve_with_an_impossible_precision_stops_with_one_clear_line(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [
        sys.executable,
        "-m",
        "graphfuse.server.cli",
        "serve",
        "--port",
        "0",
        "--data-dir",
        str(tmp_path),
    ]
    result = subprocess.run(
        [*command, "--precision", "fp16"], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 1
    assert "Error: precision 'fp16' needs a CUDA device; on CPU use 'fast'" in result.stderr
    assert "Traceback" not in result.stderr and "stopped" in result.stderr


@pytest.mark.parametrize("command", ["ask", "lookup", "ingest", "graphs", "link", "info", "serve"])
def test_every_command_has_help(command: str) -> None:
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


def _modules_loaded_by(arguments: list[str], expected_output: str) -> str:
    """The heavy modules a fresh interpreter holds after running the CLI with ``arguments``."""
    probe = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from graphfuse.server.cli import main\n"
        f"result = CliRunner().invoke(main, {arguments!r})\n"
        f"assert {expected_output!r} in result.output, result.output\n"
        "print(sorted(m for m in ('torch', 'pandas', 'transformers') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_client_commands_start_without_the_server_or_torch(tmp_path):
    """Every command but serve, train and an offline ingest is a client: it must not pay for torch, pandas
    or the model at each call (seconds per call, and the CPU a streaming ingest shares with the server)."""
    triples = tmp_path / "g.tsv"
    triples.write_text("a\tr\tb\n")
    ingest = ["ingest", str(triples), "--graph", "g", "--target", "127.0.0.1:1", "--timeout", "1"]
    assert _modules_loaded_by(ingest, "UNAVAILABLE") == "[]"


def test_an_offline_ingest_loads_without_torch(tmp_path):
    """A bulk load reads columns with pandas and writes SQLite: torch's import is seconds of it."""
    triples = tmp_path / "g.tsv"
    triples.write_text("a\tr\tb\n")
    offline = ["ingest", str(triples), "--graph", "g", "--offline", "--data-dir", str(tmp_path / "data")]
    assert _modules_loaded_by(offline, "1 new triples") == "['pandas']"
