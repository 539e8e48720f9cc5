"""Datasets known by name: the small graphs packaged with pykeen, and MetaQA from the shared data folder."""

from __future__ import annotations

import importlib.util
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from graphfuse.gnn.data.records import EntityRecord, Record, TripleRecord, default_name
from graphfuse.gnn.formats.loaders import LoadError, iter_lines, iter_records

__all__ = [
    "PYKEEN_DATASETS",
    "SHARED_DATA_ENV",
    "SPLITS",
    "QAExample",
    "load_metaqa_questions",
    "load_qa_file",
    "load_pykeen_triples",
    "load_umls_demo",
    "pykeen_dataset_dir",
    "shared_data_dir",
]

PYKEEN_DATASETS = ("umls", "kinships", "nations")
SPLITS = ("train", "valid", "test")
SHARED_DATA_ENV = "GRAPHFUSE_SHARED_DATA"

_TOPIC = re.compile(r"\[([^\[\]]*)\]")
_HOPS_DIR = re.compile(r"(\d+)-hop")


def pykeen_dataset_dir(name: str) -> Path:
    r"""The folder inside the installed pykeen package that holds a dataset's ``train/valid/test.txt``.

    The package is located with :func:`importlib.util.find_spec`, which neither imports pykeen (and
    torch) nor uses its download machinery.

    Args:
        name (str): One of :obj:`PYKEEN_DATASETS` (``"umls"``, ``"kinships"``, ``"nations"``).
    """
    if name not in PYKEEN_DATASETS:
        raise ValueError(f"Expected 'name' to be one of {', '.join(PYKEEN_DATASETS)} (got {name!r})")
    spec = importlib.util.find_spec("pykeen")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("The packaged datasets need pykeen, which is not installed")
    directory = Path(next(iter(spec.submodule_search_locations))) / "datasets" / name
    missing = [f"{split}.txt" for split in SPLITS if not (directory / f"{split}.txt").is_file()]
    if missing:
        raise FileNotFoundError(
            f"Expected {', '.join(missing)} in '{directory}' (this pykeen does not ship them)"
        )
    return directory


def load_pykeen_triples(name: str, split: str | None = None) -> list[TripleRecord]:
    r"""The triples of a dataset packaged with pykeen.

    Args:
        name (str): One of :obj:`PYKEEN_DATASETS`.
        split (str, optional): One of :obj:`SPLITS`, or :obj:`None` for all three in that order with
            duplicates removed (first occurrence kept). (default: :obj:`None`)
    """
    if split is not None and split not in SPLITS:
        raise ValueError(f"Expected 'split' to be one of {', '.join(SPLITS)} or None (got {split!r})")
    directory = pykeen_dataset_dir(name)
    triples: list[TripleRecord] = []
    for part in SPLITS if split is None else (split,):
        for record in iter_records(directory / f"{part}.txt", "tsv"):
            assert isinstance(record, TripleRecord)  # the tsv reader yields triples only
            triples.append(record)
    return list(dict.fromkeys(triples)) if split is None else triples


def load_umls_demo() -> list[Record]:
    r"""The server's demo graph: one :class:`EntityRecord` per UMLS entity, named with
    :func:`default_name` (``pharmacologic_substance`` -> ``pharmacologic substance``), in order of
    first appearance, followed by the UMLS triples of all splits."""
    triples = load_pykeen_triples("umls")
    entities = dict.fromkeys(entity for triple in triples for entity in (triple.head, triple.tail))
    records: list[Record] = [EntityRecord(entity, default_name(entity)) for entity in entities]
    return records + triples


@dataclass(frozen=True)
class QAExample:
    """A question with its gold answers.

    Args:
        question (str): The question text, topic-entity brackets removed.
        answers (tuple[str, ...]): The answer entities.
        topic_entities (tuple[str, ...]): The entities the question was marked with. (default: ``()``)
        hops (int, optional): The number of relations between topic entity and answers. (default: :obj:`None`)
    """

    question: str
    answers: tuple[str, ...]
    topic_entities: tuple[str, ...] = ()
    hops: int | None = None


