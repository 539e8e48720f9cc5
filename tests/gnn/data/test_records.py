import random

import pytest

from graphfuse.gnn.data.records import (
    MAX_ID_CHARS,
    EntityRecord,
    RelationRecord,
    Retraction,
    TripleColumns,
    TripleRecord,
    validate_columns,
    validate_record,
)


@pytest.mark.parametrize("value", ["a", "aspirin", "Paris, Texas", "x y\x0bz", "é\u00a0è", "rel/with/path"])
def test_clean_texts_pass(value):
    assert validate_record(TripleRecord(value, value, value)) is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "head is empty"),
        (" \u2003 ", "head is empty"),
        (" aspirin", "leading or trailing whitespace"),
        ("aspirin\u00a0", "leading or trailing whitespace"),
        ("asp\tirin", "contains a tab, newline or NUL"),
        ("asp\x00irin", "contains a tab, newline or NUL"),
        ("a\nb", "contains a tab, newline or NUL"),
        ("\x00", "contains a tab, newline or NUL"),
        ("x" * (MAX_ID_CHARS + 1), f"at most {MAX_ID_CHARS}"),
    ],
)
def test_each_flaw_is_named(value, reason):
    assert reason in validate_record(TripleRecord(value, "treats", "fever"))


def test_every_field_of_every_kind_is_checked():
    assert "relation" in validate_record(Retraction("a", " r", "b"))
    assert "tail" in validate_record(TripleRecord("a", "r", 3))  # type: ignore[arg-type]
    assert "entity name" in validate_record(EntityRecord("e", name="bad\tname"))
    assert "alias" in validate_record(EntityRecord("e", aliases=("ok", "")))
    assert "relation description" in validate_record(RelationRecord("r", description="trailing "))
    assert validate_record(EntityRecord("e", name="Aspirin", aliases=("ASA",), type="drug")) is None


def test_columns_are_checked_as_their_triples_are():
    rng = random.Random(0)
    values = ["aspirin", "treats", "fever", "", " x", "a\tb", "x" * (MAX_ID_CHARS + 1), "Paris, Texas"]
    weights = [8, 8, 8, 1, 1, 1, 1, 8]
    triples = [TripleRecord(*rng.choices(values, weights, k=3)) for _ in range(400)]
    expected = [(j, reason) for j, t in enumerate(triples) if (reason := validate_record(t))]
    assert expected and validate_columns(TripleColumns.of(triples)) == expected
    clean = [t for t in triples if validate_record(t) is None]
    assert validate_columns(TripleColumns.of(clean)) == []
    assert validate_columns(TripleColumns(["a"], ["r"], [["not", "hashable"]])) == [  # type: ignore[list-item]
        (0, "tail must be a string (got list)")
    ]


def test_columns_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match=r"different lengths \(2, 1, 2\)"):
        TripleColumns(["a", "b"], ["r"], ["c", "d"])
    columns = TripleColumns(["a", "b"], ["r", "s"], ["c", "d"])
    assert len(columns) == 2 and columns.records() == [
        TripleRecord("a", "r", "c"),
        TripleRecord("b", "s", "d"),
    ]
