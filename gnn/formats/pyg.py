"""Knowledge graphs to and from PyTorch Geometric: ``Data`` (one node and edge set, ``edge_type`` per edge),
``HeteroData`` (node types from entity types, edge types ``(head type, relation, tail type)``) and back to
records, so that a PyG dataset can be ingested like any other graph file.

Ids, names and relation names travel as plain-Python list attributes (``node_ids``, ``node_names``,
``node_types``, ``relation_names``) beside the tensors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.data.records import EntityRecord, Record, TripleRecord

try:
    from torch_geometric.data import Data, HeteroData
except ModuleNotFoundError as error:  # pragma: no cover - depends on the environment
    raise ModuleNotFoundError(
        "graphfuse.gnn.formats.pyg needs torch-geometric, a graphfuse dependency: "
        "pip install 'torch-geometric==2.8.1'"
    ) from error

__all__ = ["UNTYPED", "records_from_data", "split_records", "to_data", "to_hetero_data"]

UNTYPED = "entity"  # the node type of untyped entities in HeteroData
UNRELATED = "related_to"  # the relation of edges without an edge_type


def to_data(graph: KnowledgeGraph) -> Data:
    """The graph as one homogeneous ``Data``.

    Args:
        graph: the knowledge graph.

    Returns:
        ``Data`` with ``edge_index`` ``(2, E)``, ``edge_type`` ``(E,)`` (relation index), ``num_nodes`` and
        the lists ``node_ids``, ``node_names``, ``node_types`` ("" when untyped) and ``relation_names``.
    """
    heads, rels, tails = graph.edges
    return Data(
        edge_index=torch.stack([heads, tails]).long(),
        edge_type=rels.clone().long(),
        num_nodes=graph.num_entities,
        node_ids=list(graph.entity_ids),
        node_names=list(graph.names),
        node_types=list(graph.types),
        relation_names=list(graph.relation_ids),
    )


def to_hetero_data(graph: KnowledgeGraph) -> HeteroData:
    """The graph as ``HeteroData``: one node type per entity type (untyped entities are ``"entity"``), one
    edge type ``(head type, relation id, tail type)`` per combination present, in per-type local indices.

    Args:
        graph: the knowledge graph.

    Returns:
        ``HeteroData`` with ``num_nodes``, ``node_ids`` and ``node_names`` per node type and ``edge_index``
        per edge type.
    """
    data = HeteroData()
    node_types = [t or UNTYPED for t in graph.types]
    kinds = list(dict.fromkeys(node_types))
    kind_of = torch.tensor([kinds.index(t) for t in node_types], dtype=torch.long)  # (N,)
    local = torch.zeros(graph.num_entities, dtype=torch.long)  # index of each entity within its type
    for k, kind in enumerate(kinds):
        members = (kind_of == k).nonzero().flatten()
        local[members] = torch.arange(members.numel())
        store = data[kind]
        store.num_nodes = members.numel()
        store.node_ids = [graph.entity_ids[i] for i in members.tolist()]
        store.node_names = [graph.names[i] for i in members.tolist()]
    heads, rels, tails = graph.edges
    if heads.numel():
        keys, which = torch.unique(
            torch.stack([kind_of[heads], rels, kind_of[tails]]), dim=1, return_inverse=True
        )
        for k, (head_kind, rel, tail_kind) in enumerate(keys.T.tolist()):
            edges = (which == k).nonzero().flatten()
            edge_type = (kinds[head_kind], graph.relation_ids[rel], kinds[tail_kind])
            data[edge_type].edge_index = torch.stack([local[heads[edges]], local[tails[edges]]])
    return data


def records_from_data(
    data: Data | HeteroData,
    *,
    relation_names: Sequence[str] | None = None,
    node_ids: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
) -> list[Record]:
    """Entity and triple records of a PyG graph (the reverse of :func:`to_data` / :func:`to_hetero_data`).

    Args:
        data: a ``Data`` (ids from ``node_ids`` or ``str(index)``, relations from ``relation_names`` by
            ``edge_type``, else ``f"r{edge_type}"``, else ``"related_to"``) or a ``HeteroData`` (ids
            ``f"{node_type}:{index}"`` unless ``node_ids`` is set, types from node types, so untyped entities
            come back as ``"entity"``; relations from edge types).
        relation_names: relation name per ``edge_type`` (``Data`` only); overrides the attribute.
        node_ids: entity id per node (per node type for ``HeteroData``); overrides the attribute.

    Returns:
        One :class:`EntityRecord` per node, then one :class:`TripleRecord` per edge.
    """
    if isinstance(data, HeteroData):
        return _hetero_records(data, node_ids)
    n = data.num_nodes or 0
    ids = list(node_ids if node_ids is not None else data.get("node_ids") or [str(i) for i in range(n)])
    names, types = data.get("node_names"), data.get("node_types")
    entities: list[Record] = [
        EntityRecord(ids[i], names[i] if names else None, type=(types[i] or None) if types else None)
        for i in range(n)
    ]
    heads, tails = data.edge_index.tolist()
    edge_type = data.get("edge_type")
    if edge_type is None:
        rels = [UNRELATED] * len(heads)
    else:
        known = relation_names if relation_names is not None else data.get("relation_names")
        rels = [known[r] if known else f"r{r}" for r in edge_type.view(-1).tolist()]
    return entities + [TripleRecord(ids[h], r, ids[t]) for h, r, t in zip(heads, rels, tails, strict=True)]


def _hetero_records(data: HeteroData, node_ids: Mapping[str, Sequence[str]] | None) -> list[Record]:
    records: list[Record] = []
    ids: dict[str, list[str]] = {}
    for kind in data.node_types:
        store = data[kind]
        given = node_ids.get(kind) if node_ids is not None else None
        n = store.num_nodes or 0
        ids[kind] = list(given or store.get("node_ids") or [f"{kind}:{i}" for i in range(n)])
        names = store.get("node_names")
        records += [EntityRecord(ids[kind][i], names[i] if names else None, type=kind) for i in range(n)]
    for head_kind, rel, tail_kind in data.edge_types:
        head_ids, tail_ids = ids.get(head_kind), ids.get(tail_kind)
        for h, t in zip(*data[head_kind, rel, tail_kind].edge_index.tolist(), strict=True):
            head = head_ids[h] if head_ids is not None else f"{head_kind}:{h}"
            tail = tail_ids[t] if tail_ids is not None else f"{tail_kind}:{t}"
            records.append(TripleRecord(head, rel, tail))
    return records


def split_records(records: Sequence[Record]) -> tuple[list[EntityRecord], list[TripleRecord]]:
    """``(entities, triples)`` of ``records``, as :class:`KnowledgeGraph` takes them.

    Args:
        records: entity and triple records (others are dropped).

    Returns:
        The entity records and the triple records, each in order.
    """
    entities = [r for r in records if isinstance(r, EntityRecord)]
    return entities, [r for r in records if isinstance(r, TripleRecord)]