def load_metaqa_questions(path: str | Path, hops: int | None = None) -> list[QAExample]:
    r"""Reads MetaQA questions, one per line: ``question<TAB>answer1|answer2|...``, with the topic entity
    in square brackets (``what movies did [Temuera Morrison] act in``). Blank lines are skipped.

    Args:
        path (str or Path): The file, e.g. ``shared_data_dir() / "metaqa/1-hop/qa_dev.txt"``.
        hops (int, optional): Stored on every example; when :obj:`None`, taken from a folder of the
            path named like ``2-hop``, if there is one. (default: :obj:`None`)
    """
    path = Path(path)
    if hops is not None and (isinstance(hops, bool) or not isinstance(hops, int) or hops < 1):
        raise ValueError(f"Expected 'hops' to be a positive integer or None (got {hops!r})")
    if hops is None:
        matches = [int(match.group(1)) for part in path.parts if (match := _HOPS_DIR.fullmatch(part))]
        hops = matches[-1] if matches else None
    examples = []
    for number, text in iter_lines(path):
        text = text.rstrip("\r\n")
        if text.strip():
            examples.append(_metaqa_question(path, number, text, hops))
    return examples


def load_qa_file(path: str | Path) -> list[QAExample]:
    """Question/answer pairs from JSONL or MetaQA's format (by extension: ``.jsonl``/``.ndjson`` or not).

    A JSONL line is ``{"question": str, "answers": [str, ...], "topic_entities": [str, ...], "hops": int}``;
    ``topic_entities`` and ``hops`` are optional. Answers and topics are entity ids (or names).
    """
    path = Path(path)
    if path.suffix.lower() not in (".jsonl", ".ndjson"):
        return load_metaqa_questions(path)
    examples = []
    for number, text in iter_lines(path):
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise LoadError(path, f"invalid JSON: {error.msg}", line=number) from None
        if not isinstance(value, dict):
            raise LoadError(path, "expected a JSON object", line=number)
        question, answers = value.get("question"), value.get("answers")
        topics, hops = value.get("topic_entities", []), value.get("hops")
        if not isinstance(question, str) or not question.strip():
            raise LoadError(path, "expected 'question' to be a non-empty string", line=number)
        for name, items in (("answers", answers), ("topic_entities", topics)):
            if not isinstance(items, list) or not all(isinstance(a, str) for a in items):
                raise LoadError(path, f"expected {name!r} to be a list of strings", line=number)
        if not answers:
            raise LoadError(path, "expected at least one answer", line=number)
        if hops is not None and (isinstance(hops, bool) or not isinstance(hops, int) or hops < 1):
            raise LoadError(path, f"expected 'hops' to be a positive integer (got {hops!r})", line=number)
        examples.append(QAExample(question, tuple(answers), tuple(topics), hops))
    return examples


def _metaqa_question(path: Path, line: int, text: str, hops: int | None) -> QAExample:
    fields = text.split("\t")
    if len(fields) != 2:
        reason = f"expected 2 tab-separated fields (question, answer1|answer2|...), got {len(fields)}"
        raise LoadError(path, reason, line=line)
    marked, answer_text = fields
    topics = tuple(topic.strip() for topic in _TOPIC.findall(marked))
    question = " ".join(_TOPIC.sub(r"\1", marked).split())
    if "[" in question or "]" in question or any(not topic for topic in topics):
        raise LoadError(path, f"expected the topic entity as one '[name]', got {marked!r}", line=line)
    answers = tuple(answer.strip() for answer in answer_text.split("|") if answer.strip())
    if not question or not answers:
        raise LoadError(path, f"expected a question and at least one answer, got {text!r}", line=line)
    return QAExample(question, answers, topics, hops)


def shared_data_dir() -> Path:
    r"""The shared data folder: ``$GRAPHFUSE_SHARED_DATA`` when set, else ``../shared/data`` beside the
    repository root. Raises :class:`FileNotFoundError` saying where it looked when the folder is absent."""
    configured = os.environ.get(SHARED_DATA_ENV)
    if configured:
        directory = Path(configured).expanduser()
        source = f"${SHARED_DATA_ENV}"
    else:
        directory = Path(__file__).resolve().parents[3] / "shared" / "data"  # gnn/formats/ -> ../shared
        source = f"the default beside the repository (set ${SHARED_DATA_ENV} to choose another)"
    if not directory.is_dir():
        raise FileNotFoundError(
            f"Expected the shared data folder at '{directory}' from {source} (no such folder)"
        )
    return directory
