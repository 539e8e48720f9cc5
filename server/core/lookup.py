"""The Lookup and Link handlers: stored facts matching a head, relation or tail, then triples the graph's link
predictor infers or its recommender recommends (batched with other callers' lookups of the same kind); and the
entities a text may name."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from graphfuse.encoder import DeadlineExpired
from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.inference.evidence import Evidence, EvidenceHop
from graphfuse.gnn.inference.link_predictions import InferredTriple, LinkPattern, infer_many
from graphfuse.gnn.inference.linking import normalize
from graphfuse.server.core.errors import InvalidArgument, NotFound
from graphfuse.server.core.named import MATCH_CONFIDENCE, LinkedEntity, NamedEvidence, Topic, named_evidence
from graphfuse.server.core.reason_batcher import ReasonBatcher
from graphfuse.server.core.registry import Clock, GraphRegistry, Timing, Unembedded
from graphfuse.server.core.state import GraphState

EXPLAIN_PATHS = 3  # evidence paths per inferred Lookup triple


@dataclass(frozen=True)
class FactResult:
    head_id: str
    head_name: str
    relation: str
    tail_id: str
    tail_name: str
    score: float
    inferred: bool = False
    evidence: tuple[NamedEvidence, ...] = ()


@dataclass
class LookupResult:
    triples: list[FactResult]  # stored facts first, then inferred triples
    total_facts: int
    resolved: list[LinkedEntity]
    resolved_relation: str
    region_entities: int
    region_edges: int
    timing: Timing
    link_predictor: str = ""


class LookupHandler:
    """Answers lookups and entity links on the registry's graphs. Lookups that infer are batched by kind:
    link predictions on one batcher, recommendations on another, each run on the registry's compute thread.

    Args:
        registry: the graphs, the shared encode batcher, the compute thread, the limits, the link threshold.
    """

    def __init__(self, registry: GraphRegistry) -> None:
        self.registry = registry
        self.link_batcher: ReasonBatcher | None = None
        self.recommend_batcher: ReasonBatcher | None = None

    async def start(self) -> None:
        config = self.registry.config
        self.link_batcher, self.recommend_batcher = (  # one pass serves either, each kind queues apart
            ReasonBatcher(
                self.registry.compute,
                _infer_lookups,
                what,
                max_batch=size,
                max_queued=self.registry.limits.max_queued_texts,
            )
            for what, size in (("lookups", config.link_batch), ("recommendations", config.recommend_batch))
        )
        await self.link_batcher.start()
        await self.recommend_batcher.start()
        self.registry.queues += [self.link_batcher, self.recommend_batcher]

    async def close(self) -> None:
        for batcher in (self.link_batcher, self.recommend_batcher):
            if batcher is not None:
                await batcher.close()

    def _lookup_batcher(self, recommending: bool) -> ReasonBatcher:
        self.registry.check_ready()
        batcher = self.recommend_batcher if recommending else self.link_batcher
        assert batcher is not None
        return batcher

    async def lookup(
        self,
        graph: str,
        head: str = "",
        relation: str = "",
        tail: str = "",
        top_k: int = 0,
        *,
        exclude_facts: bool = False,
        facts_only: bool = False,
        min_score: float = 0.0,
        evidence: bool = True,
        deadline: float | None = None,
        min_sequence: int = 0,
    ) -> LookupResult:
        """Stored facts matching the given parts, then triples inferred by the graph's link predictor.

        ``top_k`` bounds the facts and the inferred triples separately; ``min_sequence`` as for `ask`.
        """
        registry = self.registry
        await registry.wait_for_sequence(min_sequence, deadline, graph)
        state = registry.graph(graph)
        registry.check_ready()
        if not (head or relation or tail):
            raise InvalidArgument("give at least one of head, relation and tail")
        for value, name in ((head, "head"), (relation, "relation"), (tail, "tail")):
            if value:
                registry.check_text(value, name)
        top_k = registry.check_top_k(top_k)
        if not 0.0 <= min_score <= 1.0:
            raise InvalidArgument(f"min_score must be between 0 and 1 (got {min_score})")
        if exclude_facts and facts_only:
            raise InvalidArgument("exclude_facts and facts_only together leave nothing to return")
        registry.check_queue_delay("lookup")
        clock = Clock()

        def resolve(
            vectors: dict[str, Tensor],
        ) -> tuple[list[LinkedEntity], LinkPattern, list[FactResult], int]:
            if deadline is not None and time.monotonic() >= deadline:
                raise DeadlineExpired("the deadline passed while the lookup waited for the compute thread")
            began = time.perf_counter()
            head_text = self._user_id(state, head)
            unmatched = [t for t in (head_text, tail) if t and not self._match_entity(state, t)]
            unmatched += [relation] if relation and self._match_relation(state, relation) is None else []
            if any(text not in vectors for text in unmatched):
                raise Unembedded(unmatched)
            resolved = []
            ends: dict[str, int | None] = {"head": None, "tail": None}
            for name, text in (("head", head_text), ("tail", tail)):
                if text:
                    topic = self._resolve_entity(state, text, name, vectors)
                    ends[name] = topic.index
                    resolved.append(topic.linked(state.graph))
            rel = self._resolve_relation(state, relation, vectors) if relation else None
            clock.add("encode_us", began)
            graph_ = state.graph
            pattern = LinkPattern(ends["head"], rel, ends["tail"], top_k, min_score, evidence)
            recommending = self._recommending(state, pattern, head)
            edges = graph_.match_edges(ends["head"], rel, ends["tail"])
            heads, rels, tails = graph_.edges
            # a recommendation leaves the user's known items out, unless only they are asked for
            shown = edges[:0] if exclude_facts or (recommending and not facts_only) else edges[:top_k]
            facts = [
                _triple_result(graph_, h, r, t, 1.0, (Evidence((EvidenceHop(h, r, t, False),), 1.0),))
                for h, r, t in zip(
                    heads[shown].tolist(), rels[shown].tolist(), tails[shown].tolist(), strict=True
                )
            ]
            return resolved, pattern, facts, int(edges.numel()), recommending

        resolved, pattern, facts, total_facts, recommending = await registry.on_compute_with_vectors(
            resolve, clock, deadline
        )
        began = time.perf_counter()
        predictor = None if facts_only else state.recommender if recommending else state.link_predictor
        inferred: list[FactResult] = []
        if predictor is not None:
            batcher = self._lookup_batcher(recommending)
            # batched with other lookups of its kind
            found = await batcher.submit(state, pattern, deadline, registry.queue_bound)
            inferred = [
                _triple_result(state.graph, t.head, t.relation, t.tail, t.score, t.evidence, True)
                for t in found
            ]
        clock.add("reason_us", began)
        graph_ = state.graph
        if predictor is not None:
            region = (graph_.num_entities, graph_.num_edges)  # message passing reads the whole graph
        else:
            region = (len({f.head_id for f in facts} | {f.tail_id for f in facts}), total_facts)
        return LookupResult(
            facts + inferred,
            total_facts,
            resolved,
            graph_.relation_ids[pattern.relation] if pattern.relation is not None else "",
            *region,
            clock.done(),
            predictor.description if predictor is not None else "",
        )

    @staticmethod
    def _user_id(state: GraphState, text: str) -> str:
        """``text``, or the id of the user it numbers when a recommender serves the graph (``1234`` ->
        ``user:1234``, as adjacency files are ingested) and no entity has the id ``text``."""
        recommender = state.recommender
        if recommender is None or not text or text in state.graph.entity_index:
            return text
        typed = f"{recommender.schema.user_type}:{text}"
        return typed if typed in state.graph.entity_index else text

    @staticmethod
    def _recommending(state: GraphState, pattern: LinkPattern, head: str) -> bool:
        """Whether the graph's recommender answers ``pattern``; a head that is no user is refused."""
        recommender = state.recommender
        if recommender is None or not recommender.serves(state.graph, pattern):
            return False
        assert pattern.head is not None
        if not recommender.is_user(state.graph, pattern.head):
            schema = recommender.schema
            found = state.graph.types[pattern.head] or "untyped"
            raise InvalidArgument(
                f"head {head!r} is a {found} entity; relation {schema.relation!r} recommends "
                f"{schema.item_type} entities to {schema.user_type} entities"
            )
        return True

    @staticmethod
    def _match_entity(state: GraphState, text: str) -> Topic | None:
        """The entity whose id, name or alias ``text`` is (by the linker), without embeddings."""
        found = state.linker.lookup(text)
        if not found:
            return None
        entity, method = found[0]
        return Topic(entity, MATCH_CONFIDENCE[method], text, method)

    @staticmethod
    def _match_relation(state: GraphState, text: str) -> int | None:
        """The relation whose id, name or alias ``text`` is, exactly or normalised, without embeddings."""
        graph = state.graph
        exact = graph.relation_index.get(text)
        if exact is not None:
            return exact
        wanted = normalize(text)
        found = next(
            (r for r in range(graph.num_relations) if normalize(graph.relation_ids[r]) == wanted), None
        )
        if found is not None:
            return found
        return next(
            (
                r
                for r, record in graph.relation_records.items()
                if wanted in {normalize(word) for word in (record.name or "", *record.aliases)}
            ),
            None,
        )

    def _resolve_entity(
        self, state: GraphState, text: str, field_name: str, vectors: dict[str, Tensor]
    ) -> Topic:
        """The matched entity, else the nearest by embedding (``vectors[text]``) above the link threshold."""
        matched = self._match_entity(state, text)
        if matched:
            return matched
        if state.graph.num_entities:
            scores, indices = state.entity_vectors.nearest(vectors[text], 1)
            if float(scores[0]) >= self.registry.config.link_threshold:
                return Topic(int(indices[0]), float(scores[0]), text, "embedding")
        raise NotFound(f"{field_name} {text!r} matches no entity of graph {state.name!r}")

    def _resolve_relation(self, state: GraphState, text: str, vectors: dict[str, Tensor]) -> int:
        """The matched relation, else the nearest by embedding (``vectors[text]``) above the threshold."""
        graph = state.graph
        matched = self._match_relation(state, text)
        if matched is not None:
            return matched
        if graph.num_relations:  # its best head-to-tail phrase (name, aliases, description)
            scores = state.relations.direction_similarity(vectors[text][None])[0, : graph.num_relations]
            best = int(torch.argmax(scores))
            if float(scores[best]) >= self.registry.config.link_threshold:
                return best
        known = ", ".join(sorted(graph.relation_ids)[:20])
        raise NotFound(f"relation {text!r} matches no relation of graph {state.name!r} (some known: {known})")

    async def link(
        self, graph: str, text: str, top_k: int = 0, truncate: bool = False
    ) -> tuple[list[LinkedEntity], Timing]:
        registry = self.registry
        state = registry.graph(graph)
        registry.check_ready()
        registry.check_text(text, "text")
        top_k = registry.check_top_k(top_k)
        clock = Clock()

        def run(vectors: dict[str, Tensor]) -> list[LinkedEntity]:
            candidates: dict[int, Topic] = {}
            for entity, method in state.linker.lookup(text):
                candidates[entity] = Topic(entity, MATCH_CONFIDENCE[method], text, method)
            for mention in state.linker.find_mentions(text):
                for entity in mention.entities:
                    score = 0.9 if mention.method == "exact" else 0.85
                    candidates.setdefault(entity, Topic(entity, score, mention.text, mention.method))
            if state.graph.num_entities and len(candidates) < top_k:
                if text not in vectors:
                    raise Unembedded([text])
                scores, indices = state.entity_vectors.nearest(vectors[text], top_k)
                for score, entity in zip(scores.tolist(), indices.tolist(), strict=True):
                    candidates.setdefault(entity, Topic(entity, max(score, 0.0), text, "embedding"))
            ranked = sorted(candidates.values(), key=lambda t: -t.score)[:top_k]
            return [t.linked(state.graph) for t in ranked]

        linked = await registry.on_compute_with_vectors(run, clock, None, truncate)
        return linked, clock.done()


