"""Reads what a sentence-transformers model directory says about pooling, normalisation and limits.

A sentence-transformers directory holds a Hugging Face model plus `modules.json`, which lists the
modules applied after it (`Pooling`, `Normalize`, ...), each with its own config folder. A plain
Hugging Face directory (no `modules.json`) is read as a transformer followed by mean pooling.
Rows are always L2-normalised by the encoder, so a `Normalize` module needs no flag here.
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# legacy pooling config keys -> pooling mode (sentence_transformers.models.Pooling)
_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
POOLING_MODES = ("mean", "cls")
# a hub id quoted in the model card's usage example: SentenceTransformer('owner/name')
_CARD_ID = re.compile(r"""(?:SentenceTransformer|from_pretrained)\(\s*['"]([\w.-]+/[\w.-]+)['"]""")


@dataclass
class ModelDir:
    transformer_dir: Path  # where config.json, the tokenizer and the weights are
    name: str  # hub id when the directory names one, else the directory's name
    pooling: str = "mean"  # one of POOLING_MODES
    max_seq_length: int | None = None  # from sentence_bert_config.json
    do_lower_case: bool = False  # from sentence_bert_config.json


def read_model_dir(path: str | Path) -> ModelDir:
    """Reads `path`; raises ValueError for a module this package does not implement."""
    root = Path(path)
    if not (root / "config.json").is_file() and not (root / "modules.json").is_file():
        raise FileNotFoundError(
            f"Expected a Hugging Face model directory with a config.json (got {str(root)!r})"
        )
    transformer_dir, pooling = root, "mean"
    modules = _read_json(root / "modules.json") or []
    for module in modules:
        kind = module.get("type", "").rsplit(".", 1)[-1]
        folder = root / module.get("path", "")
        if kind == "Transformer":
            transformer_dir = folder
        elif kind == "Pooling":
            pooling = _pooling_mode(_read_json(folder / "config.json") or {})
        elif kind != "Normalize":
            raise ValueError(
                f"Expected only Transformer, Pooling and Normalize modules in modules.json (got {kind!r})"
            )
    st_config = _read_json(transformer_dir / "sentence_bert_config.json") or {}
    return ModelDir(
        transformer_dir=transformer_dir,
        name=_model_name(root, transformer_dir),
        pooling=pooling,
        max_seq_length=st_config.get("max_seq_length"),
        do_lower_case=bool(st_config.get("do_lower_case", False)),
    )


def _pooling_mode(config: dict[str, Any]) -> str:
    mode = config.get("pooling_mode")
    if mode is None:
        modes = [m for key, m in _POOLING_KEYS.items() if config.get(key)]
        mode = modes[0] if len(modes) == 1 else tuple(modes) or "mean"
    if mode not in POOLING_MODES:
        raise ValueError(f"Expected pooling mode in {POOLING_MODES} (got {mode!r})")
    return mode


def _model_name(root: Path, transformer_dir: Path) -> str:
    readme = root / "README.md"
    if readme.is_file():
        match = _CARD_ID.search(readme.read_text(encoding="utf-8", errors="replace"))
        if match:
            return match.group(1)
    config = _read_json(transformer_dir / "config.json") or {}
    name = config.get("_name_or_path", "")
    if re.fullmatch(r"[\w.-]+/[\w.-]+", name) and not Path(name).exists():
        return name
    return root.resolve().name


def _read_json(path: Path) -> Any:
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)
