"""Evaluation-only natural-language questions over graphs without training questions.

See ``questions.py`` for the wording schema; run ``python -m bench.any_graph_eval.questions --check``.
The names below are re-exported lazily so that running the module with ``-m`` stays warning-free.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.any_graph_eval.questions import (
        FREEBASE_RELATIONS,
        GRAPHS,
        EvalQuestion,
        GraphData,
        content_words,
        load_graph,
        make_questions,
        question_overlaps,
        words_overlap,
    )

__all__ = [
    "FREEBASE_RELATIONS",
    "GRAPHS",
    "EvalQuestion",
    "GraphData",
    "content_words",
    "load_graph",
    "make_questions",
    "question_overlaps",
    "words_overlap",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("bench.any_graph_eval.questions"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