def _triple_result(
    graph: KnowledgeGraph,
    h: int,
    r: int,
    t: int,
    score: float,
    evidence: Sequence[Evidence],
    inferred: bool = False,
) -> FactResult:
    return FactResult(
        graph.entity_ids[h],
        graph.names[h],
        graph.relation_ids[r],
        graph.entity_ids[t],
        graph.names[t],
        score,
        inferred,
        tuple(named_evidence(graph, e) for e in evidence),
    )


def _infer_lookups(state: GraphState, patterns: list[LinkPattern]) -> list[list[InferredTriple]]:
    """Every lookup of one batch: recommendations scored in one pass; link predictions scored in one pass
    and explained in one forward-backward pass. A model removed while the lookups waited infers nothing."""
    graph, recommender, predictor = state.graph, state.recommender, state.link_predictor
    found: list[list[InferredTriple]] = [[] for _ in patterns]
    asks = [recommender is not None and recommender.serves(graph, p) for p in patterns]
    if recommender is not None and any(asks):
        recommended = recommender.recommend_many(
            graph, [p for p, a in zip(patterns, asks, strict=True) if a], state.entity_vectors
        )
        for i in [i for i, a in enumerate(asks) if a]:
            found[i] = recommended.pop(0)
    if predictor is not None and not all(asks):
        linked = infer_many(
            predictor, graph, [p for p, a in zip(patterns, asks, strict=True) if not a], EXPLAIN_PATHS
        )
        for i in [i for i, a in enumerate(asks) if not a]:
            found[i] = linked.pop(0)
    return found
