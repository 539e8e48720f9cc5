"""Fused CPU kernels (numba) for propagation without gradients.

torch's CSR product writes an ``(M, C)`` block of moved mass that is then scaled per direction and summed
into entities: three passes over a block larger than the entity block, and the reasoner then makes more
passes over the ``(N, C)`` result (capping it, clearing the topics, finding the nodes with mass and the
relations that leave them). On this hardware each pass over a block of tens of MB costs about a
millisecond. :func:`propagate` does all of it in one pass: each node pulls the weighted mass of the rows
feeding it and writes its row once, capped, with its summary (:class:`Summary`). Used for CPU float32
tensors when nothing needs gradients; CUDA and training keep torch's kernels.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import weakref
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

try:
    from numba import config as numba_config
    from numba import get_thread_id, njit, prange
except ImportError:  # pragma: no cover - numba is a dependency; without it torch's kernels run
    njit = None


ENABLED = os.environ.get("GRAPHFUSE_FUSED_KERNELS", "1") != "0"  # 0: torch's kernels everywhere


def available(*tensors: Tensor) -> bool:
    """Whether the fused kernels can run on these tensors (CPU, float32, no gradients needed)."""
    return (
        ENABLED
        and njit is not None
        and all(t.device.type == "cpu" and t.dtype == torch.float32 and not t.requires_grad for t in tensors)
    )


if njit is not None:
    NODES_PER_TASK = 64  # nodes a thread takes at once: one pair of scratch rows per task

    @njit(inline="always", fastmath=True)
    def _summarise_row(row, u, cap, threshold, out, active, alive):  # noqa: ANN001, ANN202
        """Writes ``row``, capped at ``cap``, as row ``u`` of ``out``, and records whether it holds any mass
        and which of its columns exceed ``threshold`` (packed into 64-bit words). ``row`` may run past the
        block's columns, with zeros, to a whole number of words: a word's 64 comparisons then compile to a
        few vector instructions, where a loop of variable length is several times slower."""
        columns = out.shape[1]
        found = False
        for k in range(columns):
            value = min(row[k], cap)
            out[u, k] = value
            found |= value != 0.0
        active[u] = found
        for w in range(alive.shape[1]):
            word = np.uint64(0)
            if found:
                first = w * 64
                if first + 64 <= row.shape[0]:
                    for j in range(64):
                        word |= np.uint64(min(row[first + j], cap) > threshold) << np.uint64(j)
                else:
                    for k in range(first, columns):
                        word |= np.uint64(out[u, k] > threshold) << np.uint64(k - first)
            alive[u, w] = word

    @njit(parallel=True, cache=True, nogil=True)
    def _summarise(x, threshold, active, alive):  # noqa: ANN001, ANN202
        for u in prange(x.shape[0]):
            _summarise_row(x[u], u, np.inf, threshold, x, active, alive)

    @njit(inline="always")
    def _value(values, e):  # noqa: ANN001, ANN202
        """Edge ``e``'s value, where a one-value array stands for every edge's (a unit-valued block)."""
        return values[e if values.shape[0] > 1 else 0]

    @njit(inline="always", fastmath=True)
    def _gather_row(u, offsets, crow, col, values, directions, active, x, weights, moved, total):  # noqa: ANN001, ANN202
        """Adds into ``total`` the weighted mass of every row feeding node ``u`` (``moved``: scratch)."""
        columns = x.shape[1]
        for i in range(offsets[u], offsets[u + 1]):
            d = directions[i]
            first, last = crow[i], crow[i + 1]
            if last - first == 1:  # one edge (common on sparse graphs): no row sum to share the weights
                source = col[first]
                value = _value(values, first)
                if active[source] and value != 0.0:
                    for k in range(columns):
                        total[k] += value * weights[d, k] * x[source, k]
                continue
            found = False
            moved[:] = 0.0
            for e in range(first, last):
                source = col[e]
                value = _value(values, e)
                if active[source] and value != 0.0:  # mass sits on few entities in early hops
                    found = True
                    for k in range(columns):
                        moved[k] += value * x[source, k]
            if found:  # one direction per row: its weights scale the row's sum
                for k in range(columns):
                    total[k] += weights[d, k] * moved[k]

    @njit(inline="always")
    def _clear_cells(u, first, nodes, columns, row):  # noqa: ANN001, ANN202
        """Zeroes in ``row`` the columns of node ``u``'s cells, which start at ``first`` among the cells
        ``(nodes, columns)`` ordered by node; returns where the next node's start."""
        while first < nodes.shape[0] and nodes[first] == u:
            row[columns[first]] = 0.0
            first += 1
        return first

    @njit(parallel=True, fastmath=True, cache=True, nogil=True)
    def _propagate(  # noqa: ANN202, PLR0913
        offsets, crow, col, values, directions,  # noqa: ANN001 - the merged edges
        delta_offsets, delta_crow, delta_col, delta_values, delta_directions,  # noqa: ANN001
        active, x, weights, cap, exclude_nodes, exclude_columns, threshold, out, out_active, out_alive,  # noqa: ANN001
        degree_offsets, degree_directions, degree_counts, live,  # noqa: ANN001 - see _or_live; live per thread
        earlier, earlier_held, mix_weights, mixed,  # noqa: ANN001 - see _mix_row; mixed of no rows: none
    ):  # fmt: skip
        n, columns = out.shape
        mixing = mixed.shape[0] > 0
        tracking = live.shape[0] > 0
        tasks = (n + NODES_PER_TASK - 1) // NODES_PER_TASK
        for task in prange(tasks):  # each node's row is written once, by one thread
            moved = np.empty(columns, dtype=out.dtype)
            total = np.empty(out_alive.shape[1] * 64 if out_alive.shape[1] else columns, dtype=out.dtype)
            excluded = np.searchsorted(exclude_nodes, task * NODES_PER_TASK)  # the next excluded cell
            for u in range(task * NODES_PER_TASK, min(n, (task + 1) * NODES_PER_TASK)):
                total[:] = 0.0
                _gather_row(u, offsets, crow, col, values, directions, active, x, weights, moved, total)
                _gather_row(
                    u, delta_offsets, delta_crow, delta_col, delta_values, delta_directions, active, x,
                    weights, moved, total,
                )  # fmt: skip
                excluded = _clear_cells(u, excluded, exclude_nodes, exclude_columns, total)
                _summarise_row(total, u, cap, threshold, out, out_active, out_alive)
                if tracking and out_active[u]:
                    _or_live(
                        u, degree_offsets, degree_directions, degree_counts, out_alive, live[get_thread_id()]
                    )
                if mixing:
                    _mix_row(u, earlier, earlier_held, out, mix_weights, mixed)

    @njit(inline="always", fastmath=True)
    def _push_from(
        sources, offsets, targets, values, rows, directions, x, weights, out, seen, touched, count
    ):  # noqa: ANN001, ANN202
        """Adds the weighted mass of ``sources`` into the rows they feed; appends each newly reached node
        to ``touched`` and returns how many there are."""
        columns = x.shape[1]
        for s in sources:
            for j in range(offsets[s], offsets[s + 1]):
                value = _value(values, j)
                if value != 0.0:
                    row = targets[j]
                    u = rows[row]
                    d = directions[row]
                    if not seen[u]:
                        seen[u] = True
                        touched[count] = u
                        count += 1
                    for k in range(columns):
                        out[u, k] += value * weights[d, k] * x[s, k]
        return count

    @njit(parallel=True, cache=True, nogil=True)
    def _push(  # noqa: ANN202, PLR0913
        sources, offsets, targets, values, rows, directions,  # noqa: ANN001 - the merged edges
        delta_offsets, delta_targets, delta_values, delta_rows, delta_directions,  # noqa: ANN001
        x, weights, cap, exclude_nodes, exclude_columns, threshold, out, out_active, out_alive,  # noqa: ANN001
        degree_offsets, degree_directions, degree_counts, live,  # noqa: ANN001
    ):  # fmt: skip
        """:func:`_propagate` from a few sources: only the edges leaving them are read."""
        for u in prange(out.shape[0]):
            out[u, :] = 0.0
            out_active[u] = False
            out_alive[u, :] = 0
        seen = np.zeros(out.shape[0], dtype=np.bool_)
        touched = np.empty(out.shape[0], dtype=np.int64)
        count = _push_from(
            sources, offsets, targets, values, rows, directions, x, weights, out, seen, touched, 0
        )
        count = _push_from(
            sources, delta_offsets, delta_targets, delta_values, delta_rows, delta_directions, x, weights,
            out, seen, touched, count,
        )  # fmt: skip
        for i in range(count):
            u = touched[i]
            _clear_cells(u, np.searchsorted(exclude_nodes, u), exclude_nodes, exclude_columns, out[u])
            _summarise_row(out[u], u, cap, threshold, out, out_active, out_alive)
            if live.shape[0] > 0 and out_active[u]:
                _or_live(u, degree_offsets, degree_directions, degree_counts, out_alive, live[0])

    @njit(parallel=True, fastmath=True, cache=True, nogil=True)
    def _add_rows(crow, col, values, rows, active, x, out):  # noqa: ANN001, ANN202
        columns = x.shape[1]
        for i in prange(rows.shape[0]):  # distinct destinations: no two threads write one row
            u = rows[i]
            for e in range(crow[i], crow[i + 1]):
                source = col[e]
                value = _value(values, e)
                if active[source] and value != 0.0:
                    for k in range(columns):
                        out[u, k] += value * x[source, k]

    @njit(inline="always")
    def _or_live(u, offsets, directions, counts, alive, live):  # noqa: ANN001, ANN202
        """ORs node ``u``'s columns over the threshold (``alive[u]``) into the words of the directions
        leaving it (the out-degree ordered by node: ``offsets``, ``directions``, ``counts``)."""
        words = alive.shape[1]
        over = np.uint64(0)
        for w in range(words):
            over |= alive[u, w]
        if over == 0:
            return
        for e in range(offsets[u], offsets[u + 1]):
            if counts[e] > 0:
                d = directions[e]
                for w in range(words):
                    live[d, w] |= alive[u, w]

    @njit(cache=True, nogil=True)
    def _live_bits(offsets, directions, counts, active, alive, live):  # noqa: ANN001, ANN202
        # one thread: the nodes without mass cost a byte each, and a parallel region here would hand the
        # cores over from torch's thread pool and back once more per hop
        for u in range(active.shape[0]):
            if active[u]:
                _or_live(u, offsets, directions, counts, alive, live)

    @njit(parallel=True, fastmath=True, cache=True, nogil=True)
    def _read_words(query, words, mask, scale, out):  # noqa: ANN001, ANN202
        batch, length, dim = words.shape
        for b in prange(batch):
            weights = np.zeros(length, dtype=np.float32)
            best = -np.inf
            for position in range(length):
                if mask[b, position]:
                    product = np.float32(0.0)
                    for k in range(dim):
                        product += query[b, k] * words[b, position, k]
                    weights[position] = product * scale
                    best = max(best, weights[position])
            total = np.float32(0.0)
            for position in range(length):
                if mask[b, position]:
                    weights[position] = np.exp(weights[position] - best)
                    total += weights[position]
            for k in range(dim):
                out[b, k] = 0.0 if total > 0.0 else np.nan  # no word: as torch's softmax over nothing
            for position in range(length):
                if weights[position] > 0.0:
                    share = weights[position] / total
                    for k in range(dim):
                        out[b, k] += share * words[b, position, k]

    @njit(parallel=True, fastmath=True, cache=True, nogil=True)
    def _relation_softmax(instruction, keys, live, out):  # noqa: ANN001, ANN202
        batch, dim = instruction.shape
        for b in prange(batch):
            word, bit = b // 64, np.uint64(b % 64)
            norm = np.float32(0.0)
            for k in range(dim):
                norm += instruction[b, k] * instruction[b, k]
            norm = max(np.sqrt(norm), np.float32(1e-12))
            best = -np.inf
            for d in range(keys.shape[0]):
                out[b, d] = 0.0
                if (live[d, word] >> bit) & np.uint64(1):
                    product = np.float32(0.0)
                    for k in range(dim):
                        product += instruction[b, k] * keys[d, k]
                    out[b, d] = product / norm
                    best = max(best, out[b, d])
            total = np.float32(0.0)
            for d in range(keys.shape[0]):
                if (live[d, word] >> bit) & np.uint64(1):
                    out[b, d] = np.exp(out[b, d] - best)
                    total += out[b, d]
            for d in range(keys.shape[0]):
                if total > 0.0:  # no live direction: all weights stay 0
                    out[b, d] /= total

    @njit(cache=True, nogil=True)
    def _edges_from(offsets, sources):  # noqa: ANN001, ANN202
        total = 0
        for s in sources:
            total += offsets[s + 1] - offsets[s]
        return total

    @njit(inline="always", fastmath=True)
    def _mix_row(u, earlier, earlier_held, last, weights, out):  # noqa: ANN001, ANN202
        """Row ``u`` of ``out``: ``sum_t earlier[t, u] * weights[t] + last[u] * weights[-1]``, skipping the
        earlier levels where ``earlier_held[t, u]`` says the row is all zeros (early hops reach few nodes)."""
        hops, columns = earlier.shape[0], out.shape[1]
        for k in range(columns):  # level by level, so that each loop runs over contiguous columns
            out[u, k] = last[u, k] * weights[hops, k]
        for t in range(hops):
            if earlier_held[t, u]:
                for k in range(columns):
                    out[u, k] += earlier[t, u, k] * weights[t, k]

    @njit(parallel=True, fastmath=True, cache=True, nogil=True)
    def _mix(earlier, earlier_held, last, weights, out):  # noqa: ANN001, ANN202
        for u in prange(out.shape[0]):
            _mix_row(u, earlier, earlier_held, last, weights, out)

    @njit(parallel=True, cache=True, nogil=True)
    def _count_reached(levels, hops, counts):  # noqa: ANN001, ANN202
        n, columns = levels.shape[1], levels.shape[2]
        chunks = counts.shape[0]
        size = (n + chunks - 1) // chunks
        for chunk in prange(chunks):
            for u in range(chunk * size, min(n, (chunk + 1) * size)):
                for k in range(columns):
                    for t in range(hops):
                        if levels[t, u, k] > 0.0:
                            counts[chunk, k] += 1
                            break

    @njit(inline="always")
    def _frontier(start, levels, level, node, column):  # noqa: ANN001, ANN202
        return start[node, column] if level == 0 else levels[level - 1, node, column]

    @njit(cache=True, nogil=True)
    def _walk_back(  # noqa: ANN202, C901, PLR0912, PLR0913, PLR0915
        offsets, crow, col, values, directions,  # noqa: ANN001 - the merged edges
        delta_offsets, delta_crow, delta_col, delta_values, delta_directions,  # noqa: ANN001
        start, levels, column, weights, min_weight, answer, hops, limit, max_expansions,  # noqa: ANN001
        out_nodes, out_directions, out_weights,  # noqa: ANN001
    ):  # fmt: skip
        """Depth-first from ``answer`` (level ``hops``) back to level 0, as :func:`walk_back` describes;
        returns how many paths it wrote."""
        if _frontier(start, levels, hops, answer, column) <= 0.0:
            return 0
        path = np.empty(hops + 1, dtype=np.int64)  # path[h]: the node at level h
        taken = np.empty(hops + 1, dtype=np.int64)  # taken[h]: the direction from path[h - 1] to path[h]
        weight = np.empty(hops + 1, dtype=np.float64)  # weight[h]: product of the weights above level h
        first = np.zeros(hops + 1, dtype=np.int64)  # level h's candidates: first[h] .. last[h], next at
        # following[h]
        last = np.zeros(hops + 1, dtype=np.int64)
        following = np.zeros(hops + 1, dtype=np.int64)
        capacity = 64
        scores = np.empty(capacity, dtype=np.float64)
        steps = np.empty(capacity, dtype=np.int64)
        sources = np.empty(capacity, dtype=np.int64)
        top, found, budget = 0, 0, max_expansions
        h, path[hops], weight[hops] = hops, answer, 1.0
        action = 0  # 0: visit path[h]; 1: try its next candidate; 2: leave it
        while True:
            if action == 0:
                action = 2
                first[h] = top  # leaving this visit drops what it added
                if found < limit and budget > 0:
                    budget -= 1
                    if h == 0:
                        out_nodes[found, :] = path
                        out_directions[found, :] = taken[1:]
                        out_weights[found] = weight[0]
                        found += 1
                    else:
                        node = path[h]
                        degree = crow[offsets[node + 1]] - crow[offsets[node]]
                        degree += delta_crow[delta_offsets[node + 1]] - delta_crow[delta_offsets[node]]
                        if top + degree > capacity:
                            capacity = max(2 * capacity, top + degree)
                            scores, steps, sources = (
                                np.concatenate((scores[:top], np.empty(capacity - top))),
                                np.concatenate((steps[:top], np.empty(capacity - top, dtype=np.int64))),
                                np.concatenate((sources[:top], np.empty(capacity - top, dtype=np.int64))),
                            )
                        for strong in (True, False):  # weak directions only where no strong one leads back
                            for part in range(2):
                                o, c, s, v, ds = (
                                    (offsets, crow, col, values, directions)
                                    if part == 0
                                    else (
                                        delta_offsets,
                                        delta_crow,
                                        delta_col,
                                        delta_values,
                                        delta_directions,
                                    )
                                )
                                for i in range(o[node], o[node + 1]):
                                    d = ds[i]
                                    w = weights[h - 1, d]
                                    if w <= 0.0 or (w >= min_weight) != strong:
                                        continue
                                    for e in range(c[i], c[i + 1]):
                                        source = s[e]
                                        mass = _frontier(start, levels, h - 1, source, column)
                                        if _value(v, e) != 0.0 and mass > 0.0:
                                            scores[top] = -(np.float64(w) * np.float64(mass))
                                            steps[top] = d
                                            sources[top] = source
                                            top += 1
                            if top > first[h]:
                                break
                        # strongest first, ties by direction then source: three stable sorts, last key first
                        order = np.argsort(sources[first[h] : top], kind="mergesort")
                        order = order[np.argsort(steps[first[h] : top][order], kind="mergesort")]
                        order = order[np.argsort(scores[first[h] : top][order], kind="mergesort")]
                        scores[first[h] : top] = scores[first[h] : top][order]
                        steps[first[h] : top] = steps[first[h] : top][order]
                        sources[first[h] : top] = sources[first[h] : top][order]
                        last[h], following[h] = top, first[h]
                        action = 1
            elif action == 1:
                action = 2
                if found < limit:
                    while following[h] < last[h]:
                        i = following[h]
                        following[h] += 1
                        source = sources[i]
                        on_path = False
                        for k in range(h, hops + 1):
                            on_path |= path[k] == source
                        if on_path:  # a path through one entity twice is no evidence
                            continue
                        taken[h] = steps[i]
                        path[h - 1] = source
                        weight[h - 1] = weight[h] * weights[h - 1, steps[i]]
                        h -= 1
                        action = 0
                        break
            else:
                top = first[h]
                if h == hops:
                    return found
                h += 1
                action = 1


