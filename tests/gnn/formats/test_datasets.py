import re
from itertools import islice
from pathlib import Path

import pytest

from graphfuse.gnn.data.records import EntityRecord, TripleRecord
from graphfuse.gnn.formats.datasets import (
    SHARED_DATA_ENV,
    QAExample,
    load_metaqa_questions,
    load_pykeen_triples,
    load_qa_file,
    load_umls_demo,
    pykeen_dataset_dir,
    shared_data_dir,
)
from graphfuse.gnn.formats.loaders import METAQA_RELATIONS, LoadError, detect_format, iter_records


def shared_or_skip() -> Path:
    try:
        return shared_data_dir()
    except FileNotFoundError as error:
        pytest.skip(f"shared data is absent: {error}")


def counts(triples: list[TripleRecord]) -> tuple[int, int, int]:
    entities = {t.head for t in triples} | {t.tail for t in triples}
    return len(entities), len({t.relation for t in triples}), len(triples)


# ---------------------------------------------------------------- packaged pykeen datasets


@pytest.mark.parametrize(
    ("name", "expected"),
    [("umls", (135, 46, 6529)), ("kinships", (104, 25, 10686)), ("nations", (14, 55, 1992))],
)
def test_pykeen_datasets_have_their_published_sizes(name, expected):
    triples = load_pykeen_triples(name)
    assert counts(triples) == expected
    assert len(set(triples)) == len(triples)


def test_umls_splits():
    sizes = {split: len(load_pykeen_triples("umls", split)) for split in ("train", "valid", "test")}
    assert sizes == {"train": 5216, "valid": 652, "test": 661}
    assert load_pykeen_triples("umls", "train")[0] == TripleRecord(
        "acquired_abnormality", "location_of", "experimental_model_of_disease"
    )
    treats = TripleRecord("pharmacologic_substance", "treats", "disease_or_syndrome")
    assert treats in load_pykeen_triples("umls")


def test_pykeen_dataset_dir_is_inside_the_installed_package():
    directory = pykeen_dataset_dir("nations")
    assert directory.parts[-3:] == ("pykeen", "datasets", "nations")
    assert {"train.txt", "valid.txt", "test.txt"} <= {path.name for path in directory.iterdir()}


def test_unknown_dataset_and_split_are_rejected():
    with pytest.raises(ValueError, match=r"one of umls, kinships, nations \(got 'fb15k'\)"):
        pykeen_dataset_dir("fb15k")
    with pytest.raises(ValueError, match=r"one of train, valid, test or None \(got 'dev'\)"):
        load_pykeen_triples("umls", "dev")


def test_umls_demo_names_entities_with_spaces():
    records = load_umls_demo()
    entities = [record for record in records if isinstance(record, EntityRecord)]
    triples = [record for record in records if isinstance(record, TripleRecord)]
    assert (len(entities), len(triples)) == (135, 6529)
    assert records[: len(entities)] == entities  # entities come before the triples that use them
    names = {entity.id: entity.name for entity in entities}
    assert names["pharmacologic_substance"] == "pharmacologic substance"
    assert names["acquired_abnormality"] == "acquired abnormality"
    assert all("_" not in name for name in names.values())
    assert {t.head for t in triples} | {t.tail for t in triples} == set(names)


# ---------------------------------------------------------------- MetaQA

SAMPLE = (
    "what movies did [Temuera Morrison] act in\tOnce Were Warriors|Tracker|River Queen\n"
    "\n"
    "[Kismet] was directed by who\tWilliam Dieterle\n"
    "what is the rating of [Paris, Texas]\tgood \n"
)


