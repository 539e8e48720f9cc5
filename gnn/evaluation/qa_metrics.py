"""QA metrics: Hits@k, answer-set F1 and the calibration of the top score, overall and by hop count."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class QAMetrics:
    questions: int
    hits_at_1: float
    hits_at_5: float
    f1: float
    ece: float  # expected calibration error of the top answer's score against its correctness (10 bins)


def expected_calibration_error(
    confidences: Sequence[float], correct: Sequence[bool], bins: int = 10
) -> float:
    """``sum_b |B_b|/n * |accuracy(B_b) - mean confidence(B_b)|`` over equal-width confidence bins."""
    if not confidences:
        return 0.0
    totals = [[0, 0.0, 0.0] for _ in range(bins)]  # count, confidence sum, correct sum
    for confidence, right in zip(confidences, correct, strict=True):
        b = min(int(confidence * bins), bins - 1)
        totals[b][0] += 1
        totals[b][1] += confidence
        totals[b][2] += float(right)
    return sum(abs(c - r) for n, c, r in totals if n) / len(confidences)


def answer_f1(predicted: set, gold: set) -> float:
    if not predicted or not gold:
        return float(predicted == gold)
    overlap = len(predicted & gold)
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(predicted), overlap / len(gold)
    return 2 * precision * recall / (precision + recall)


def qa_metrics(
    ranked: Sequence[Sequence],
    predicted_sets: Sequence[set],
    gold: Sequence[Sequence],
    hops: Sequence[int],
    top_scores: Sequence[float] | None = None,
) -> dict[str, QAMetrics]:
    """Metrics by hop count (``"1"``, ``"2"``, ...) and over all questions (``"all"``).

    Args:
        ranked: answers of each question, best first.
        predicted_sets: the answer set each question commits to (for F1).
        gold: the correct answers of each question.
        hops: hop count of each question (0 = unknown).
        top_scores: the score of each question's top answer (0 when it has none), for calibration.
    """
    groups: dict[str, list[int]] = defaultdict(list)
    for i, h in enumerate(hops):
        groups[str(h) if h else "?"].append(i)
        groups["all"].append(i)
    top_scores = top_scores if top_scores is not None else [0.0] * len(ranked)
    top_right = [bool(ranked[i]) and ranked[i][0] in set(gold[i]) for i in range(len(ranked))]
    out = {}
    for name, members in sorted(groups.items(), key=lambda kv: (kv[0] == "all", kv[0])):
        n = len(members)
        h1 = sum(top_right[i] for i in members) / n
        h5 = sum(bool(set(ranked[i][:5]) & set(gold[i])) for i in members) / n
        f1 = sum(answer_f1(predicted_sets[i], set(gold[i])) for i in members) / n
        ece = expected_calibration_error([top_scores[i] for i in members], [top_right[i] for i in members])
        out[name] = QAMetrics(n, h1, h5, f1, ece)
    return out