@dataclass(frozen=True)
class Summary:
    """What a fused pass learns about an ``(N, C)`` block of mass while writing it."""

    active: np.ndarray  # (N,) bool: the node holds mass in some column
    alive: np.ndarray  # (N, ceil(C / 64)) uint64: bit k of a node's words is set where column k > threshold
    columns: int
    live: np.ndarray | None = None  # (2R, ceil(C / 64)) uint64: the alive words of the nodes each direction
    # leaves, ORed, when the pass had the out-degree (live_directions reads them then) ...
    live_degree: Tensor | None = None  # ... and that out-degree


@dataclass(frozen=True)
class HopMix:
    """What a hop mixes as it writes (:func:`propagate`): ``sum_t levels[t] * attention[:, t]``, the levels
    being ``earlier`` then the hop itself, written into ``mixed``. ``earlier_held`` says which rows of
    each earlier level hold any mass (their :attr:`Summary.active`); the others are not read. Without it
    every row is read."""

    earlier: Tensor  # (T, N, C)
    attention: Tensor  # (C, T + 1)
    mixed: Tensor  # (N, C), contiguous
    earlier_held: tuple[np.ndarray, ...] | None = None  # T x (N,) bool


@dataclass(frozen=True)
class EdgeBlock:
    """One stacked CSR block as the propagation kernels walk it, from either end.

    Pulling (:func:`_propagate`) reads a copy of the rows ordered by the node they feed, so that each
    node's edges are contiguous: node ``u``'s rows are ``offsets[u]..offsets[u + 1]``, row ``i`` holds
    ``col[crow[i]:crow[i + 1]]`` with ``values`` along ``directions[i]``. Pushing (:func:`_push`) reads
    the transposed block: source ``s`` feeds rows ``targets[source_offsets[s]:source_offsets[s + 1]]``
    with ``source_values``, and row ``j`` feeds node ``rows[j]`` along ``row_directions[j]``.
    """

    offsets: np.ndarray  # (N + 1,)
    crow: np.ndarray  # (M + 1,)
    col: np.ndarray  # (nnz,)
    values: np.ndarray  # (nnz,), or (1,): one value for every edge
    directions: np.ndarray  # (M,)
    source_offsets: np.ndarray  # (N + 1,)
    targets: np.ndarray  # (nnz,)
    source_values: np.ndarray  # (nnz,) or (1,)
    rows: np.ndarray  # (M,)
    row_directions: np.ndarray  # (M,)

    @property
    def nnz(self) -> int:
        return self.col.shape[0]

    def pull_arrays(self) -> tuple[np.ndarray, ...]:
        return self.offsets, self.crow, self.col, self.values, self.directions

    def push_arrays(self) -> tuple[np.ndarray, ...]:
        return self.source_offsets, self.targets, self.source_values, self.rows, self.row_directions

    def edges_from(self, sources: np.ndarray) -> int:
        """How many edges leave ``sources``."""
        return int(_edges_from(self.source_offsets, sources)) if self.nnz else 0


