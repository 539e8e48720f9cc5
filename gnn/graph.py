"""The knowledge graph in memory: entity and relation ids, names, aliases, and per-relation sparse adjacency.

Edges are indexed by *directed relation* ``d`` in ``[0, 2R)``: ``d < R`` walks relation ``d`` from head to
tail, ``d >= R`` walks relation ``d - R`` backwards (the inverse edge). ``transition(d)`` moves probability
mass along ``d``: ``y = T_d @ x`` puts on every node the mass of its predecessors along ``d``.
"""

from __future__ import annotations

import dataclasses
import itertools
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from gnn.records import EntityRecord, Record, Retraction, TripleRecord, default_name

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")


@dataclass
class RelationAdjacency:
    """The sparse transition of one directed relation, stored over the rows that receive mass only.

    Memory is O(edges): ``rows`` are the destination nodes that have at least one edge along this
    direction and ``matrix`` is a ``(len(rows), N)`` CSR matrix of 1s from destinations to sources.
    """

    rows: Tensor  # (M,) sorted destination node ids
    matrix: Tensor  # (M, N) sparse CSR

    def apply(self, x: Tensor) -> Tensor:
        """``T_d @ x`` for a dense ``(N, B)`` block; returns ``(N, B)``."""
        out = x.new_zeros(x.shape)
        if self.rows.numel():
            out[self.rows] = (self.matrix @ x.to(self.matrix.dtype)).to(x.dtype)  # (M, B)
        return out

    def predecessors(self, node: int) -> Tensor:
        """Source nodes whose mass reaches ``node`` along this direction."""
        pos = int(torch.searchsorted(self.rows, node))
        if pos >= self.rows.numel() or int(self.rows[pos]) != node:
            return self.rows.new_empty(0)
        crow = self.matrix.crow_indices()
        return self.matrix.col_indices()[crow[pos] : crow[pos + 1]]


def _build_adjacency(dst: Tensor, src: Tensor, num_nodes: int) -> RelationAdjacency:
    order = torch.argsort(dst * num_nodes + src)
    dst, src = dst[order], src[order]
    rows, counts = torch.unique_consecutive(dst, return_counts=True)
    crow = torch.zeros(rows.numel() + 1, dtype=torch.long)
    crow[1:] = torch.cumsum(counts, 0)
    matrix = torch.sparse_csr_tensor(
        crow, src, torch.ones(src.numel()), size=(rows.numel(), num_nodes), check_invariants=False
    )
    return RelationAdjacency(rows, matrix)


