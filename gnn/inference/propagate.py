"""Zero-shot multi-hop propagation: a beam search over relation paths, many questions at once.

Every question starts with mass on its topic entities. At each hop, every kept path is extended by every
directed relation that leaves its frontier; an extension is scored by how well the *bag of relation
phrases* on the path matches the question, ``cos(q, sum_i e_{d_i})``, computed from the question-direction
similarities and the relation Gram matrix (|R| dot products per question, never |E|), plus how well what
the last direction's answers are fits what the question asks for. The best ``beam``
extensions per question survive and their frontiers move along the relation with sparse products, all
paths of all questions in one ``(N, P)`` block per directed relation. Path scores become probabilities
by a softmax over each question's paths; an entity's answer probability sums the paths that reach it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from graphfuse.gnn.data.graph import KnowledgeGraph


@dataclass
class PathSearchConfig:
    """How relation paths are searched and scored.

    A path loses ``length_penalty`` per hop beyond the first, for a question of ``reference_words`` words;
    each word more takes ``penalty_per_word`` off the penalty (each word fewer adds it), within
    ``penalty_range``: the bag of a longer path's relations fits a question's vector more easily, and a
    question that says more is the likelier to ask along more relations. A question of unknown length gets
    the reference penalty.
    """

    beam: int = 8  # paths kept per question at each hop
    length_penalty: float = 0.06
    penalty_per_word: float = 0.0
    reference_words: int = 5
    penalty_range: tuple[float, float] = (0.0, float("inf"))
    temperature: float = 0.05  # softmax temperature from path scores to path probabilities
    answer_weight: float = 0.0  # weight of the answer fit of a path's last direction in its score
    # Score of "no path fits": a path must beat it to carry most of a question's mass; None: no such option
    abstain_score: float | None = None


@dataclass(frozen=True, slots=True)
class RelationPath:
    """A sequence of directed relations walked from a question's topic entities."""

    directions: tuple[int, ...]
    score: float
    probability: float


@dataclass
class PathSearchResult:
    answer_probability: Tensor  # (N, B); topic entities are zero
    paths: list[list[RelationPath]]  # per question, most probable first
    touched_entities: list[int]  # per question: entities that received mass
    touched_edges: list[int]  # per question: edges mass moved along