@functools.lru_cache(maxsize=8)
def _no_edges(num_nodes: int, index: np.dtype) -> EdgeBlock:
    """A block without edges whose arrays have the dtypes of a block with ``index`` CSR indexes (as
    :meth:`graphfuse.gnn.data.graph.StackedTransitions.edge_block` builds them: one compiled kernel serves
    both)."""
    nodes, nothing = np.zeros(num_nodes + 1, dtype=np.int64), np.zeros(0, dtype=index)
    small, weights = np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float32)
    return EdgeBlock(
        nodes, np.zeros(1, index), small, weights, small, np.zeros(num_nodes + 1, index), nothing, weights,
        nothing, nothing,
    )  # fmt: skip


def _beside(delta: EdgeBlock | None, merged: EdgeBlock) -> EdgeBlock:
    """``delta`` with the index dtype of ``merged`` (empty where there is none)."""
    index = merged.crow.dtype
    if delta is None:
        return _no_edges(merged.offsets.shape[0] - 1, index)
    if delta.crow.dtype == index:
        return delta
    return dataclasses.replace(
        delta,
        crow=delta.crow.astype(index),
        source_offsets=delta.source_offsets.astype(index),
        targets=delta.targets.astype(index),
        rows=delta.rows.astype(index),
        row_directions=delta.row_directions.astype(index),
    )