def test_metaqa_questions_from_an_inline_sample(tmp_path):
    path = tmp_path / "2-hop" / "qa_dev.txt"
    path.parent.mkdir()
    path.write_text(SAMPLE, encoding="utf-8")
    examples = load_metaqa_questions(path)
    assert examples == [
        QAExample(
            "what movies did Temuera Morrison act in",
            ("Once Were Warriors", "Tracker", "River Queen"),
            ("Temuera Morrison",),
            2,
        ),
        QAExample("Kismet was directed by who", ("William Dieterle",), ("Kismet",), 2),
        QAExample("what is the rating of Paris, Texas", ("good",), ("Paris, Texas",), 2),
    ]
    assert load_metaqa_questions(path, hops=1)[0].hops == 1  # an explicit count wins over the folder


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("what did [X] do\n", "expected 2 tab-separated fields"),
        ("what did [X] do\t\n", "at least one answer"),
        ("what did [X do\tY\n", "expected the topic entity as one '[name]'"),
        ("what did [] do\tY\n", "expected the topic entity"),
    ],
)
def test_malformed_metaqa_questions(tmp_path, text, reason):
    path = tmp_path / "qa.txt"
    path.write_text("who is [A]\tB\n" + text, encoding="utf-8")
    with pytest.raises(LoadError, match=rf"qa\.txt:2: .*{re.escape(reason)}"):
        load_metaqa_questions(path)
    with pytest.raises(ValueError, match="positive integer"):
        load_metaqa_questions(path, hops=0)


@pytest.mark.parametrize(("hops", "size"), [(1, 9992), (2, 14872), (3, 14274)])
def test_real_metaqa_questions(hops, size):
    examples = load_metaqa_questions(shared_or_skip() / "metaqa" / f"{hops}-hop" / "qa_dev.txt")
    assert len(examples) == size
    assert all(example.hops == hops and len(example.topic_entities) == 1 for example in examples)
    if hops == 1:
        assert examples[0] == QAExample(
            "what movies did Temuera Morrison act in",
            ("Once Were Warriors", "Tracker", "River Queen"),
            ("Temuera Morrison",),
            1,
        )
        assert examples[1].topic_entities == ("Evelyn Venable",)


def test_real_metaqa_kb_streams(tmp_path):
    path = shared_or_skip() / "metaqa" / "kb.txt"
    assert detect_format(path) == "metaqa"
    first = list(islice(iter_records(path), 1000))
    assert len(first) == 1000
    assert first[0] == TripleRecord("Kismet", "directed_by", "William Dieterle")
    assert {triple.relation for triple in first} <= METAQA_RELATIONS


# ---------------------------------------------------------------- shared data folder


def test_shared_data_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(SHARED_DATA_ENV, str(tmp_path))
    assert shared_data_dir() == tmp_path
    monkeypatch.setenv(SHARED_DATA_ENV, str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match=rf"absent' from \${SHARED_DATA_ENV}"):
        shared_data_dir()


def test_shared_data_dir_default_is_beside_the_repository(monkeypatch):
    monkeypatch.delenv(SHARED_DATA_ENV, raising=False)
    expected = Path(__file__).resolve().parents[4] / "shared" / "data"  # tests/gnn/formats/ -> ../shared
    if expected.is_dir():
        assert shared_data_dir() == expected
    else:
        with pytest.raises(FileNotFoundError, match=str(expected)):
            shared_data_dir()


def test_load_qa_file_reads_jsonl_and_metaqa(tmp_path):
    jsonl = tmp_path / "qa.jsonl"
    jsonl.write_text(
        '{"question": "what does aspirin treat", "answers": ["pain"], '
        '"topic_entities": ["aspirin"], "hops": 1}\n'
        "\n"
        '{"question": "who directed Big", "answers": ["Penny Marshall"]}\n'
    )
    first, second = load_qa_file(jsonl)
    assert first == QAExample("what does aspirin treat", ("pain",), ("aspirin",), 1)
    assert second.topic_entities == () and second.hops is None
    metaqa = tmp_path / "2-hop" / "qa.txt"
    metaqa.parent.mkdir()
    metaqa.write_text("who directed the films of [Tom Hanks]\tRon Howard|Penny Marshall\n")
    (example,) = load_qa_file(metaqa)
    assert example.topic_entities == ("Tom Hanks",) and example.hops == 2


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("not json", "invalid JSON"),
        ('{"question": "", "answers": ["a"]}', "'question'"),
        ('{"question": "q", "answers": []}', "at least one answer"),
        ('{"question": "q", "answers": "a"}', "'answers'"),
        ('{"question": "q", "answers": ["a"], "hops": 0}', "'hops'"),
    ],
)
def test_load_qa_file_names_the_bad_line(tmp_path, line, reason):
    path = tmp_path / "qa.jsonl"
    path.write_text('{"question": "fine", "answers": ["x"]}\n' + line + "\n")
    with pytest.raises(LoadError, match=rf"qa.jsonl:2: .*{reason}"):
        load_qa_file(path)