def search_relation_paths(
    graph: KnowledgeGraph,
    direction_similarity: Tensor,
    relation_gram: Tensor,
    topics: Tensor,
    max_hops: list[int],
    config: PathSearchConfig | None = None,
    answer_fit: Tensor | None = None,
    words: list[int] | None = None,
) -> PathSearchResult:
    """Score relation paths of up to ``max_hops[b]`` hops from each question's topic entities.

    Args:
        graph: the graph to walk.
        direction_similarity: ``(B, 2R)`` cosine of each question with each directed relation.
        relation_gram: ``(R, R)`` cosine between relation names.
        topics: ``(N, B)`` initial mass (topic entities > 0).
        max_hops: hop limit per question.
        config: beam width, length penalty, temperature and answer weight.
        answer_fit: ``(B, 2R)`` how well each direction's answers fit each question (None: not scored).
        words: the number of words each question has, as read (0 or None: unknown); sets its length
            penalty (see :class:`PathSearchConfig`).
    """
    config = config or PathSearchConfig()
    num_questions, num_directions = direction_similarity.shape
    num_relations = num_directions // 2
    if topics.shape != (graph.num_entities, num_questions):
        raise ValueError(
            f"Expected 'topics' of shape {(graph.num_entities, num_questions)} (got {tuple(topics.shape)})"
        )
    base = torch.arange(num_directions) % num_relations  # directed relation -> relation
    self_match = relation_gram.diagonal()[base]
    hop_limit = torch.tensor(max_hops)
    penalty = length_penalties(config, words or [0] * num_questions)
    degree = graph.out_degree()

    frontier = topics.float()  # (N, P): one column per live path; P = B at the start
    owner = torch.arange(num_questions)  # (P,) question of each path
    bag = torch.zeros(num_questions, num_relations)  # (P, R) relation counts on each path
    dot = torch.zeros(num_questions)  # (P,) q . sum(e_r)
    norm_sq = torch.zeros(num_questions)  # (P,) |sum(e_r)|^2
    directions: list[tuple[int, ...]] = [() for _ in range(num_questions)]

    weighted_reach = torch.zeros_like(frontier)  # (N, B) sum over paths of exp-score * reach
    reach = torch.zeros_like(frontier)
    normaliser = torch.zeros(num_questions)
    touched_edges = torch.zeros(num_questions)
    found: list[list[tuple[tuple[int, ...], float, float]]] = [[] for _ in range(num_questions)]

    ceiling = 1.0 + max(config.answer_weight, 0.0)  # the best score a path can have
    for hop in range(1, max(max_hops, default=0) + 1):
        edge_counts = (degree @ frontier).T  # (P, 2R) edges leaving each frontier along each direction
        cand_dot = dot[:, None] + direction_similarity[owner]  # (P, 2R)
        cand_norm_sq = norm_sq[:, None] + 2 * (bag @ relation_gram)[:, base] + self_match
        score = cand_dot / cand_norm_sq.clamp_min(1e-12).sqrt() - (penalty[owner] * (hop - 1))[:, None]
        if answer_fit is not None and config.answer_weight:
            score = score + config.answer_weight * answer_fit[owner]
        alive = (edge_counts > 0) & (hop_limit[owner] >= hop)[:, None]
        score = score.masked_fill(~alive, float("-inf"))

        keep_path, keep_dir = _top_extensions(score, owner, num_questions, config.beam)
        if keep_path.numel() == 0:
            break
        next_frontier = frontier.new_zeros(frontier.shape[0], keep_path.numel())
        for d in keep_dir.unique().tolist():
            cols = (keep_dir == d).nonzero().flatten()
            moved = graph.transition(d).apply(frontier[:, keep_path[cols]])
            next_frontier[:, cols] = moved.clamp_(max=1.0)
        owner = owner[keep_path]
        next_frontier.masked_fill_(topics[:, owner] > 0, 0.0)  # paths never revisit a topic entity

        path_score = score[keep_path, keep_dir]
        weight = torch.exp((path_score - ceiling) / config.temperature)  # <= 1: no overflow
        weight = weight * (next_frontier.sum(0) > 0)  # a path that only led back to the topic answers nothing
        weighted_reach.index_add_(1, owner, next_frontier * weight)
        reach.index_add_(1, owner, next_frontier)
        normaliser.index_add_(0, owner, weight)
        touched_edges.index_add_(0, owner, edge_counts[keep_path, keep_dir])

        bag = bag[keep_path].clone()
        bag[torch.arange(keep_path.numel()), base[keep_dir]] += 1
        dot = cand_dot[keep_path, keep_dir]
        norm_sq = cand_norm_sq[keep_path, keep_dir]
        directions = [
            directions[p] + (d,) for p, d in zip(keep_path.tolist(), keep_dir.tolist(), strict=True)
        ]
        for q, dirs, s, w in zip(
            owner.tolist(), directions, path_score.tolist(), weight.tolist(), strict=True
        ):
            found[q].append((dirs, s, w))
        frontier = next_frontier

    if config.abstain_score is not None:
        normaliser += math.exp((config.abstain_score - ceiling) / config.temperature)
    probability = weighted_reach / normaliser.clamp_min(1e-30)
    probability = probability.clamp_(max=1.0).masked_fill_(topics > 0, 0.0)
    paths = []
    for q in range(num_questions):
        total = float(normaliser[q]) or 1.0
        ranked = sorted(found[q], key=lambda item: -item[2])
        paths.append([RelationPath(dirs, s, w / total) for dirs, s, w in ranked])
    touched = ((reach + topics) > 0).sum(0).tolist()
    return PathSearchResult(probability, paths, touched, [int(e) for e in touched_edges.tolist()])


def length_penalties(config: PathSearchConfig, words: list[int]) -> Tensor:
    """``(B,)`` each question's penalty per hop beyond the first, from its number of words (0: unknown)."""
    counts = torch.tensor(words, dtype=torch.float32)
    extra = torch.where(counts > 0, counts - config.reference_words, torch.zeros_like(counts))
    low, high = config.penalty_range
    return (config.length_penalty - config.penalty_per_word * extra).clamp(low, high)


def _top_extensions(score: Tensor, owner: Tensor, num_questions: int, beam: int) -> tuple[Tensor, Tensor]:
    """The ``beam`` best (path, direction) pairs of every question, as flat index tensors."""
    num_directions = score.shape[1]
    keep_path, keep_dir = [], []
    for q in range(num_questions):
        rows = (owner == q).nonzero().flatten()
        flat = score[rows].flatten()
        k = min(beam, int(torch.isfinite(flat).sum()))
        if k == 0:
            continue
        top = torch.topk(flat, k).indices
        keep_path.append(rows[top // num_directions])
        keep_dir.append(top % num_directions)
    if not keep_path:
        empty = torch.empty(0, dtype=torch.long)
        return empty, empty
    return torch.cat(keep_path), torch.cat(keep_dir)