_NO_CELLS = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))  # (the dtype of torch's indices)

# Pushing reads only the edges leaving the nodes with mass, at about (C + 16) multiply-adds' cost each (C
# columns, plus random access), on one core; pulling checks every edge's source and shares the work between
# the cores. On MetaQA's graph with 1-64 columns, pushing was faster below about 5 edge checks' worth.
PUSH_EDGE_OVERHEAD = 16
COUNT_CHUNKS = 16  # row ranges count_reached shares between the threads
PULL_EDGE_COST = 5
LIVE_PADDING = 16  # rows between the threads' blocks of live words: at least a cache line


def block(*shape: int) -> Tensor:
    """A new float32 block for a kernel to write. NumPy's allocation, not torch's: glibc gives freed
    NumPy blocks back to the next allocation, while torch's large CPU blocks come back as fresh pages that
    fault in on first touch (about 1 ms per 10 MB here: as much as the hop that writes them)."""
    return torch.from_numpy(np.empty(shape, dtype=np.float32))


def _alive_words(columns: int, threshold: float | None) -> int:
    return 0 if threshold is None else (columns + 63) // 64


def summarise(x: Tensor, threshold: float | None = None) -> Summary:
    """One pass over ``x`` ``(N, C)``: which nodes hold mass, and (with ``threshold``) which columns of each
    exceed it."""
    x = x.contiguous()
    active = np.empty(x.shape[0], dtype=np.bool_)
    alive = np.empty((x.shape[0], _alive_words(x.shape[1], threshold)), dtype=np.uint64)
    _summarise(x.numpy(), np.inf if threshold is None else threshold, active, alive)
    return Summary(active, alive, x.shape[1])


