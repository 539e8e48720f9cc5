"""QA metrics: Hits@k and answer-set F1, overall and by hop count."""

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
) -> dict[str, QAMetrics]:
    """Metrics by hop count (``"1"``, ``"2"``, ...) and over all questions (``"all"``).

    Args:
        ranked: answers of each question, best first.
        predicted_sets: the answer set each question commits to (for F1).
        gold: the correct answers of each question.
        hops: hop count of each question (0 = unknown).
    """
    groups: dict[str, list[int]] = defaultdict(list)
    for i, h in enumerate(hops):
        groups[str(h) if h else "?"].append(i)
        groups["all"].append(i)
    out = {}
    for name, members in sorted(groups.items(), key=lambda kv: (kv[0] == "all", kv[0])):
        n = len(members)
        h1 = sum(bool(ranked[i]) and ranked[i][0] in set(gold[i]) for i in members) / n
        h5 = sum(bool(set(ranked[i][:5]) & set(gold[i])) for i in members) / n
        f1 = sum(answer_f1(predicted_sets[i], set(gold[i])) for i in members) / n
        out[name] = QAMetrics(n, h1, h5, f1)
    return out
