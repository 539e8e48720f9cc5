"""One served graph: the in-memory graph, its linker and the encoded names of its entities and relations."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from graphfuse.encoder import TextEncoder
from graphfuse.gnn.data.graph import GraphUpdate, KnowledgeGraph
from graphfuse.gnn.data.records import Record, RelationRecord, TripleColumns, has_words
from graphfuse.gnn.data.relation_text import RelationPhrases
from graphfuse.gnn.inference.link_predictions import LinkInference, LinkScorer
from graphfuse.gnn.inference.linking import EntityLinker
from graphfuse.gnn.inference.name_vectors import NameVectors
from graphfuse.gnn.inference.pattern_links import PatternLinkInference
from graphfuse.gnn.inference.reasoner import TrainedReasoner, ZeroShotReasoner
from graphfuse.gnn.inference.recommendations import Recommendation
from graphfuse.gnn.inference.relation_vectors import RelationVectors
from graphfuse.gnn.models.link_predictor import LinkEnsemble, LinkPredictor
from graphfuse.gnn.models.path_patterns import PathPatternPredictor
from graphfuse.gnn.models.question_reasoner import QuestionReasoner
from graphfuse.server.storage.checkpoints import load_checkpoint
from graphfuse.server.storage.store import GraphStore

log = logging.getLogger(__name__)
ENCODE_CHUNK = 4096  # names embedded per encoder call (and per progress line) when loading a graph
OUTGROWN_QUIET_S = 1.0  # see GraphState.outgrown_wait
OUTGROWN_MAX_WAIT_S = 30.0


class GraphState:
    """Everything needed to answer questions on one graph; mutated only on the compute thread."""

    def __init__(
        self,
        name: str,
        graph: KnowledgeGraph,
        dimensions: int,
        device: torch.device | str = "cpu",
        vector_dtype: torch.dtype = torch.float32,
    ) -> None:
        self.name = name
        self.graph = graph
        self.device = torch.device(device)  # where the recommender scores (the other graph models: CPU)
        self.linker = EntityLinker(graph)
        # (N, D) name vectors by graph entity index, held for named entities; fp16 halves them
        self.entity_vectors = NameVectors(dimensions, vector_dtype)
        self.relation_vectors = torch.zeros(0, dimensions)  # (R, D) each relation's name
        self._phrases: list[RelationPhrases | None] = []  # as last encoded, by relation
        self._phrased_edges: list[int] = []  # edges each relation had when last phrased
        # the latest phrases handed out to embed, by relation
        self._claimed: list[RelationPhrases | None] = []
        self._outgrown: set[int] = set()  # relations to phrase again in the background (see `apply`)
        self._outgrown_since = 0.0  # time.monotonic() when the first of them was left
        self._applied_at = 0.0  # ... and of the last update
        self._type_changes = graph.type_changes
        self._phrase_vectors: list[tuple[Tensor, Tensor, Tensor]] = []  # forward, inverse, (2, D) answers
        self._relations: RelationVectors | None = None
        # entities whose name vectors are still to come (their rows are zero meanwhile), oldest first
        self._pending: dict[int, None] = {}
        self._in_flight = 0  # names taken off the queue whose vectors are not yet set
        self._named = bytearray()  # by entity: 1 where an encoder reads its name
        self._named_count = 0
        self.reasoner: ZeroShotReasoner | TrainedReasoner = ZeroShotReasoner()
        self.link_predictor: LinkScorer | None = None
        self.recommender: Recommendation | None = None
        self._checkpoint_mtimes: dict[str, float | None] = {"qa": None, "link": None, "recommend": None}

    @property
    def reasoner_name(self) -> str:
        if isinstance(self.reasoner, TrainedReasoner):
            return f"trained: {self.reasoner.description}"
        return "zero-shot"

    @property
    def link_predictor_name(self) -> str:
        return self.link_predictor.description if self.link_predictor else ""

    @property
    def recommender_name(self) -> str:
        return self.recommender.description if self.recommender else ""

    def use_checkpoint(self, path: Path, task: str = "qa") -> bool:
        """Use the ``task`` checkpoint at ``path`` when it is new or changed; drop it when the file is gone.

        Without a question-reasoner checkpoint questions are answered zero-shot; without a link-predictor
        (or recommender) checkpoint Lookup returns stored facts only. Returns whether anything changed. A
        checkpoint that cannot be read, or does not fit this graph and encoder, is logged and skipped.
        """
        mtime = path.stat().st_mtime if path.exists() else None
        if mtime == self._checkpoint_mtimes[task]:
            return False
        self._checkpoint_mtimes[task] = mtime
        if mtime is None:
            if task == "qa":
                self.reasoner = ZeroShotReasoner()
            elif task == "link":
                self.link_predictor = None
            else:
                self.recommender = None
            log.info("graph %s: %s checkpoint removed", self.name, task)
            return True
        try:
            model, meta = load_checkpoint(path)
        except ValueError as error:
            log.error("graph %s: %s; keeping the current model", self.name, error)
            return False
        description = meta.get("description", path.name)
        if task == "recommend":
            if not isinstance(model, Recommendation):
                log.error("graph %s: %s is not a recommender checkpoint", self.name, path)
                return False
            self.recommender = model.to(self.device)
            log.info("graph %s: recommending with %s on %s", self.name, description, self.device)
            return True
        if task == "link" and isinstance(model, PathPatternPredictor):
            self.link_predictor = PatternLinkInference(model, description)
            log.info("graph %s: inferring Lookup triples with %s", self.name, description)
            return True
        if task == "link":
            if not isinstance(model, LinkPredictor | LinkEnsemble) or "relation_ids" not in meta:
                log.error("graph %s: %s is not a link predictor checkpoint", self.name, path)
                return False
            try:
                self.link_predictor = LinkInference(model, meta["relation_ids"], description)
            except ValueError as error:
                log.error("graph %s: %s: %s", self.name, path, error)
                return False
            log.info("graph %s: inferring Lookup triples with %s", self.name, description)
            return True
        if not isinstance(model, QuestionReasoner):
            log.error("graph %s: %s is not a question reasoner checkpoint", self.name, path)
            return False
        if model.config.text_dim != self.relation_vectors.shape[1]:
            log.error(
                "graph %s: %s expects %d-d text vectors, the encoder gives %d; keeping the current reasoner",
                self.name,
                path,
                model.config.text_dim,
                self.relation_vectors.shape[1],
            )
            return False
        self.reasoner = TrainedReasoner(model, description=description)
        log.info("graph %s: answering with %s", self.name, self.reasoner_name)
        return True

    @property
    def relations(self) -> RelationVectors:
        """Every relation's encoded phrases, each way, as the zero-shot reasoner matches them."""
        if self._relations is None:
            forward, inverse, answers = (
                zip(*self._phrase_vectors, strict=True) if self._phrase_vectors else ((), (), ())
            )
            self._relations = RelationVectors.from_phrases(
                self.relation_vectors,
                forward,
                inverse,
                torch.cat([torch.stack([a[0] for a in answers]), torch.stack([a[1] for a in answers])])
                if answers
                else self.relation_vectors.new_zeros(0, self.relation_vectors.shape[1]),
            )
        return self._relations

    def relation_words(self, limit: int) -> list[tuple[RelationRecord, RelationPhrases]]:
        """The first ``limit`` relations by id: the words their records gave (a bare record when none did)
        and the phrases questions are matched against, as encoded (compute thread)."""
        graph = self.graph
        words = []
        for relation in sorted(graph.relation_ids)[:limit]:
            r = graph.relation_index[relation]
            phrases = self._phrases[r] if r < len(self._phrases) else None
            record = graph.relation_records.get(r) or RelationRecord(relation)
            words.append((record, phrases or graph.relation_phrases(r)))
        return words

    def apply(
        self, records: Sequence[Record], triples: TripleColumns | None = None
    ) -> tuple[GraphUpdate, NamesToEmbed]:
        """Add records, then ``triples``, to the graph and index their names for linking; returns the relation
        phrases to embed now. New or renamed entities wait for their vectors in :meth:`queue_names`.

        New entities and relations read as zero vectors until `set_name_vectors` fills them in, so the vector
        tables always match the graph's size.
        """
        update = self.graph.add(records, triples)
        self.linker.update(update.changed_entities)
        waiting = bool(self._outgrown)
        names = self.names_to_embed((), update.described_relations, outgrown=False)
        self._applied_at = time.monotonic()
        if self._outgrown and not waiting:
            self._outgrown_since = self._applied_at
        self.queue_names(update.changed_entities)
        return update, names

    @property
    def phrases_outgrown(self) -> bool:
        """Whether relations wait to be phrased again: :meth:`apply` phrases new and described relations at
        once and leaves those that only grew (their typical entities may have changed) to
        :meth:`outgrown_phrases`, in the background."""
        return bool(self._outgrown)

    def outgrown_wait(self, now: float) -> float:
        """Seconds until the outgrown relations are due to be phrased again: once updates have paused for
        ``OUTGROWN_QUIET_S`` (a bulk load phrases them once, at its end, not at every doubling), or have
        waited ``OUTGROWN_MAX_WAIT_S`` under a steady stream of updates."""
        if not self._outgrown:
            return 0.0
        due = min(self._applied_at + OUTGROWN_QUIET_S, self._outgrown_since + OUTGROWN_MAX_WAIT_S)
        return max(due - now, 0.0)

    def outgrown_phrases(self) -> NamesToEmbed:
        """The phrases of the relations :meth:`apply` left to the background."""
        return self.names_to_embed((), sorted(self._outgrown))

    def requeue_phrases(self, names: NamesToEmbed) -> None:
        """Leave relations whose phrases failed to embed for a later pass."""
        self._outgrown.update(names.relations)

    def queue_names(self, entities: Iterable[int] | None = None) -> None:
        """Queue the names of ``entities`` (all when None) for :meth:`next_names`; names without words are
        skipped (see :meth:`names_to_embed`)."""
        graph = self.graph
        self._named.extend(bytes(graph.num_entities - len(self._named)))
        self.entity_vectors.grow(graph.num_entities)
        queued = []
        for i in range(graph.num_entities) if entities is None else entities:
            named = has_words(graph.names[i], graph.types[i])
            self._named_count += named - self._named[i]
            self._named[i] = named
            if named:
                self._pending[i] = None
                queued.append(i)
            else:
                self._pending.pop(i, None)
        self.entity_vectors.reserve(queued)

    def next_names(self, limit: int) -> NamesToEmbed:
        """Up to ``limit`` queued entity names, oldest first, taken off the queue until
        :meth:`set_queued_vectors` (which queues again any renamed meanwhile) or :meth:`requeue`."""
        taken = list(itertools.islice(self._pending, limit))
        for i in taken:
            del self._pending[i]
        self._in_flight += len(taken)
        return NamesToEmbed(taken, [], [self.graph.names[i] for i in taken], [])

    def requeue(self, names: NamesToEmbed) -> None:
        """Put entity names taken by :meth:`next_names` back at the front of the queue (embedding failed)."""
        self._in_flight -= len(names.entities)
        self._pending = dict.fromkeys([*names.entities, *self._pending])

    @property
    def names_pending(self) -> int:
        """Entity names queued or being embedded (their vectors are zero until then)."""
        return len(self._pending) + self._in_flight

    def name_progress(self) -> tuple[int, int]:
        """``(embedded, named)``: entities whose names have vectors, of those whose names an encoder reads."""
        return max(self._named_count - self.names_pending, 0), self._named_count

    def _relations_to_phrase(self, described: Sequence[int], counts: list[int], outgrown: bool) -> list[int]:
        """Relations whose phrases may have changed: never phrased, described by a record, or all when kinds
        changed; and those grown to twice the edges they were phrased with (their typical entities may
        differ), now with ``outgrown``, else noted for :meth:`outgrown_phrases`."""
        graph = self.graph
        if graph.type_changes != self._type_changes:
            self._type_changes = graph.type_changes
            self._outgrown.clear()
            return list(range(graph.num_relations))
        wanted = set(described) | {r for r in range(graph.num_relations) if self._phrases[r] is None}
        grown = {
            r for r in range(graph.num_relations) if counts[r] >= 2 * max(self._phrased_edges[r], 1)
        } - wanted
        if outgrown:
            wanted |= grown
        else:
            self._outgrown |= grown
        self._outgrown -= wanted
        return sorted(wanted)

    def names_to_embed(
        self, entities: Sequence[int] | None = None, described: Sequence[int] = (), outgrown: bool = True
    ) -> NamesToEmbed:
        """The names of ``entities`` (all when None) and the phrases of relations that need (new) vectors
        (``outgrown``: relations that only grew among them); grows the vector tables to the graph's size (new
        rows zero) and claims those relations.

        Names without words (``user:1234`` of a ``user``, ``42``) keep a zero vector: an encoder reads
        nothing into them, and an interaction graph has tens of thousands.
        """
        graph = self.graph
        entities = [
            i
            for i in (range(graph.num_entities) if entities is None else entities)
            if has_words(graph.names[i], graph.types[i])
        ]
        self.entity_vectors.grow(graph.num_entities)
        dimensions = self.entity_vectors.shape[1]
        grown = graph.num_relations - self.relation_vectors.shape[0]
        if grown > 0:
            empty = torch.zeros(0, dimensions)
            self.relation_vectors = torch.cat([self.relation_vectors, torch.zeros(grown, dimensions)])
            self._phrases += [None] * grown
            self._phrased_edges += [0] * grown
            self._claimed += [None] * grown
            self._phrase_vectors += [(empty, empty, torch.zeros(2, dimensions))] * grown
            self._relations = None
        counts = torch.bincount(graph.edges[1], minlength=graph.num_relations).tolist()
        phrases = []
        for r in self._relations_to_phrase(described, counts, outgrown):
            phrased = graph.relation_phrases(r)
            self._phrased_edges[r] = counts[r]
            if phrased != self._phrases[r]:
                self._claimed[r] = phrased
                phrases.append((r, phrased))
        texts = [graph.names[i] for i in entities]
        for _, phrased in phrases:
            texts += [*phrased.forward, *phrased.inverse, phrased.forward_answers, phrased.inverse_answers]
        return NamesToEmbed(entities, [r for r, _ in phrases], texts, [p for _, p in phrases])

    def set_name_vectors(self, names: NamesToEmbed, vectors: Tensor) -> None:
        """Store the vectors (len(names.texts), D) of `names`, in the order of its texts (an empty text's
        vector is zero)."""
        split = len(names.entities)
        self.entity_vectors.set(names.entities, vectors[:split])
        at = split
        for r, phrased in zip(names.relations, names.phrases, strict=True):
            forward = vectors[at : at + len(phrased.forward)]
            at += len(phrased.forward)
            inverse = vectors[at : at + len(phrased.inverse)]
            at += len(phrased.inverse)
            answers = vectors[at : at + 2].clone()
            at += 2
            answers[[not phrased.forward_answers, not phrased.inverse_answers]] = 0.0
            if self._claimed[r] is not phrased:  # phrased again since: those vectors are the ones to keep
                continue
            self.relation_vectors[r] = forward[0]
            self._phrase_vectors[r] = (forward, inverse, answers)
            self._phrases[r] = phrased
        if names.relations:
            self._relations = None

    def set_queued_vectors(self, names: NamesToEmbed, vectors: Tensor) -> None:
        """Store the vectors ``(len(names.texts), D)`` of names taken by :meth:`next_names`; an entity renamed
        since is queued again instead."""
        self._in_flight -= len(names.entities)
        self.entity_vectors.grow(self.graph.num_entities)
        now = self.graph.names
        same = [now[i] == text for i, text in zip(names.entities, names.texts, strict=True)]
        if any(same):
            current = [i for i, kept in zip(names.entities, same, strict=True) if kept]
            self.entity_vectors.set(current, vectors[torch.tensor(same)])
        self.queue_names(i for i, kept in zip(names.entities, same, strict=True) if not kept)

    def embed_names(self, encoder: TextEncoder, store: GraphStore) -> None:
        """Encode every name at once on the calling thread (training jobs; the store caches vectors)."""
        self.embed_relations(encoder, store)
        self.queue_names()
        names = self.next_names(self.names_pending)
        self.set_queued_vectors(names, encode_cached(encoder, store, names.texts))

    def embed_relations(self, encoder: TextEncoder, store: GraphStore) -> None:
        """Encode every relation's phrases on the calling thread (loading a graph)."""
        names = self.names_to_embed(())
        self.set_name_vectors(names, encode_cached(encoder, store, names.texts))