def summarise_cells(
    nodes: np.ndarray, columns: np.ndarray, values: np.ndarray, shape: tuple[int, int], threshold: float
) -> Summary:
    """The :class:`Summary` of an ``(N, C)`` block that is zero outside the cells ``(nodes[i],
    columns[i])`` holding ``values[i] > 0``, without reading the block."""
    n, width = shape
    active = np.zeros(n, dtype=np.bool_)
    active[nodes] = True
    alive = np.zeros((n, _alive_words(width, threshold)), dtype=np.uint64)
    over = values > threshold
    bits = np.left_shift(np.uint64(1), (columns[over] % 64).astype(np.uint64))
    np.bitwise_or.at(alive, (nodes[over], columns[over] // 64), bits)
    return Summary(active, alive, width)


def propagate(
    merged: EdgeBlock,
    delta: EdgeBlock | None,
    x: Tensor,
    weights: Tensor,
    summary: Summary | None = None,
    *,
    cap: float = np.inf,
    exclude: tuple[np.ndarray, np.ndarray] | None = None,
    threshold: float | None = None,
    out: Tensor | None = None,
    push: bool | None = None,
    mix_into: HopMix | None = None,
    degree: Tensor | None = None,
) -> tuple[Tensor, Summary]:
    """``min(cap, sum_d T_d @ (x * w_d))`` in one pass that writes each node's row once, with the cells in
    ``exclude`` (``(nodes, columns)``, ordered by node) set to 0; returns it with its :class:`Summary`
    (``threshold`` as in :func:`summarise`).

    ``summary`` is ``x``'s, when known: nodes without mass are skipped. When the edges leaving the nodes
    with mass are few, the kernel pushes from those nodes instead of pulling into every node (as a
    direction-optimising BFS does); ``push`` forces one way. With ``mix_into``, it also writes the
    :class:`HopMix` of the earlier levels and the result: a reasoner's answer mixing its hops, in the same
    pass when pulling. With ``degree``, the graph's ``(2R, N)`` out-degree CSR, and a ``threshold``, the
    summary also holds the directions live in each column (what :func:`live_directions` returns for it).

    Shapes:
        x, out: ``(N, C)``; weights: ``(C, 2R)``.
    """
    x = x.contiguous()
    n, columns = x.shape
    summary = summary if summary is not None else summarise(x)
    delta = _beside(delta, merged)
    exclude_nodes, exclude_columns = exclude if exclude is not None else _NO_CELLS
    words = _alive_words(columns, threshold)
    sources = np.flatnonzero(summary.active)
    if push is None:
        pushed = merged.edges_from(sources) + delta.edges_from(sources)
        push = pushed * (columns + PUSH_EDGE_OVERHEAD) < PULL_EDGE_COST * (merged.nnz + delta.nnz)
    out = block(n, columns) if out is None else out
    mixing = _mix_arrays(out, mix_into) if mix_into is not None else _NO_MIX
    tracking = degree is not None and words > 0
    degrees = degree_by_node(degree) if tracking else _NO_DEGREES
    # one block of live words per thread (numba's thread ids run below NUMBA_NUM_THREADS), ORed after; the
    # blocks are padded apart, so that no two threads write one cache line
    directions = degree.shape[0] if tracking else 0
    live_shape = (numba_config.NUMBA_NUM_THREADS, directions + LIVE_PADDING, words) if tracking else (0, 0, 0)
    live = np.zeros(live_shape, dtype=np.uint64)
    if push:  # read only the edges leaving the nodes with mass
        kernel, edges, extra = _push, (sources, *merged.push_arrays(), *delta.push_arrays()), ()
    else:
        kernel, edges = _propagate, (*merged.pull_arrays(), *delta.pull_arrays(), summary.active)
        extra = mixing
    active, alive = np.empty(n, dtype=np.bool_), np.empty((n, words), dtype=np.uint64)
    kernel(
        *edges,
        x.numpy(),
        weights.T.contiguous().numpy(),
        cap,
        exclude_nodes,
        exclude_columns,
        np.inf if threshold is None else threshold,
        out.numpy(),
        active,
        alive,
        *degrees,
        live,
        *extra,
    )
    if push and mix_into is not None:
        earlier, earlier_held, mix_weights, mixed = mixing
        _mix(earlier, earlier_held, out.numpy(), mix_weights, mixed)
    if not tracking:
        return out, Summary(active, alive, columns)
    return out, Summary(active, alive, columns, np.bitwise_or.reduce(live[:, :directions], axis=0), degree)


# no out-degree, in the dtypes an int32 out-degree reads as (one compiled kernel for both)
_NO_DEGREES = (np.zeros(1, np.int32), np.zeros(0, np.int32), np.zeros(0, np.float32))


_NO_MIX = (
    np.zeros((0, 0, 0), np.float32),
    np.zeros((0, 0), np.bool_),
    np.zeros((0, 0), np.float32),
    np.zeros((0, 0), np.float32),
)


def _mix_arrays(last: Tensor, mix: HopMix) -> tuple[np.ndarray, ...]:
    """The mixing kernels' ``(earlier (T, N, C), earlier_held (T, N), weights (T + 1, C), mixed)``, beside
    ``last`` (see :func:`propagate`)."""
    earlier, attention, mixed = mix.earlier, mix.attention, mix.mixed
    levels, (n, columns) = earlier.shape[0] + 1, last.shape
    held = np.stack(mix.earlier_held) if mix.earlier_held else np.ones((levels - 1, n), dtype=np.bool_)
    if not (
        mixed.shape == last.shape
        and mixed.is_contiguous()
        and earlier.shape[1:] == last.shape
        and attention.shape == (columns, levels)
        and held.shape == (levels - 1, n)
        and held.dtype == np.bool_
    ):  # the kernels do not check bounds
        raise ValueError(
            f"Expected earlier levels (T, N, C), their held rows (T, N), attention (C, T + 1) and a "
            f"contiguous 'mixed' block, with (N, C) = {(n, columns)} (got {tuple(earlier.shape)}, "
            f"{held.shape}, {tuple(attention.shape)} and {tuple(mixed.shape)})"
        )
    weights = attention.T.contiguous().numpy()
    return earlier.contiguous().numpy(), held, weights, mixed.numpy()


def add_rows(crow: Tensor, col: Tensor, values: Tensor, rows: Tensor, x: Tensor, out: Tensor) -> Tensor:
    """Adds ``T @ x`` into ``out`` for one direction's CSR transition, whose rows feed the distinct nodes
    ``rows`` (sources without mass are skipped).

    Shapes:
        crow: ``(M + 1,)``; col, values: ``(nnz,)``; rows: ``(M,)``; x, out: ``(N, C)``.
    """
    x = x.contiguous()
    _add_rows(
        crow.numpy(),
        col.numpy(),
        edge_values(values),
        rows.numpy(),
        summarise(x).active,
        x.numpy(),
        out.numpy(),
    )
    return out


def edge_values(values: Tensor) -> np.ndarray:
    """``(nnz,)`` edge values as the kernels read them: a view that repeats one stored value (a unit-valued
    block's ones, 4 bytes in all) becomes that one value, which the kernels read for every edge."""
    if values.numel() > 1 and values.stride(0) == 0:
        return values[:1].contiguous().numpy()
    return values.contiguous().numpy()


def live_directions(degree: Tensor, summary: Summary) -> Tensor:
    """``(C, 2R)`` bool: whether a node with more than the summary's threshold in column ``c`` has an edge
    along ``d``; ``degree`` is the ``(2R, N)`` out-degree CSR (what ``(degree @ (x > threshold)).T > 0``
    gives)."""
    live = live_words(degree, summary)
    unpacked = np.unpackbits(live.view(np.uint8), axis=1, bitorder="little")[:, : summary.columns]  # (2R, C)
    return torch.from_numpy(unpacked.T.astype(np.bool_))


def live_words(degree: Tensor, summary: Summary) -> np.ndarray:
    """:func:`live_directions` packed: ``(2R, ceil(C / 64))`` uint64, bit ``c % 64`` of word ``c // 64`` for
    column ``c``. Read from the summary when the pass that wrote it had this degree; otherwise only the nodes
    holding mass are read, through the degrees ordered by node, and a node's columns over the threshold are
    packed words, so an edge costs a word, not a row."""
    if summary.live is not None and summary.live_degree is degree:
        return summary.live
    live = np.zeros((degree.shape[0], summary.alive.shape[1]), dtype=np.uint64)
    _live_bits(*degree_by_node(degree), summary.active, summary.alive, live)
    return live


def read_words(query: Tensor, words: Tensor, mask: Tensor, scale: float) -> Tensor:
    """``(B, D)``: each question's words ``(B, L, D)`` weighted by the softmax of ``scale * query . word``
    over its real tokens (``mask`` ``(B, L)``), in one pass: a reasoner's word attention, what
    ``softmax(scale * query @ words^T, masked) @ words`` gives (NaN for a question without a word, as there).

    Shapes:
        query: ``(B, D)``.
    """
    out = torch.empty(query.shape)
    _read_words(
        query.contiguous().numpy(), words.contiguous().numpy(), mask.contiguous().numpy(), scale, out.numpy()
    )
    return out


def relation_softmax(instruction: Tensor, keys: Tensor, live: np.ndarray) -> Tensor:
    """``(B, 2R)``: each question's softmax of ``cos(instruction, key) * |key|`` over the directions live in
    its column (:func:`live_words`), 0 where none is: a reasoner's relation weights in one pass, what
    ``softmax((unit(instruction) @ keys^T).masked_fill(~live, -inf)).nan_to_num(0)`` gives.

    Shapes:
        instruction: ``(B, D)``; keys: ``(2R, D)``.
    """
    out = torch.empty(instruction.shape[0], keys.shape[0])
    _relation_softmax(instruction.contiguous().numpy(), keys.contiguous().numpy(), live, out.numpy())
    return out


_DEGREES_BY_NODE: dict[int, tuple[weakref.ref, tuple[np.ndarray, ...]]] = {}


def degree_by_node(degree: Tensor) -> tuple[np.ndarray, ...]:
    """``(offsets (N + 1,), directions, counts)``: ``degree`` ordered by node, as :func:`live_directions`
    reads it; built once per degree tensor (a graph hands out the same one until its edges change)."""
    key = id(degree)
    found = _DEGREES_BY_NODE.get(key)
    if found is not None and found[0]() is degree:
        return found[1]
    by_node = degree.to_sparse_csc()
    arrays = (
        by_node.ccol_indices().numpy(),
        by_node.row_indices().numpy(),
        by_node.values().numpy(),
    )
    _DEGREES_BY_NODE[key] = (weakref.ref(degree, lambda _, key=key: _DEGREES_BY_NODE.pop(key, None)), arrays)
    return arrays


def count_reached(levels: Tensor, hops: int) -> Tensor:
    """``(C,)`` int32: in each column of ``levels`` ``(T, N, C)``, the nodes with mass at any of the first
    ``hops`` levels, in one pass."""
    counts = np.zeros((COUNT_CHUNKS, levels.shape[2]), dtype=np.int64)
    _count_reached(levels.contiguous().numpy(), hops, counts)
    return torch.from_numpy(counts.sum(0).astype(np.int32))


def walk_back(
    merged: EdgeBlock,
    delta: EdgeBlock | None,
    start: np.ndarray,
    levels: np.ndarray,
    column: int,
    weights: np.ndarray,
    min_weight: float,
    answer: int,
    hops: int,
    limit: int,
    max_expansions: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Up to ``limit`` edge paths from level 0 to ``answer`` at level ``hops``, depth-first from the answer.

    Level 0 is ``start[:, column]``, level ``h`` is ``levels[h - 1, :, column]``; a step from level ``h``
    back to ``h - 1`` follows an edge along direction ``d`` from a source with mass at level ``h - 1``,
    strongest first (``weights[h - 1, d]`` x the source's mass; ties by direction, then source). Directions
    below ``min_weight`` are only tried at a node where no stronger one leads back, and directions of weight
    0 never. A path through one node twice is skipped, which can lead into dead ends, so at most
    ``max_expansions`` nodes are visited.

    Returns:
        ``(nodes (P, hops + 1), directions (P, hops), weights (P,))`` in the order found: each path's nodes
        from level 0 to the answer, the direction of each step, and the product of its steps' weights.
    """
    delta = _beside(delta, merged)
    nodes = np.empty((limit, hops + 1), dtype=np.int64)
    directions = np.empty((limit, hops), dtype=np.int64)
    path_weights = np.empty(limit, dtype=np.float64)
    found = _walk_back(
        *merged.pull_arrays(),
        *delta.pull_arrays(),
        start,
        levels,
        column,
        weights,
        min_weight,
        answer,
        hops,
        limit,
        max_expansions,
        nodes,
        directions,
        path_weights,
    )
    return nodes[:found], directions[:found], path_weights[:found]
