"""One served graph: the in-memory graph, its linker and the encoded names of its entities and relations."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from encoder import TextEncoder
from gnn.graph import GraphUpdate, KnowledgeGraph
from gnn.linking import EntityLinker
from gnn.reasoner import TrainedReasoner, ZeroShotReasoner
from gnn.records import EntityRecord, TripleRecord
from server.checkpoints import load_checkpoint
from server.store import GraphStore

log = logging.getLogger(__name__)
ENCODE_CHUNK = 4096  # names embedded per encoder call (and per progress line) when loading a graph


class GraphState:
    """Everything needed to answer questions on one graph; mutated only on the compute thread."""

    def __init__(self, name: str, graph: KnowledgeGraph, dimensions: int) -> None:
        self.name = name
        self.graph = graph
        self.linker = EntityLinker(graph)
        self.entity_vectors = torch.zeros(0, dimensions)  # (N, D); rows follow graph entity indices
        self.relation_vectors = torch.zeros(0, dimensions)  # (R, D)
        self.reasoner: ZeroShotReasoner | TrainedReasoner = ZeroShotReasoner()
        self.checkpoint_mtime: float | None = None  # of the checkpoint file the reasoner came from

    @property
    def reasoner_name(self) -> str:
        if isinstance(self.reasoner, TrainedReasoner):
            return f"trained: {self.reasoner.description}"
        return "zero-shot"

    def use_checkpoint(self, path: Path) -> bool:
        """Answer with the checkpoint at ``path`` when it is new or changed, zero-shot when it is gone.

        Returns whether the reasoner changed. A checkpoint that cannot be read is logged and skipped.
        """
        mtime = path.stat().st_mtime if path.exists() else None
        if mtime == self.checkpoint_mtime:
            return False
        self.checkpoint_mtime = mtime
        if mtime is None:
            self.reasoner = ZeroShotReasoner()
            log.info("graph %s: checkpoint removed, answering zero-shot", self.name)
            return True
        try:
            model, meta = load_checkpoint(path)
        except ValueError as error:
            log.error("graph %s: %s; keeping the current reasoner", self.name, error)
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
        self.reasoner = TrainedReasoner(model, description=meta.get("description", path.name))
        log.info("graph %s: answering with %s", self.name, self.reasoner_name)
        return True

    def apply(
        self, records: Sequence[EntityRecord | TripleRecord], encoder: TextEncoder, store: GraphStore
    ) -> GraphUpdate:
        """Add records to the graph, then index and embed the names they introduced."""
        update = self.graph.add(records)
        self.linker.update(update.changed_entities)
        self.embed_names(encoder, store, update.changed_entities)
        return update

    def embed_names(
        self, encoder: TextEncoder, store: GraphStore, entities: Sequence[int] | None = None
    ) -> None:
        """Encode the names of ``entities`` (all when None) and of relations that have no vector yet.

        Vectors come from the store's embedding cache when present; new ones are written back to it.
        """
        graph = self.graph
        if entities is None:
            entities = range(graph.num_entities)
        grown = graph.num_entities - self.entity_vectors.shape[0]
        if grown > 0:
            self.entity_vectors = torch.cat([self.entity_vectors, torch.zeros(grown, encoder.dimensions)])
        if entities:
            index = torch.tensor(list(entities), dtype=torch.long)
            self.entity_vectors[index] = encode_cached(encoder, store, [graph.names[i] for i in entities])
        missing = range(self.relation_vectors.shape[0], graph.num_relations)
        if missing:
            vectors = encode_cached(encoder, store, [graph.relation_text(r) for r in missing])
            self.relation_vectors = torch.cat([self.relation_vectors, vectors])


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
