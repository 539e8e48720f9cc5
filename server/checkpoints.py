"""Trained reasoner checkpoints, one per graph, under ``<data dir>/checkpoints/<graph>.pt``.

Written atomically (temporary file, fsync, rename), so a server polling for changes never reads half a file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from gnn.models.question_reasoner import QuestionReasoner

CHECKPOINT_DIR = "checkpoints"


def checkpoint_path(data_dir: Path, graph: str) -> Path:
    return Path(data_dir) / CHECKPOINT_DIR / f"{graph}.pt"


def save_checkpoint(path: Path, model: QuestionReasoner, meta: dict[str, Any]) -> None:
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


def load_checkpoint(path: Path) -> tuple[QuestionReasoner, dict[str, Any]]:
    """The model and metadata stored at ``path``; ValueError when the file is not a reasoner checkpoint."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        return QuestionReasoner.from_checkpoint(checkpoint), checkpoint.get("meta", {})
    except (RuntimeError, KeyError, TypeError, EOFError) as error:
        raise ValueError(f"{path} is not a readable graphfuse reasoner checkpoint: {error}") from error
