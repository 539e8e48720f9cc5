"""Fused CPU kernels (numba) for propagation without gradients.

torch's CSR product writes an ``(M, C)`` block of moved mass that is then scaled per direction and summed
into entities: three passes over a block larger than the entity block. The kernel here does it in one pass:
each row's weighted mass goes straight into its entity, and a direction's rows (distinct entities) are
split over the cores. Used by :func:`gnn.layers.transition.weighted_transition` for CPU tensors when nothing
needs gradients; CUDA and training keep torch's kernels.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import Tensor

try:
    from numba import njit, prange
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

    @njit(parallel=True, cache=True, nogil=True)
    def _active_entities(x, active):  # noqa: ANN001, ANN202
        columns = x.shape[1]
        for u in prange(x.shape[0]):
            found = False
            for k in range(columns):
                found |= x[u, k] != 0.0
            active[u] = found

    @njit(parallel=True, fastmath=True, cache=True, nogil=True)
    def _weighted_rows(crow, col, values, rows, offsets, active, x, weights, out):  # noqa: ANN001, ANN202
        columns = x.shape[1]
        for d in range(offsets.shape[0] - 1):
            for i in prange(offsets[d], offsets[d + 1]):  # one direction's rows feed distinct entities
                u = rows[i]
                for e in range(crow[i], crow[i + 1]):
                    source = col[e]
                    value = values[e]
                    if active[source] and value != 0.0:  # mass sits on few entities in early hops
                        for k in range(columns):
                            out[u, k] += value * weights[d, k] * x[source, k]

    @njit(parallel=True, cache=True, nogil=True)
    def _alive_bits(x, threshold, bits):  # noqa: ANN001, ANN202
        columns = x.shape[1]
        for u in prange(x.shape[0]):
            for w in range(bits.shape[1]):
                word = np.uint64(0)
                for k in range(w * 64, min(columns, w * 64 + 64)):
                    word |= np.uint64(x[u, k] > threshold) << np.uint64(k - w * 64)
                bits[u, w] = word

    @njit(parallel=True, cache=True, nogil=True)
    def _live_bits(crow, col, counts, bits, live):  # noqa: ANN001, ANN202
        words = bits.shape[1]
        for d in prange(crow.shape[0] - 1):
            for e in range(crow[d], crow[d + 1]):
                if counts[e] > 0:
                    u = col[e]
                    for w in range(words):
                        live[d, w] |= bits[u, w]


def weighted_rows(
    crow: Tensor,
    col: Tensor,
    values: Tensor,
    rows: Tensor,
    offsets: list[int],
    x: Tensor,
    weights: Tensor,
    out: Tensor,
) -> Tensor:
    """Adds ``sum_d T_d @ (x * w_d)`` into ``out`` for one stacked CSR block (rows grouped by direction).

    Shapes:
        crow: ``(M + 1,)``; col, values: ``(nnz,)``; rows: ``(M,)``; x, out: ``(N, C)``; weights: ``(C, 2R)``.
    """
    x = x.contiguous()
    active = np.empty(x.shape[0], dtype=np.bool_)
    _active_entities(x.numpy(), active)
    _weighted_rows(
        crow.numpy(),
        col.numpy(),
        values.numpy(),
        rows.numpy(),
        np.asarray(offsets, dtype=np.int64),
        active,
        x.numpy(),
        weights.T.contiguous().numpy(),
        out.numpy(),
    )
    return out


def live_directions(degree: Tensor, x: Tensor, threshold: float) -> Tensor:
    """``(C, 2R)`` bool: whether an entity with more than ``threshold`` in column ``c`` has an edge along
    ``d``; ``degree`` is the ``(2R, N)`` out-degree CSR (what ``(degree @ (x > threshold)).T > 0`` gives).
    Each entity's columns over the threshold are packed into 64-bit words first, so an edge costs a word,
    not a row of ``x``."""
    x = x.contiguous()
    words = (x.shape[1] + 63) // 64
    bits = np.empty((x.shape[0], words), dtype=np.uint64)
    _alive_bits(x.numpy(), threshold, bits)
    live = np.zeros((degree.shape[0], words), dtype=np.uint64)
    _live_bits(
        degree.crow_indices().numpy(), degree.col_indices().numpy(), degree.values().numpy(), bits, live
    )
    unpacked = np.unpackbits(live.view(np.uint8), axis=1, bitorder="little")[:, : x.shape[1]]  # (2R, C)
    return torch.from_numpy(unpacked.T.astype(np.bool_))


def warm_up() -> None:
    """Compile (or load from numba's cache) every kernel for float32 inputs, so no query pays for it."""
    if njit is None:
        return
    crow, col = torch.tensor([0, 1, 1]), torch.tensor([0])
    x = torch.ones(2, 1)
    weighted_rows(
        crow, col, torch.ones(1), torch.tensor([1, 0]), [0, 1, 2], x, torch.ones(1, 2), torch.zeros(2, 1)
    )
    degree = torch.sparse_csr_tensor(crow, col, torch.ones(1), size=(2, 2), check_invariants=False)
    live_directions(degree, x, 0.5)
