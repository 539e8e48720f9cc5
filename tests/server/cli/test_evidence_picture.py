"""Evidence pictures: the DOT graph (no Graphviz needed) and `graphfuse ask --picture` (Graphviz's dot)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from graphfuse.server.cli.evidence_picture import evidence_dot, write_picture
from graphfuse.v1 import graphfuse_pb2 as pb
from tests.server.cli.test_commands import run
from tests.server.conftest import RunningServer


def response() -> pb.AskResponse:
    hop = pb.Hop(head_id="a", head_name="A", relation="r", tail_id="b", tail_name='B "quoted"')
    back = pb.Hop(head_id="c", head_name="C", relation="s", tail_id="b", tail_name="B", reversed=True)
    return pb.AskResponse(
        topic_entities=[pb.LinkedEntity(id="a", name="A")],
        answers=[
            pb.Answer(entity_id="b", name='B "quoted"', evidence=[pb.EvidencePath(hops=[hop], weight=0.8)]),
            pb.Answer(entity_id="c", name="C", evidence=[pb.EvidencePath(hops=[hop, back], weight=0.2)]),
        ],
    )


def test_dot_has_one_node_per_entity_and_edges_in_the_facts_direction() -> None:
    dot = evidence_dot(response())
    assert dot.count("[label=") - dot.count("->") == 3  # nodes a, b, c
    assert '"a" -> "b" [label="r", penwidth=6.00]' in dot  # both paths use a -r-> b: the heaviest
    assert '"c" -> "b" [label="s"' in dot  # walked backwards, drawn as stored
    assert '"a" [label="A", fillcolor="#d9480f"]' in dot  # the topic entity
    assert 'label="B \\"quoted\\""' in dot


@pytest.fixture(scope="module")
def dot_binary() -> str:
    path = shutil.which("dot")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Debian package 'graphviz' is missing (CI installs it in .ci/run)")
        pytest.skip("needs Debian package 'graphviz' (apt-get install graphviz)")
    return path


def test_ask_draws_svg_and_png(dot_binary: str, running_server: RunningServer, tmp_path: Path) -> None:
    svg, png = str(tmp_path / "evidence.svg"), str(tmp_path / "evidence.png")
    code, out = run(running_server, "ask", "what does bacterium cause", "--svg", svg, "--png", png)
    assert code == 0, out
    svg = (tmp_path / "evidence.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "bacterium" in svg and "causes" in svg
    assert (tmp_path / "evidence.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_picture_format_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'gif' is not one of svg, png"):
        write_picture(response(), tmp_path / "evidence.gif", "gif")
