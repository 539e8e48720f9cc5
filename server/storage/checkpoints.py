"""Trained checkpoints, one per graph and task: the question reasoner at
``<data dir>/checkpoints/<graph>.pt``, the link predictor at ``<data dir>/checkpoints/link/<graph>.pt``
and the recommender at ``<data dir>/checkpoints/recommend/<graph>.pt``.

Written atomically (temporary file, fsync, rename), so a server polling for changes never reads half a file.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

from graphfuse.gnn.inference.recommendations import Recommendation
from graphfuse.gnn.models.link_predictor import LinkEnsemble, LinkPredictor
from graphfuse.gnn.models.path_patterns import PathPatternPredictor
from graphfuse.gnn.models.question_reasoner import QuestionReasoner

Model = QuestionReasoner | LinkPredictor | LinkEnsemble | PathPatternPredictor | Recommendation

CHECKPOINT_DIR = "checkpoints"


TASKS = ("qa", "link", "recommend")


def checkpoint_path(data_dir: Path, graph: str, task: str = "qa") -> Path:
    if task not in TASKS:
        raise ValueError(f"Expected 'task' to be one of {', '.join(TASKS)} (got {task!r})")
    folder = Path(data_dir) / CHECKPOINT_DIR
    return (folder if task == "qa" else folder / task) / f"{graph}.pt"


def save_checkpoint(path: Path, model: Model, meta: dict[str, Any]) -> None:
    """Write ``model`` and ``meta`` (how it was trained, its held-out metrics) to ``path`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save({**model.checkpoint(), "meta": meta}, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path) -> tuple[Model, dict[str, Any]]:
    """The model and metadata stored at ``path``; ValueError when the file is not a graphfuse checkpoint."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        if checkpoint.get("kind") == "link_predictor":
            return LinkPredictor.from_checkpoint(checkpoint), checkpoint.get("meta", {})
        if checkpoint.get("kind") == "link_ensemble":
            return LinkEnsemble.from_checkpoint(checkpoint), checkpoint.get("meta", {})
        if checkpoint.get("kind") == PathPatternPredictor.kind:
            return PathPatternPredictor.from_checkpoint(checkpoint), checkpoint.get("meta", {})
        if checkpoint.get("kind") == "recommender":
            meta = checkpoint.get("meta", {})
            return Recommendation.from_checkpoint(checkpoint, meta.get("description", path.name)), meta
        return QuestionReasoner.from_checkpoint(checkpoint), checkpoint.get("meta", {})
    except (RuntimeError, KeyError, TypeError, EOFError, AttributeError, pickle.UnpicklingError) as error:
        raise ValueError(f"{path} is not a readable graphfuse checkpoint: {error}") from error
