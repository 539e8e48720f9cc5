import pytest

from graphfuse.gnn.data.records import (
    MAX_ID_CHARS,
    EntityRecord,
    RelationRecord,
    Retraction,
    TripleRecord,
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
