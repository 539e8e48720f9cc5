"""A training-free graph-filter recommender for user x item interactions, in the GF-CF / SGFCF family.

With ``R`` the binary ``(U, I)`` interaction matrix of the fit and ``d_u``, ``d_i`` its user and item degrees,
the normalised interactions are ``R~ = D_u^-a R D_i^-b`` (generalised exponents, as in SGFCF; GF-CF uses
a = b = 1/2). A user's current row ``x`` (binary, ``(I,)``) is scored by two filters of the item-item graph
``R~^T R~`` and a popularity term:

    s(x) = (x G  +  c / s_1^2 * x G^2) * d_i^p  +  w * (x D_i^-b) V V^T D_i^b,    G = R~^T R~

* the *linear* low-pass filter ``x G`` (GF-CF's main term), run as two sparse products over the ``E``
  stored edges, so it is exact and full-rank;
* a *second-order* correction ``x G^2`` (two more sparse products), scaled by ``s_1^2`` (the largest
  eigenvalue of ``G``, ``s_1`` the top singular value of ``R~``) so that ``c`` is unitless: with ``c < 0``
  the polynomial ``G + c G^2 / s_1^2`` damps the lowest frequencies (the popular directions), which the
  ideal filter already covers, in favour of the middle of the spectrum (as Turbo-CF's polynomial filters);
* the *ideal* low-pass filter: ``V`` holds the top-k right singular vectors of ``R~`` (GF-CF's ideal
  filter: into the normalised item space with ``D_i^-b`` and back out with ``D_i^b``), weighted by ``w``;
* ``d_i^p`` gives the two graph terms back some item popularity (``p`` = 0 scores them in the normalised
  space).

Scores depend only on the given rows, never on rows stored at fit, so a new interaction changes a user's
scores at once and users unseen at fit are scored too. Nothing is learned by gradient descent: the fit is
degree counting plus one truncated SVD.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.linalg import svds
from torch import Tensor
from tqdm import tqdm


@dataclass(frozen=True)
class GraphFilterConfig:
    """Defaults were picked on Gowalla's valid split and on a test-like split of train + valid (21.1 % of each
    user's interactions held out, as the test split holds; see bench/recommend_quality.py). ``ideal_weight=0``
    skips the SVD (fit in a fraction of a second) for 0.004 less Recall@20 on valid (0.2210 / 0.1294 against
    0.2250 / 0.1302 Recall@20 / NDCG@20 with these defaults).

    ``second_order_weight=-1`` makes the graph terms ``G (1 - G / s_1^2)``: zero on the most popular direction
    (which the ideal filter carries) and a band-pass below it; with it, popularity comes back through ``p``.
    Recall@20 / NDCG@20 with (p, w, c) = (0.25, 0.3, -0.3) -> (0.45, 0.45, -1.0): 0.2212 / 0.1261 -> 0.2250 /
    0.1302 on valid, 0.2077 / 0.1481 -> 0.2100 / 0.1516 on the test-like split (seed 0). Weaker damping
    (c = -0.5, -0.7), stronger (-1.3, -1.7, -2.2), a third-order term, element-wise powers of ``G`` and its
    top-k rows per item all scored lower there."""

    user_exponent: float = 0.4  # a in R~ = D_u^-a R D_i^-b
    item_exponent: float = 0.55  # b in R~ = D_u^-a R D_i^-b
    popularity_exponent: float = 0.45  # p: scores are multiplied by d_i^p
    ideal_weight: float = 0.45  # w: weight of the ideal low-pass filter (0 skips the SVD)
    ideal_rank: int = 512  # k: singular vectors kept for the ideal filter
    # The ideal filter's scores leave the normalised item space with D_i^b, as GF-CF's do (False: they are
    # scaled by d_i^p like the graph terms, as before this option; Recall@20 / NDCG@20 0.2190 / 0.1255 ->
    # 0.2212 / 0.1261 on valid and 0.2044 / 0.1461 -> 0.2077 / 0.1481 on the test-like split).
    ideal_maps_back: bool = True
    second_order_weight: float = -1.0  # c: weight of x G^2 / s_1^2 (0 skips its two sparse products)
    seed: int = 0  # start vector of the SVD (results are reproducible)


def _check_pairs(users: Tensor, items: Tensor, num_users: int, num_items: int) -> None:
    if users.dim() != 1 or users.shape != items.shape:
        raise ValueError(
            f"Expected 'users' and 'items' to be (E,) tensors of one length (got {tuple(users.shape)} "
            f"and {tuple(items.shape)})"
        )
    if users.numel() and (users.min() < 0 or users.max() >= num_users):
        raise ValueError(f"Expected user ids in [0, {num_users}) (got [{users.min()}, {users.max()}])")
    if items.numel() and (items.min() < 0 or items.max() >= num_items):
        raise ValueError(f"Expected item ids in [0, {num_items}) (got [{items.min()}, {items.max()}])")


def _inverse_power(degree: np.ndarray, exponent: float) -> np.ndarray:
    """``degree^-exponent``, 0 where the degree is 0."""
    out = np.zeros_like(degree, dtype=np.float64)
    seen = degree > 0
    out[seen] = degree[seen].astype(np.float64) ** -exponent
    return out


def _top_singular_value(matrix: sp.csr_matrix, seed: int) -> float:
    """The largest singular value of ``matrix`` (a few Lanczos steps)."""
    start = np.random.default_rng(seed).standard_normal(min(matrix.shape))
    return float(svds(matrix.astype(np.float64), k=1, v0=start, return_singular_vectors=False)[0])


def _to_csr(matrix: sp.csr_matrix) -> Tensor:
    return torch.sparse_csr_tensor(
        torch.from_numpy(matrix.indptr.astype(np.int64)),
        torch.from_numpy(matrix.indices.astype(np.int64)),
        torch.from_numpy(matrix.data.astype(np.float32)),
        size=matrix.shape,
    )


class GraphFilterRecommender:
    """Scores every item for a block of users from their current interaction rows.

    Build it with :meth:`fit` (or :meth:`from_state_dict`); it holds ``R~`` twice (row- and column-major,
    for the two sparse products), the ``(I, k)`` singular vectors and two ``(I,)`` item scalings.

    Args:
        config: exponents and the ideal filter's weight and rank.
        normalized: ``(U, I)`` CSR ``R~``; normalized_t: its transpose, ``(I, U)`` CSR.
        vectors: ``(I, k)`` top right singular vectors of ``R~`` (``k`` = 0 without the ideal filter).
        input_scale: ``(I,)`` ``d_i^-b``; output_scale: ``(I,)`` ``d_i^p``.
        second_order: the coefficient of ``x G^2``, ``c / s_1^2`` (0 skips the term).
    """

    def __init__(
        self,
        config: GraphFilterConfig,
        normalized: Tensor,
        normalized_t: Tensor,
        vectors: Tensor,
        input_scale: Tensor,
        output_scale: Tensor,
        second_order: float = 0.0,
    ) -> None:
        self.config = config
        self.num_users, self.num_items = normalized.shape
        self._normalized = normalized
        self._normalized_t = normalized_t
        self.vectors = vectors
        self.input_scale = input_scale
        self.output_scale = output_scale
        self.second_order = float(second_order)
        # (I,): the ideal filter's output scaling, d_i^b (or d_i^p, see GraphFilterConfig.ideal_maps_back)
        back = torch.where(input_scale > 0, input_scale.reciprocal(), torch.zeros_like(input_scale))
        self.ideal_scale = back if config.ideal_maps_back else output_scale

    @classmethod
    def fit(
        cls,
        users: Tensor,
        items: Tensor,
        num_users: int,
        num_items: int,
        config: GraphFilterConfig | None = None,
        progress: bool = False,
    ) -> GraphFilterRecommender:
        """Fit on interaction pairs (duplicates are counted once).

        Args:
            users, items: ``(E,)`` long tensors of user and item ids.
            num_users, num_items: the id ranges (users and items without interactions are allowed).
            config: defaults to :class:`GraphFilterConfig`'s (tuned on Gowalla).
            progress: show the fit's steps.
        """
        config = config or GraphFilterConfig()
        _check_pairs(users, items, num_users, num_items)
        steps = tqdm(total=2, desc="graph filter fit", disable=not progress)
        users_np, items_np = users.cpu().numpy(), items.cpu().numpy()
        ones = np.ones(users_np.shape[0], dtype=np.float32)
        interactions = sp.csr_matrix((ones, (users_np, items_np)), shape=(num_users, num_items))
        interactions.sum_duplicates()
        interactions.data[:] = 1.0
        user_degree = np.asarray(interactions.sum(axis=1)).ravel()
        item_degree = np.asarray(interactions.sum(axis=0)).ravel()
        input_scale = _inverse_power(item_degree, config.item_exponent)
        normalized = sp.diags(_inverse_power(user_degree, config.user_exponent)) @ interactions
        normalized = (normalized @ sp.diags(input_scale)).tocsr().astype(np.float32)
        steps.update()
        rank = min(config.ideal_rank, min(num_users, num_items) - 1) if config.ideal_weight else 0
        vectors = np.zeros((num_items, 0), dtype=np.float32)
        top_singular = 0.0
        if rank > 0 and normalized.nnz:
            start = np.random.default_rng(config.seed).standard_normal(min(normalized.shape))
            _, values, vt = svds(normalized.astype(np.float64), k=rank, v0=start)  # vt: (k, I)
            vectors = np.ascontiguousarray(vt.T, dtype=np.float32)
            top_singular = float(values.max())
        second_order = 0.0
        if config.second_order_weight and normalized.nnz:
            top_singular = top_singular or _top_singular_value(normalized, config.seed)
            second_order = config.second_order_weight / top_singular**2 if top_singular > 0 else 0.0
        steps.update()
        steps.close()
        output_scale = np.zeros_like(input_scale)
        output_scale[item_degree > 0] = item_degree[item_degree > 0] ** config.popularity_exponent
        return cls(
            config,
            _to_csr(normalized),
            _to_csr(normalized.T.tocsr()),
            torch.from_numpy(vectors),
            torch.from_numpy(input_scale.astype(np.float32)),
            torch.from_numpy(output_scale.astype(np.float32)),
            second_order,
        )

    @torch.no_grad()
    def score(self, rows: Tensor) -> Tensor:
        """Scores of every item for each row; known items are not masked.

        Args:
            rows: ``(B, I)`` sparse CSR (or dense) float tensor, 1.0 per current interaction; users may be
                unseen at fit.

        Shapes:
            returns ``(B, I)`` dense, on the model's device; ``-inf`` at items no co-interaction path reaches
            (no user shares an item with the row and has this one). Such an item has no evidence, and the
            band-pass terms score reachable items below zero at times, so it would otherwise outrank them.
        """
        if rows.dim() != 2 or rows.shape[1] != self.num_items:
            raise ValueError(f"Expected rows of shape (B, {self.num_items}) (got {tuple(rows.shape)})")
        rows = rows.to(self.vectors.device)
        x_t = rows.to_dense().to(torch.float32).T.contiguous()  # (I, B); the sparse products read a strided
        # block 1.5-2.3x slower (16-256 users)
        hidden = self._normalized @ x_t  # (U, B)
        scores = self._normalized_t @ hidden  # (I, B): x G
        reachable = scores > 0  # a co-interaction path reaches the item (row -> other user -> item)
        if self.second_order:
            second = self._normalized_t @ (self._normalized @ scores)  # (I, B): x G^2
            scores = scores.add_(second, alpha=self.second_order)
        scores = scores.mul_(self.output_scale[:, None])
        if self.vectors.shape[1]:
            ideal = self.vectors @ self._coefficients(rows, x_t)  # (I, B)
            scores = scores.addcmul_(ideal, self.ideal_scale[:, None], value=self.config.ideal_weight)
        return scores.masked_fill_(~reachable, float("-inf")).T  # (B, I)

    def _coefficients(self, rows: Tensor, x_t: Tensor) -> Tensor:
        """``(k, B)``: ``V^T (x D_i^-b)``. From sparse rows only the rows of ``V`` of each user's items are
        read (a few dozen of ``I``: ~100x less work than the dense product, a fifth of a single user's
        scoring)."""
        if rows.layout != torch.sparse_csr:
            return self.vectors.T @ (x_t * self.input_scale[:, None])
        col = rows.col_indices()
        weighted = torch.sparse_csr_tensor(
            rows.crow_indices(), col, rows.values().float() * self.input_scale[col], size=rows.shape
        )
        return (weighted @ self.vectors).T

    def normalized_interactions(self) -> Tensor:
        """The fitted ``R~ = D_u^-a R D_i^-b``, ``(num_users, num_items)`` sparse CSR."""
        return self._normalized

    def normalized_interactions_by_item(self) -> Tensor:
        """The same ``R~`` transposed, ``(num_items, num_users)`` sparse CSR: each item's users, weighted."""
        return self._normalized_t

    def to(self, device: torch.device | str) -> GraphFilterRecommender:
        """A copy whose tensors live on ``device``."""
        moved = (self._normalized, self._normalized_t, self.vectors, self.input_scale, self.output_scale)
        return type(self)(self.config, *(t.to(device) for t in moved), self.second_order)

    def state_dict(self) -> dict:
        """Plain tensors and the config (``torch.load(..., weights_only=True)`` reads it)."""
        csr = self._normalized.cpu()
        return {
            "config": asdict(self.config),
            "shape": [self.num_users, self.num_items],
            "crow_indices": csr.crow_indices(),
            "col_indices": csr.col_indices(),
            "values": csr.values(),
            "vectors": self.vectors.cpu(),
            "input_scale": self.input_scale.cpu(),
            "output_scale": self.output_scale.cpu(),
            "second_order": torch.tensor(self.second_order, dtype=torch.float64),
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> GraphFilterRecommender:
        """Rebuild a model saved by :meth:`state_dict`; config keys this version lacks are ignored, and a
        checkpoint of an older version (without the second-order term, or with the ideal filter scaled by
        ``d_i^p``) scores as it did."""
        normalized = torch.sparse_csr_tensor(
            state["crow_indices"], state["col_indices"], state["values"], size=tuple(state["shape"])
        )
        transposed = normalized.to_sparse_coo().t().to_sparse_csr()
        known = {f.name for f in fields(GraphFilterConfig)}
        config = {key: value for key, value in state["config"].items() if key in known}
        second_order = float(state.get("second_order", 0.0))
        config.setdefault("second_order_weight", 0.0)
        config.setdefault("ideal_maps_back", False)
        return cls(
            GraphFilterConfig(**config),
            normalized,
            transposed,
            state["vectors"],
            state["input_scale"],
            state["output_scale"],
            second_order,
        )

    def memory_bytes(self) -> int:
        """Bytes of the tensors the model holds."""
        total = sum(t.numel() * t.element_size() for t in (self.vectors, self.input_scale, self.output_scale))
        for csr in (self._normalized, self._normalized_t):
            parts = (csr.crow_indices(), csr.col_indices(), csr.values())
            total += sum(t.numel() * t.element_size() for t in parts)
        return total

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(users={self.num_users}, items={self.num_items}, "
            f"edges={self._normalized.values().numel()}, rank={self.vectors.shape[1]}, "
            f"second_order={self.second_order:.3g})"
        )
