"""The fused answer text: assembled by templates from the top answers and their strongest evidence."""

from __future__ import annotations

from collections.abc import Sequence

from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.inference.evidence import EvidenceHop
from graphfuse.gnn.inference.reasoner import Answer


def path_text(graph: KnowledgeGraph, hops: Sequence[EvidenceHop]) -> str:
    """``Ginger Rogers <-starred_actors- Top Hat``: the walk from the topic entity, edge by edge."""
    if not hops:
        return ""
    first = hops[0]
    parts = [graph.names[first.tail if first.reversed else first.head]]
    for hop in hops:
        relation = graph.relation_ids[hop.relation]
        if hop.reversed:
            parts.append(f"<-{relation}- {graph.names[hop.head]}")
        else:
            parts.append(f"-{relation}-> {graph.names[hop.tail]}")
    return " ".join(parts)


UNSURE_BELOW = 0.3  # a top answer scored below this is more likely wrong than right, and said so


def fuse_answer_text(graph: KnowledgeGraph, answers: Sequence[Answer], max_answers: int = 3) -> str:
    """``Top Hat, via Ginger Rogers <-starred_actors- Top Hat (0.93); ...``, or a no-answer sentence; when
    even the best answer scores low, the text says that no relation path fits the question well."""
    if not answers:
        return "No answer found in the graph."
    pieces = []
    for answer in answers[:max_answers]:
        name = graph.names[answer.entity]
        if answer.inferred:  # a predicted triple: its strongest pattern (or path) is why
            first = answer.evidence[0] if answer.evidence else None
            why = (first.pattern or path_text(graph, first.hops)) if first else ""
            pieces.append(f"{name}, inferred{f' from {why}' if why else ''} ({answer.score:.2f})")
        elif answer.evidence:
            pieces.append(f"{name}, via {path_text(graph, answer.evidence[0].hops)} ({answer.score:.2f})")
        else:
            pieces.append(f"{name} ({answer.score:.2f})")
    text = "; ".join(pieces)
    if answers[0].score < UNSURE_BELOW:
        return f"No relation path of the graph fits this question well; the closest answers: {text}"
    return text