@dataclass
class NamesToEmbed:
    """Entities and relations that need vectors, and their texts: the entities' names first, then each
    relation's phrases (forward, inverse, then what its answers are each way)."""

    entities: list[int]
    relations: list[int]
    texts: list[str]
    phrases: list[RelationPhrases]


def encode_cached(encoder: TextEncoder, store: GraphStore, texts: Sequence[str]) -> Tensor:
    """``(len(texts), D)`` vectors, from the store's cache where possible; long names are truncated."""
    out = torch.zeros(len(texts), encoder.dimensions)
    for start in range(0, len(texts), ENCODE_CHUNK):
        chunk = list(texts[start : start + ENCODE_CHUNK])
        cached = store.get_embeddings(encoder.name, chunk)
        todo = sorted({t for t in chunk if t not in cached})
        if todo:
            fresh = encoder.encode(todo, truncate=True).vectors
            new = {t: fresh[i].numpy() for i, t in enumerate(todo)}
            store.put_embeddings(encoder.name, new)
            cached.update(new)
        out[start : start + len(chunk)] = torch.from_numpy(np.stack([cached[t] for t in chunk]))
        if len(texts) > ENCODE_CHUNK:
            log.info("embedded %d/%d names", min(start + ENCODE_CHUNK, len(texts)), len(texts))
    return out