@dataclass(frozen=True)
class StackedTransitions:
    """All directed relations at once: row ``i`` of ``matrix`` feeds node ``rows[i]`` along ``directions[i]``.

    ``matrix @ x`` computes every relation's moved mass in one sparse product (nnz = 2E); weighting each
    row by its direction's per-question weight and summing rows into their nodes gives
    ``sum_d T_d @ (x * w_d)``, since a per-question weight scales a whole column and commutes with ``T_d``.
    """

    matrix: Tensor  # (M, N) sparse CSR, M = number of (node, direction) pairs with an incoming edge
    transposed: Tensor  # (N, M) sparse CSR: matrix.T, for gradients
    rows: Tensor  # (M,) destination node of each row
    directions: Tensor  # (M,) directed relation of each row
    membership: Tensor  # (2R, M) sparse CSR: 1 where row i belongs to direction d
    transpose_order: Tensor  # (nnz,) transposed.values() == matrix.values()[transpose_order]
    row_of_value: Tensor  # (nnz,) the row of matrix each stored value is in
    direction_offsets: list[int]  # direction d owns rows direction_offsets[d] .. direction_offsets[d + 1]

    def with_values(self, values: Tensor) -> StackedTransitions:
        """The same structure with other edge values (``(nnz,)``, in ``matrix`` order): masks, weights."""
        matrix = torch.sparse_csr_tensor(
            self.matrix.crow_indices(),
            self.matrix.col_indices(),
            values,
            size=self.matrix.shape,
            check_invariants=False,
        )
        transposed = torch.sparse_csr_tensor(
            self.transposed.crow_indices(),
            self.transposed.col_indices(),
            values[self.transpose_order],
            size=self.transposed.shape,
            check_invariants=False,
        )
        return dataclasses.replace(self, matrix=matrix, transposed=transposed)

    def edge_keys(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(source, direction, destination)`` of every stored value, each ``(nnz,)``, matrix order."""
        return self.matrix.col_indices(), self.directions[self.row_of_value], self.rows[self.row_of_value]


@dataclass(frozen=True)
class GraphUpdate:
    """What one :meth:`KnowledgeGraph.add` changed."""

    new_entities: list[int]
    changed_entities: list[int]  # new, renamed or given new aliases
    new_relations: list[int]
    new_edges: int
    removed_edges: int = 0


class _EdgeKeySet(set):
    """The ``(head, relation, tail)`` keys of a graph built from tensors, filled from them on first use.

    Filling is one Python tuple per edge (~0.4 s per million edges), which a graph built for one batch of
    questions (:meth:`KnowledgeGraph.subgraph`) never needs: only updates and ``has_edge`` read the keys.
    """

    def __init__(self, heads: Tensor, rels: Tensor, tails: Tensor) -> None:
        super().__init__()
        self._pending: tuple[Tensor, Tensor, Tensor] | None = (heads, rels, tails)

    def _fill(self) -> None:
        pending = self._pending
        if pending is not None:  # two threads may both fill: adding the same keys twice is harmless
            super().update(zip(*(column.tolist() for column in pending), strict=True))
            self._pending = None

    def __contains__(self, key: object) -> bool:
        self._fill()
        return super().__contains__(key)

    def __len__(self) -> int:
        self._fill()
        return super().__len__()

    def __iter__(self):  # noqa: ANN204
        self._fill()
        return super().__iter__()

    def add(self, key: tuple[int, int, int]) -> None:
        self._fill()
        super().add(key)

    def discard(self, key: tuple[int, int, int]) -> None:
        self._fill()
        super().discard(key)

    def remove(self, key: tuple[int, int, int]) -> None:
        self._fill()
        super().remove(key)

    def __reduce__(self) -> tuple[type, tuple[list[tuple[int, int, int]]]]:  # copies and pickles as a set
        return set, (list(self),)


class KnowledgeGraph:
    """Entities, relations and triples of one graph, with per-relation adjacency built on demand.

    Args:
        entities: entity records (ids with optional names and aliases).
        triples: stored facts; their heads and tails become entities when not listed in ``entities``.
    """

    def __init__(self, entities: Iterable[EntityRecord] = (), triples: Iterable[TripleRecord] = ()) -> None:
        self.entity_ids: list[str] = []
        self.entity_index: dict[str, int] = {}
        self.names: list[str] = []
        self.aliases: dict[int, tuple[str, ...]] = {}
        self.types: list[str] = []  # node type per entity, "" when untyped
        self.retractions = 0  # stored edges removed so far: edge positions before them have moved
        self.type_changes = 0  # node types set on existing entities so far
        self.relation_ids: list[str] = []
        self.relation_index: dict[str, int] = {}
        self._heads = torch.empty(0, dtype=torch.long)
        self._rels = torch.empty(0, dtype=torch.long)
        self._tails = torch.empty(0, dtype=torch.long)
        self._edge_keys: set[tuple[int, int, int]] = set()
        self._adjacency: list[RelationAdjacency] | None = None
        self._out_degree: Tensor | None = None
        self._stacked: StackedTransitions | None = None
        self._of_type: dict[str, Tensor] = {}
        self.add(list(entities) + list(triples))

    @classmethod
    def from_tensors(
        cls,
        entity_ids: Sequence[str],
        relation_ids: Sequence[str],
        heads: Tensor,
        relations: Tensor,
        tails: Tensor,
        names: Sequence[str] | None = None,
        types: Sequence[str] | None = None,
        aliases: dict[int, tuple[str, ...]] | None = None,
    ) -> KnowledgeGraph:
        """A graph from id lists and edge index tensors, without a Python step per edge.

        Repeated edges are stored once (the first, in the given order), as :meth:`add` does.

        Args:
            entity_ids: distinct entity ids; entity ``i`` is ``entity_ids[i]``.
            relation_ids: distinct relation ids; relation ``r`` is ``relation_ids[r]``.
            heads, relations, tails: ``(E,)`` integer indices into those lists.
            names: display names (default: derived from the ids, as for records without a name).
            types: node types, ``""`` for untyped (default: all untyped).
            aliases: linking aliases by entity index (default: none).
        """
        n, r = len(entity_ids), len(relation_ids)
        edges = [torch.as_tensor(column) for column in (heads, relations, tails)]
        if any(column.dim() != 1 or column.dtype.is_floating_point for column in edges):
            raise ValueError(
                "Expected 'heads', 'relations' and 'tails' to be one-dimensional integer tensors "
                f"(got shapes {[tuple(c.shape) for c in edges]}, dtypes {[c.dtype for c in edges]})"
            )
        if len({column.numel() for column in edges}) != 1:
            raise ValueError(f"Expected edge tensors of one length (got {[c.numel() for c in edges]})")
        heads, relations, tails = (column.long() for column in edges)
        for name, column, size in (("heads", heads, n), ("relations", relations, r), ("tails", tails, n)):
            if column.numel() and (int(column.min()) < 0 or int(column.max()) >= size):
                raise ValueError(
                    f"Expected '{name}' in [0, {size}) (got [{int(column.min())}, {int(column.max())}])"
                )
        for name, ids in (("entity_ids", entity_ids), ("relation_ids", relation_ids)):
            if len(set(ids)) != len(ids):
                raise ValueError(f"Expected distinct '{name}' (got {len(ids) - len(set(ids))} repeated)")
        for name, values in (("names", names), ("types", types)):
            if values is not None and len(values) != n:
                raise ValueError(f"Expected {n} '{name}' (got {len(values)})")
        if heads.numel():  # keep the first of each repeated edge, in order
            _, inverse = torch.unique((heads * r + relations) * n + tails, return_inverse=True)
            first = torch.full((int(inverse.max()) + 1,), heads.numel(), dtype=torch.long)
            first = first.scatter_reduce_(0, inverse, torch.arange(heads.numel()), "amin")
            if first.numel() < heads.numel():
                keep = torch.sort(first).values
                heads, relations, tails = heads[keep], relations[keep], tails[keep]
        return cls._from_parts(
            list(entity_ids),
            list(names) if names is not None else [default_name(i) for i in entity_ids],
            list(types) if types is not None else [""] * n,
            dict(aliases or {}),
            list(relation_ids),
            heads,
            relations,
            tails,
        )

    def subgraph(self, entities: Tensor) -> KnowledgeGraph:
        """The induced subgraph on ``entities``: every stored edge with both ends among them.

        Sub-entity ``i`` is global entity ``entities[i]`` (pass them ascending to keep the global order, so
        ties between entities break the same way in both graphs). Relations are all kept, with the same
        indices in the same order, so relation vectors line up with both graphs; names, types and aliases
        come along. The edges are found with one vectorised pass over the edge tensors.

        Shapes:
            entities: ``(n,)`` distinct global entity indices.
        """
        entities = torch.as_tensor(entities)
        if entities.dim() != 1 or entities.dtype.is_floating_point:
            raise ValueError(
                f"Expected 'entities' to be a one-dimensional integer tensor (got shape "
                f"{tuple(entities.shape)}, dtype {entities.dtype})"
            )
        entities = entities.long()
        n = self.num_entities
        if entities.numel() and (int(entities.min()) < 0 or int(entities.max()) >= n):
            raise ValueError(
                f"Expected 'entities' in [0, {n}) (got [{int(entities.min())}, {int(entities.max())}])"
            )
        local = torch.full((n,), -1, dtype=torch.long)
        local[entities] = torch.arange(entities.numel())
        if int((local >= 0).sum()) != entities.numel():
            raise ValueError("Expected distinct 'entities' (got repeated indices)")
        heads, rels, tails = local[self._heads], self._rels, local[self._tails]  # (E,)
        inside = (heads >= 0) & (tails >= 0)
        kept = entities.tolist()
        aliases = self.aliases
        return self._from_parts(
            [self.entity_ids[i] for i in kept],
            [self.names[i] for i in kept],
            [self.types[i] for i in kept],
            {sub: aliases[i] for sub, i in enumerate(kept) if i in aliases} if aliases else {},
            list(self.relation_ids),
            heads[inside],
            rels[inside],
            tails[inside],
        )

    @classmethod
    def _from_parts(
        cls,
        entity_ids: list[str],
        names: list[str],
        types: list[str],
        aliases: dict[int, tuple[str, ...]],
        relation_ids: list[str],
        heads: Tensor,
        rels: Tensor,
        tails: Tensor,
    ) -> KnowledgeGraph:
        """A graph from checked parts (distinct ids, distinct in-range edges); the parts are not copied."""
        graph = cls()
        graph.entity_ids = entity_ids
        graph.entity_index = dict(zip(entity_ids, range(len(entity_ids)), strict=True))
        graph.names, graph.types, graph.aliases = names, types, aliases
        graph.relation_ids = relation_ids
        graph.relation_index = dict(zip(relation_ids, range(len(relation_ids)), strict=True))
        graph._heads, graph._rels, graph._tails = heads, rels, tails
        graph._edge_keys = _EdgeKeySet(heads, rels, tails)
        return graph

    # ------------------------------------------------------------------------------------------ sizes
    @property
    def num_entities(self) -> int:
        return len(self.entity_ids)

    @property
    def num_relations(self) -> int:
        return len(self.relation_ids)

    @property
    def num_edges(self) -> int:
        return int(self._heads.numel())

    @property
    def edges(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(heads, relations, tails)``, each ``(E,)``."""
        return self._heads, self._rels, self._tails

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(entities={self.num_entities}, relations={self.num_relations}, "
            f"edges={self.num_edges})"
        )

    # ---------------------------------------------------------------------------------------- updates
    def add(self, records: Sequence[Record]) -> GraphUpdate:
        """Apply records in order (additions, and retractions of stored facts); visible to the next query."""
        new_entities: list[int] = []
        changed: set[int] = set()
        new_relations: list[int] = []
        added: dict[tuple[int, int, int], None] = {}  # new edges, in order
        retracted: set[tuple[int, int, int]] = set()  # stored edges to drop
        for record in records:
            if isinstance(record, Retraction):
                key = self._key(record)
                if key is not None and key in self._edge_keys:
                    self._edge_keys.discard(key)
                    if key in added:
                        del added[key]
                    else:
                        retracted.add(key)
                continue
            if isinstance(record, EntityRecord):
                index = self._entity(record.id, new_entities)
                if record.name is not None and record.name != self.names[index]:
                    self.names[index] = record.name
                    changed.add(index)
                known = self.aliases.get(index, ())
                fresh = tuple(dict.fromkeys(a for a in record.aliases if a not in known))
                if fresh:
                    self.aliases[index] = known + fresh
                    changed.add(index)
                if record.type is not None and record.type != self.types[index]:
                    self.types[index] = record.type
                    self.type_changes += 1
                    self._of_type.clear()
                continue
            h = self._entity(record.head, new_entities)
            t = self._entity(record.tail, new_entities)
            r = self.relation_index.get(record.relation)
            if r is None:
                r = self.relation_index[record.relation] = len(self.relation_ids)
                self.relation_ids.append(record.relation)
                new_relations.append(r)
            key = (h, r, t)
            if key in self._edge_keys:
                continue
            self._edge_keys.add(key)
            if key in retracted:  # retracted, then stated again: the stored edge simply stays
                retracted.discard(key)
            else:
                added[key] = None
        if retracted:
            self._drop(retracted)
        if added:
            heads, rels, tails = torch.tensor(list(added), dtype=torch.long).T
            self._heads = torch.cat([self._heads, heads])
            self._rels = torch.cat([self._rels, rels])
            self._tails = torch.cat([self._tails, tails])
        if added or retracted or new_entities:
            self._invalidate()
        changed.update(new_entities)
        return GraphUpdate(new_entities, sorted(changed), new_relations, len(added), len(retracted))

    def _key(self, record: Retraction) -> tuple[int, int, int] | None:
        """The edge a retraction names, when its entities and relation exist."""
        h = self.entity_index.get(record.head)
        r = self.relation_index.get(record.relation)
        t = self.entity_index.get(record.tail)
        return None if h is None or r is None or t is None else (h, r, t)

    def _drop(self, keys: set[tuple[int, int, int]]) -> None:
        """Remove stored edges (one pass over packed keys); entities and relations stay."""
        n, r = self.num_entities, self.num_relations
        wanted = torch.tensor(sorted(keys), dtype=torch.long)  # (K, 3)
        packed = (wanted[:, 0] * r + wanted[:, 1]) * n + wanted[:, 2]
        keep = ~torch.isin((self._heads * r + self._rels) * n + self._tails, packed)
        self._heads, self._rels, self._tails = self._heads[keep], self._rels[keep], self._tails[keep]
        self.retractions += len(keys)

    def _invalidate(self) -> None:
        self._adjacency = None
        self._out_degree = None
        self._stacked = None

    def _entity(self, entity_id: str, created: list[int]) -> int:
        index = self.entity_index.get(entity_id)
        if index is None:
            index = self.entity_index[entity_id] = len(self.entity_ids)
            self.entity_ids.append(entity_id)
            self.names.append(default_name(entity_id))
            self.types.append("")
            self._of_type.clear()
            created.append(index)
        return index

    # ------------------------------------------------------------------------------------- adjacency
    def inverse(self, d: int) -> int:
        """The directed relation walking ``d`` the other way."""
        r = self.num_relations
        return d + r if d < r else d - r

    def relation_of(self, d: int) -> tuple[int, bool]:
        """``(relation index, reversed)`` of directed relation ``d``."""
        r = self.num_relations
        return (d, False) if d < r else (d - r, True)

    def transition(self, d: int) -> RelationAdjacency:
        """The sparse transition of directed relation ``d`` (built lazily after updates)."""
        if self._adjacency is None:
            self._build()
        assert self._adjacency is not None
        return self._adjacency[d]

    def stacked_transitions(self) -> StackedTransitions:
        """Every directed relation's transition stacked into one CSR matrix (built lazily after updates)."""
        if self._stacked is None:
            adjacency = [self.transition(d) for d in range(2 * self.num_relations)]
            rows = torch.cat([a.rows for a in adjacency]) if adjacency else torch.empty(0, dtype=torch.long)
            directions = (
                torch.cat(
                    [torch.full((a.rows.numel(),), d, dtype=torch.long) for d, a in enumerate(adjacency)]
                )
                if adjacency
                else torch.empty(0, dtype=torch.long)
            )
            crows, cols, offset = [torch.zeros(1, dtype=torch.long)], [], 0
            for a in adjacency:
                crows.append(a.matrix.crow_indices()[1:] + offset)
                cols.append(a.matrix.col_indices())
                offset += a.matrix.col_indices().numel()
            col = torch.cat(cols) if cols else torch.empty(0, dtype=torch.long)
            matrix = torch.sparse_csr_tensor(
                torch.cat(crows),
                col,
                torch.ones(col.numel()),
                size=(rows.numel(), self.num_entities),
                check_invariants=False,
            )
            row_of_value = torch.repeat_interleave(
                torch.arange(rows.numel()), torch.diff(matrix.crow_indices())
            )
            transpose_order = torch.argsort(col * max(rows.numel(), 1) + row_of_value)
            transposed_crow = torch.zeros(self.num_entities + 1, dtype=torch.long)
            transposed_crow[1:] = torch.cumsum(torch.bincount(col, minlength=self.num_entities), 0)
            transposed = torch.sparse_csr_tensor(
                transposed_crow,
                row_of_value[transpose_order],
                torch.ones(col.numel()),
                size=(self.num_entities, rows.numel()),
                check_invariants=False,
            )
            membership = torch.sparse_coo_tensor(
                torch.stack([directions, torch.arange(rows.numel())]),
                torch.ones(rows.numel()),
                size=(2 * self.num_relations, rows.numel()),
                check_invariants=False,
            ).to_sparse_csr()
            offsets = [0] + [a.rows.numel() for a in adjacency]
            self._stacked = StackedTransitions(
                matrix,
                transposed,
                rows,
                directions,
                membership,
                transpose_order,
                row_of_value,
                list(itertools.accumulate(offsets)),
            )
        return self._stacked

    def out_degree(self) -> Tensor:
        """Sparse ``(2R, N)`` CSR matrix: entry ``(d, u)`` counts the edges leaving ``u`` along ``d``."""
        if self._out_degree is None:
            self._build()
        assert self._out_degree is not None
        return self._out_degree

    def _build(self) -> None:
        n, r = self.num_entities, self.num_relations
        heads, rels, tails = self._heads, self._rels, self._tails
        order = torch.argsort(rels, stable=True)
        bounds = [0, *torch.cumsum(torch.bincount(rels, minlength=r), 0).tolist()]
        adjacency = []
        for reverse in (False, True):
            src, dst = (tails[order], heads[order]) if reverse else (heads[order], tails[order])
            for rel in range(r):
                lo, hi = bounds[rel], bounds[rel + 1]
                adjacency.append(_build_adjacency(dst[lo:hi], src[lo:hi], n))
        self._adjacency = adjacency
        directed = torch.cat([rels, rels + r])
        sources = torch.cat([heads, tails])
        degree = torch.sparse_coo_tensor(
            torch.stack([directed, sources]),
            torch.ones(directed.numel()),
            size=(2 * r, n),
            check_invariants=False,
        )
        self._out_degree = degree.coalesce().to_sparse_csr()

    # -------------------------------------------------------------------------------------- queries
    def match_edges(
        self, head: int | None = None, relation: int | None = None, tail: int | None = None
    ) -> Tensor:
        """Indices of the stored edges matching every given part, in insertion order."""
        mask = torch.ones(self.num_edges, dtype=torch.bool)
        for value, column in ((head, self._heads), (relation, self._rels), (tail, self._tails)):
            if value is not None:
                mask &= column == value
        return mask.nonzero().flatten()

    def entities_of_type(self, type: str) -> Tensor:
        """Indices of the entities of node type ``type``, ascending."""
        found = self._of_type.get(type)
        if found is None:
            found = self._of_type[type] = torch.tensor(
                [i for i, t in enumerate(self.types) if t == type], dtype=torch.long
            )
        return found

    def has_edge(self, head: int, relation: int, tail: int) -> bool:
        """Whether ``head -relation-> tail`` is a stored fact."""
        return (head, relation, tail) in self._edge_keys

    def relation_text(self, r: int) -> str:
        """The text a relation is encoded from: its id with underscores shown as spaces."""
        return default_name(self.relation_ids[r])
