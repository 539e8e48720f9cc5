"""Encoded relation phrases, as the zero-shot reasoner matches questions against them, each way."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class RelationVectors:
    """Every phrase of every directed relation (``r`` reads head to tail, ``R + r`` tail to head), encoded.

    A question matches a directed relation as well as it matches the best of its phrases; ``answers`` holds
    what each direction's answers are (their kind, or typical names), zero where nothing is known.
    """

    names: Tensor  # (R, D) each relation's main phrase, head to tail
    texts: Tensor  # (T, D) every phrase of every direction
    text_direction: Tensor  # (T,) the directed relation each phrase describes
    answers: Tensor  # (2R, D)

    @classmethod
    def from_names(cls, names: Tensor) -> RelationVectors:
        """Each relation matched by its name alone, the same both ways, answers unknown."""
        num_relations = names.shape[0]
        return cls(
            names,
            torch.cat([names, names]),
            torch.arange(2 * num_relations),
            names.new_zeros(2 * num_relations, names.shape[1]),
        )

    @classmethod
    def from_phrases(
        cls, names: Tensor, forward: Sequence[Tensor], inverse: Sequence[Tensor], answers: Tensor
    ) -> RelationVectors:
        """From each relation's ``(T_r, D)`` phrase vectors each way and the ``(2R, D)`` answer vectors."""
        num_relations = names.shape[0]
        if len(forward) != num_relations or len(inverse) != num_relations:
            raise ValueError(
                f"Expected phrases of {num_relations} relations each way (got {len(forward)}, {len(inverse)})"
            )
        blocks = [*forward, *inverse]
        direction = torch.repeat_interleave(
            torch.arange(2 * num_relations), torch.tensor([b.shape[0] for b in blocks], dtype=torch.long)
        )
        texts = torch.cat(blocks) if blocks else names.new_zeros(0, names.shape[1])
        return cls(names, texts, direction, answers)

    @property
    def num_relations(self) -> int:
        return self.names.shape[0]

    def direction_similarity(self, questions: Tensor) -> Tensor:
        """``(B, 2R)`` cosine of each question with the best phrase of each directed relation (-1 for a
        direction without phrases)."""
        similarity = questions @ self.texts.T  # (B, T)
        best = similarity.new_full((questions.shape[0], 2 * self.num_relations), -1.0)
        index = self.text_direction.expand(questions.shape[0], -1)
        return best.scatter_reduce_(1, index, similarity, reduce="amax")

    def answer_fit(self, questions: Tensor) -> Tensor:
        """``(B, 2R)`` cosine of each question with what each direction's answers are (0 where unknown)."""
        return questions @ self.answers.T
