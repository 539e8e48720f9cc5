"""The evidence of an answer as a picture (SVG or PNG) through Graphviz's ``dot``, as the explorer draws it:
topic entities highlighted, answers marked, relation names on the edges, edge width by contribution."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from graphfuse.v1 import graphfuse_pb2 as pb

FORMATS = ("svg", "png")
_COLORS = {"topic": "#d9480f", "answer": "#2f6fdf", "other": "#98a2b3"}


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def evidence_dot(response: pb.AskResponse) -> str:
    """DOT source: every entity on an evidence path once, every hop once in its stored direction."""
    topics = {t.id for t in response.topic_entities}
    answers = {a.entity_id for a in response.answers}
    names: dict[str, str] = {}
    weights: dict[tuple[str, str, str], float] = {}
    for topic in response.topic_entities:
        names[topic.id] = topic.name or topic.id
    for answer in response.answers:
        names.setdefault(answer.entity_id, answer.name or answer.entity_id)
        for path in answer.evidence:
            for hop in path.hops:
                names.setdefault(hop.head_id, hop.head_name or hop.head_id)
                names.setdefault(hop.tail_id, hop.tail_name or hop.tail_id)
                key = (hop.head_id, hop.relation, hop.tail_id)
                weights[key] = weights.get(key, 0.0) + path.weight
    heaviest = max(weights.values(), default=1.0) or 1.0
    lines = [
        "digraph evidence {",
        '  graph [rankdir=LR, fontname="DejaVu Sans"];',
        '  node [shape=ellipse, style=filled, fontcolor=white, fontname="DejaVu Sans", fontsize=11];',
        '  edge [color="#8a94a6", fontname="DejaVu Sans", fontsize=9];',
    ]
    for entity, name in names.items():
        role = "topic" if entity in topics else "answer" if entity in answers else "other"
        lines.append(f"  {_quote(entity)} [label={_quote(name)}, fillcolor={_quote(_COLORS[role])}];")
    for (head, relation, tail), weight in weights.items():
        width = 1 + 5 * weight / heaviest
        lines.append(f"  {_quote(head)} -> {_quote(tail)} [label={_quote(relation)}, penwidth={width:.2f}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_picture(response: pb.AskResponse, path: Path, fmt: str) -> None:
    """Render the evidence to ``path`` in ``fmt`` (svg or png)."""
    if fmt not in FORMATS:
        raise ValueError(f"picture format {fmt!r} is not one of {', '.join(FORMATS)}")
    dot = shutil.which("dot")
    if dot is None:
        raise ValueError("drawing the evidence needs Graphviz's 'dot' (Debian package 'graphviz')")
    done = subprocess.run(
        [dot, f"-T{fmt}", "-o", str(path)], input=evidence_dot(response).encode(), capture_output=True
    )
    if done.returncode != 0:
        raise ValueError(f"dot failed: {done.stderr.decode(errors='replace').strip()[:500]}")
