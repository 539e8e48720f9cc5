"""Multi-hop questions generated from any graph's triples, with varied phrasings and complete answer sets.

A question is a random relation path walked from a random topic entity; its answers are every entity the
path reaches (every edge of the path followed, so they are complete), minus the topic itself. Phrasings nest
one template per hop, so a user with only a graph can still train and evaluate a reasoner.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.data.relation_text import relation_words


@dataclass(frozen=True)
class Phrasings:
    """Templates per hop position and direction; ``{e}`` is the entity phrase, ``{r}`` the relation text."""

    forward_1: tuple[str, ...]
    reversed_1: tuple[str, ...]
    forward_inner: tuple[str, ...]
    reversed_inner: tuple[str, ...]
    forward_outer: tuple[str, ...]
    reversed_outer: tuple[str, ...]


TRAIN_PHRASINGS = Phrasings(
    forward_1=("what does {e} {r}?", "{e} {r} what?", "which entities does {e} {r}?", "tell me what {e} {r}"),
    reversed_1=(
        "what {r} {e}?",
        "which entities {r} {e}?",
        "name something that {r} {e}",
        "what is it that {r} {e}?",
    ),
    forward_inner=("the things that {e} {r}", "whatever {e} {r}", "what {e} {r}"),
    reversed_inner=("the things that {r} {e}", "whatever {r} {e}", "what {r} {e}"),
    forward_outer=("what do {e} {r}?", "which entities do {e} {r}?", "what is {r} by {e}?"),
    reversed_outer=("what {r} {e}?", "which entities {r} {e}?", "name what {r} {e}"),
)
# Held apart for evaluation: a model trained on TRAIN_PHRASINGS has never seen these wordings.
EVAL_PHRASINGS = Phrasings(
    forward_1=("list everything {e} {r}", "find the targets: {e} {r} ...", "{e} {r} which ones"),
    reversed_1=("who or what {r} {e}", "show all that {r} {e}", "I need the items that {r} {e}"),
    forward_inner=("those {e} {r}", "each item {e} {r}"),
    reversed_inner=("those that {r} {e}", "every item that {r} {e}"),
    forward_outer=("list everything {e} {r}", "show me what {e} {r}"),
    reversed_outer=("who or what {r} {e}", "find all that {r} {e}"),
)


@dataclass(frozen=True)
class GeneratedQuestion:
    question: str
    topic: str  # entity id
    answers: tuple[str, ...]  # entity ids
    path: tuple[str, ...]  # relation ids, "^-1" marking a reversed hop
    hops: int


def _phrase(
    graph: KnowledgeGraph, topic: int, directions: list[int], rng: random.Random, phrasings: Phrasings
) -> str:
    text = graph.names[topic]
    for hop, d in enumerate(directions):
        relation, reverse = graph.relation_of(d)
        r = relation_words(graph.relation_ids[relation])
        last = hop == len(directions) - 1
        if len(directions) == 1:
            templates = phrasings.reversed_1 if reverse else phrasings.forward_1
        elif last:
            templates = phrasings.reversed_outer if reverse else phrasings.forward_outer
        else:
            templates = phrasings.reversed_inner if reverse else phrasings.forward_inner
        text = rng.choice(templates).format(e=text, r=r)
    return text


def generate_questions(
    graph: KnowledgeGraph,
    count: int,
    hops: int,
    seed: int = 0,
    max_answers: int = 30,
    max_tries: int = 100,
    phrasings: Phrasings = TRAIN_PHRASINGS,
) -> list[GeneratedQuestion]:
    """``count`` distinct questions of exactly ``hops`` hops (fewer when the graph has too few).

    Args:
        graph: the graph to walk.
        count: questions wanted.
        hops: relation path length.
        seed: random seed (the same seed gives the same questions).
        max_answers: paths reaching more entities than this are skipped (such questions are not useful).
        max_tries: attempts per wanted question before giving up.
        phrasings: the templates (``EVAL_PHRASINGS`` to test on wordings a model was not trained on).
    """
    if hops < 1:
        raise ValueError(f"Expected 'hops' >= 1 (got {hops})")
    rng = random.Random(seed)
    heads, rels, tails = graph.edges
    if graph.num_edges == 0:
        return []
    walker = _Walker(graph)
    out: list[GeneratedQuestion] = []
    seen: set[tuple[int, tuple[int, ...]]] = set()
    for _ in range(count * max_tries):
        if len(out) >= count:
            break
        edge = rng.randrange(graph.num_edges)
        reverse = rng.random() < 0.5
        topic = int(tails[edge] if reverse else heads[edge])
        directions = [int(rels[edge]) + (graph.num_relations if reverse else 0)]
        node = int(heads[edge] if reverse else tails[edge])
        for _ in range(hops - 1):
            step = walker.random_step(node, directions[-1], rng)
            if step is None:
                break
            d, node = step
            directions.append(d)
        if len(directions) != hops or (topic, tuple(directions)) in seen:
            continue
        seen.add((topic, tuple(directions)))
        answers = sorted(walker.reach(topic, directions) - {topic})
        if not answers or len(answers) > max_answers:
            continue
        path = []
        for d in directions:
            relation, reversed_ = graph.relation_of(d)
            path.append(graph.relation_ids[relation] + ("^-1" if reversed_ else ""))
        out.append(
            GeneratedQuestion(
                _phrase(graph, topic, directions, rng, phrasings),
                graph.entity_ids[topic],
                tuple(graph.entity_ids[a] for a in answers),
                tuple(path),
                hops,
            )
        )
    return out


class _Walker:
    """The edges leaving each node, read once from the graph's transitions and kept for later walks."""

    def __init__(self, graph: KnowledgeGraph) -> None:
        self.graph = graph
        self._steps: dict[int, list[tuple[int, int]]] = {}  # node -> (directed relation, neighbour)
        self._successors: dict[int, dict[int, list[int]]] = {}  # node -> directed relation -> neighbours

    def steps(self, node: int) -> list[tuple[int, int]]:
        """Every ``(directed relation, neighbour)`` leaving ``node``, by directed relation."""
        if node not in self._steps:
            graph = self.graph
            steps = self._steps[node] = [
                (d, t)
                for d in range(2 * graph.num_relations)
                for t in graph.transition(graph.inverse(d)).sources_of(node).tolist()
            ]
            successors = self._successors[node] = {}
            for d, t in steps:
                successors.setdefault(d, []).append(t)
        return self._steps[node]

    def successors(self, node: int, d: int) -> list[int]:
        """The neighbours ``node`` reaches along directed relation ``d``."""
        self.steps(node)
        return self._successors[node].get(d, [])

    def reach(self, topic: int, directions: list[int] | tuple[int, ...]) -> set[int]:
        """Every entity the path ``directions`` reaches from ``topic`` (the topic too, if it comes back)."""
        frontier = {topic}
        for d in directions:
            frontier = {t for node in frontier for t in self.successors(node, d)}
        return frontier

    def random_step(self, node: int, previous: int, rng: random.Random) -> tuple[int, int] | None:
        """A random edge leaving ``node``, not walking straight back along ``previous``."""
        back = self.graph.inverse(previous)
        options = [step for step in self.steps(node) if step[0] != back]
        return rng.choice(options) if options else None
