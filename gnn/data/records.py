"""The records a graph is made of, as they arrive from files, the API or a stream, and their validation."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

MAX_ID_CHARS = 512
MAX_NAME_CHARS = 1024
MAX_ALIASES = 64
MAX_TYPE_CHARS = 64
MAX_DESCRIPTION_CHARS = 4096


@dataclass(frozen=True, slots=True)
class TripleRecord:
    """A stored fact: ``head -relation-> tail`` (entity and relation ids)."""

    head: str
    relation: str
    tail: str


@dataclass(frozen=True, slots=True)
class EntityRecord:
    """An entity with an optional display name, aliases for linking and node type (``user``, ``item``...).

    ``None`` for the name or the type keeps what is stored (or the default for a new entity).
    """

    id: str
    name: str | None = None
    aliases: tuple[str, ...] = field(default_factory=tuple)
    type: str | None = None


@dataclass(frozen=True, slots=True)
class RelationRecord:
    """Words for a relation, for graphs whose relation ids say little (``P27``, ``rel_12``, ``CtD``).

    ``name`` reads head to tail (``treats``), ``inverse_name`` tail to head (``treated by``); ``aliases`` are
    other words for the head-to-tail reading (``cures``, ``is a therapy for``); ``description`` says what the
    relation means in a sentence. ``None`` keeps what is stored; aliases add to the stored ones.
    """

    id: str
    name: str | None = None
    inverse_name: str | None = None
    aliases: tuple[str, ...] = field(default_factory=tuple)
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Retraction:
    """A stored fact to remove: ``head -relation-> tail`` (a retracted finding)."""

    head: str
    relation: str
    tail: str


Record = TripleRecord | EntityRecord | RelationRecord | Retraction


@dataclass(frozen=True, slots=True)
class TripleColumns:
    """Triples as parallel columns, ``(heads[j], relations[j], tails[j])`` each: what a bulk load sends, with
    no object per triple. Equal to ``records()`` wherever records go."""

    heads: list[str]
    relations: list[str]
    tails: list[str]

    def __post_init__(self) -> None:
        lengths = (len(self.heads), len(self.relations), len(self.tails))
        if len(set(lengths)) != 1:
            raise ValueError(f"heads, relations and tails are of different lengths {lengths}")

    def __len__(self) -> int:
        return len(self.heads)

    def records(self) -> list[TripleRecord]:
        return [TripleRecord(*triple) for triple in zip(self.heads, self.relations, self.tails, strict=True)]

    @classmethod
    def of(cls, triples: Sequence[TripleRecord]) -> TripleColumns:
        return cls([t.head for t in triples], [t.relation for t in triples], [t.tail for t in triples])


def default_name(identifier: str) -> str:
    """Display name of an id given without one: ``pharmacologic_substance`` -> ``pharmacologic substance``."""
    name = " ".join(identifier.replace("_", " ").split())
    return identifier if name == identifier else name  # the id's own string: millions of ids, one copy


def has_words(name: str, type: str = "") -> bool:
    """Whether a name carries words an encoder can use: ``user:1234`` of type ``user`` and ``42`` do not."""
    if type and name.startswith(f"{type}:"):
        name = name[len(type) + 1 :]
    return any(ch.isalpha() for ch in name)


# No whitespace at either end, no tab, newline or NUL inside: what every check below lets through
_CLEAN_TEXT = re.compile(r"[^\s\x00](?:[^\t\n\r\x00]*[^\s\x00])?")


def _check_text(value: object, what: str, max_chars: int) -> str | None:
    if type(value) is str and len(value) <= max_chars and _CLEAN_TEXT.fullmatch(value):
        return None  # millions of ids per load: one match, then the reasons only for the rest
    if not isinstance(value, str):
        return f"{what} must be a string (got {type(value).__name__})"
    if not value.strip():
        return f"{what} is empty"
    if len(value) > max_chars:
        return f"{what} is {len(value)} characters long (at most {max_chars})"
    if value != value.strip():
        return f"{what} {value!r} has leading or trailing whitespace"
    if any(ch in value for ch in "\t\n\r\x00"):
        return f"{what} {value!r} contains a tab, newline or NUL character"
    return None


def validate_record(record: Record) -> str | None:
    """Why ``record`` cannot be stored, or None when it is valid."""
    if isinstance(record, TripleRecord | Retraction):
        for what in ("head", "relation", "tail"):
            reason = _check_text(getattr(record, what), what, MAX_ID_CHARS)
            if reason:
                return reason
        return None
    if isinstance(record, EntityRecord):
        reason = _check_text(record.id, "entity id", MAX_ID_CHARS)
        if reason:
            return reason
        if record.name is not None:
            reason = _check_text(record.name, "entity name", MAX_NAME_CHARS)
            if reason:
                return reason
        if record.type is not None and (reason := _check_text(record.type, "entity type", MAX_TYPE_CHARS)):
            return reason
        if len(record.aliases) > MAX_ALIASES:
            return f"entity {record.id!r} has {len(record.aliases)} aliases (at most {MAX_ALIASES})"
        for alias in record.aliases:
            reason = _check_text(alias, "alias", MAX_NAME_CHARS)
            if reason:
                return reason
        return None
    if isinstance(record, RelationRecord):
        reason = _check_text(record.id, "relation id", MAX_ID_CHARS)
        for what, value, limit in (
            ("relation name", record.name, MAX_NAME_CHARS),
            ("relation inverse name", record.inverse_name, MAX_NAME_CHARS),
            ("relation description", record.description, MAX_DESCRIPTION_CHARS),
        ):
            if not reason and value is not None:
                reason = _check_text(value, what, limit)
        if not reason and len(record.aliases) > MAX_ALIASES:
            reason = f"relation {record.id!r} has {len(record.aliases)} aliases (at most {MAX_ALIASES})"
        for alias in record.aliases:
            reason = reason or _check_text(alias, "relation alias", MAX_NAME_CHARS)
        return reason
    return f"unknown record type {type(record).__name__}"


def validate_columns(columns: TripleColumns) -> list[tuple[int, str]]:
    """``(j, reason)`` for each triple of ``columns`` that cannot be stored, as :func:`validate_record` says
    it. Each distinct id is checked once: a chunk of thousands of triples names far fewer entities."""
    fields = (columns.heads, columns.relations, columns.tails)
    try:
        distinct: set[object] = set().union(*fields)
    except TypeError:  # an unhashable value: checked triple by triple below
        distinct = {None}
    if all(_check_text(value, "", MAX_ID_CHARS) is None for value in distinct):
        return []
    return [
        (j, reason)
        for j, triple in enumerate(zip(*fields, strict=True))
        if (reason := validate_record(TripleRecord(*triple)))
    ]
