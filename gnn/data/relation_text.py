"""Relation names in the words an encoder can match, for any naming scheme.

Relation ids in the wild are Freebase-style paths (``/film/film/directed_by``), snake, kebab or camel case
(``has_genre``, ``part-of``, ``memberOf``), upper case with codes (``TREATS_CtD``, ``P27``), or terse schema
terms (``isa``, ``_hypernym``). :func:`relation_words` turns each into plain words, :func:`inverse_words`
reads them the other way, and :func:`relation_phrases` gives every text a relation is matched by, each way,
with what it connects (the kinds of its heads and tails, or the names of typical ones).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from lemminflect import getAllLemmas, getAllLemmasOOV, getInflection

from graphfuse.gnn.data.records import RelationRecord

# General schema vocabulary (WordNet, RDF/OWL, Wikidata-style exports), glossed in everyday words; the term
# itself is kept, so a question naming it still matches.
SCHEMA_TERMS: dict[str, str] = {
    "isa": "is a",
    "hypernym": "hypernym, is a kind of",
    "hyponym": "hyponym, has kinds",
    "meronym": "meronym, has part",
    "holonym": "holonym, is part of",
    "subclassof": "subclass of, is a kind of",
    "instanceof": "instance of, is a",
    "rdf type": "type, is a",
}
# The other reading of the same schema terms, as their glosses above say them.
INVERSE_TERMS: dict[str, str] = {
    "is a": "has kind",
    "hypernym": "hyponym, has kinds",
    "hyponym": "hypernym, is a kind of",
    "meronym": "holonym, is part of",
    "holonym": "meronym, has part",
    "subclass of": "superclass of, has kind",
    "instance of": "has instance",
    "type": "has instance",
}
_PREPOSITIONS = frozenset("to with in on at from into onto for about against among between".split())
_SEPARATORS = re.compile(r"[_\s:./\-]+")
_CAMEL = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def _is_code(part: str) -> bool:
    """An abbreviation or identifier rather than a word: ``CtD``, ``P27``, ``Gr>G``."""
    if len(part) > 5 or part.isupper() or part.islower() and part.isalpha():
        return False
    return any(ch.isdigit() for ch in part) or not part.isalnum() or sum(ch.isupper() for ch in part) >= 2


def relation_words(relation_id: str) -> str:
    """Plain lower-case words of a relation id; codes are dropped when other words remain.

    ``/film/film/directed_by`` -> ``film directed by``, ``/people/person/nationality`` -> ``person
    nationality``, ``TREATS_CtD`` -> ``treats``, ``memberOf`` -> ``member of``, ``_hypernym`` ->
    ``hypernym, is a kind of``.
    """
    text = relation_id.strip()
    if text.count("/") >= 2:  # a path: its last two distinct segments say what the relation is
        segments: list[str] = []
        for segment in (s for s in text.split("/") if s):
            if not segments or segments[-1] != segment:
                segments.append(segment)
        text = " ".join(segments[-2:])
    parts = [p for p in _SEPARATORS.split(text) if p]
    words = [p for p in parts if not _is_code(p)] or parts
    tokens = [t.lower() for part in words for t in (_CAMEL.findall(part) or [part])]
    joined = " ".join(tokens)
    for term, gloss in SCHEMA_TERMS.items():
        if joined == term or joined.endswith(" " + term):
            return joined[: len(joined) - len(term)] + gloss
    return joined or relation_id


def _most_common(kinds: Iterable[str]) -> str:
    counts = Counter(k for k in kinds if k)
    return relation_words(counts.most_common(1)[0][0]) if counts else ""


@dataclass(frozen=True, slots=True)
class RelationPhrases:
    """What a relation is matched by, each way. ``forward`` texts ask for the tails of a head, ``inverse``
    texts for the heads of a tail; ``forward_answers`` and ``inverse_answers`` say what those answers are
    (their kind, or the names of typical ones), empty when nothing is known."""

    forward: tuple[str, ...]
    inverse: tuple[str, ...]
    forward_answers: str = ""
    inverse_answers: str = ""


def inverse_words(words: str) -> str:
    """The tail-to-head reading of a relation's plain words: ``treats`` -> ``treated by``, ``directed by``
    -> ``directed``, ``has genre`` -> ``genre of``, ``part of`` -> ``has part``, ``hypernym, is a kind of``
    -> ``hyponym, has kinds``. Words it cannot turn around come back with ``of`` appended to ask for the
    other side (``nationality`` -> ``nationality of``)."""
    base = words.split(",")[0].strip()
    for term, inverse in INVERSE_TERMS.items():
        if base == term or base.endswith(" " + term):
            return base[: len(base) - len(term)] + inverse
    tokens = base.split()
    if not tokens:
        return words
    if len(tokens) > 1 and tokens[-1] == "by":
        return " ".join(tokens[:-1])
    if tokens[0] in ("has", "have") and len(tokens) > 1:
        return " ".join(tokens[1:]) + " of"
    if tokens[0] == "is" and len(tokens) > 2 and tokens[-1] == "of":
        return "has " + " ".join(tokens[1:-1])
    if len(tokens) > 1 and tokens[-1] == "of":
        return "has " + " ".join(tokens[:-1])
    if tokens[-1] in _PREPOSITIONS:  # "adjacent to", "interacts with": read the same both ways
        return base
    participle = _participle(tokens[0])
    if participle:
        return " ".join([participle, *tokens[1:], "by"])
    return base + " of"


def _participle(word: str) -> str:
    """The past participle of a verb in the third person (``binds`` -> ``bound``), else empty."""
    if not word.endswith("s") or word.endswith("ss") or len(word) < 4:
        return ""
    known = getAllLemmas(word)
    if known and "VERB" not in known:
        return ""
    lemmas = known.get("VERB") or getAllLemmasOOV(word, "VERB").get("VERB")
    if not lemmas or lemmas[0] == word:
        return ""
    forms = getInflection(lemmas[0], "VBN")
    return forms[0] if forms else ""


def relation_phrases(
    relation_id: str,
    record: RelationRecord | None = None,
    head_kinds: Iterable[str] = (),
    tail_kinds: Iterable[str] = (),
    head_examples: Sequence[str] = (),
    tail_examples: Sequence[str] = (),
) -> RelationPhrases:
    """Every text a relation is matched by, each way, and what its answers are each way.

    The id's words (or the record's name) read head to tail between the endpoint kinds, and tail to head
    (the record's inverse name, else :func:`inverse_words`); the record's aliases and description add
    texts. The answers of each way are the most common kind of that side or, where the graph has no kinds,
    that way's words with the names of its most connected entities (``head_examples`` / ``tail_examples``).
    """
    record = record or RelationRecord(relation_id)
    words = record.name or relation_words(relation_id)
    head, tail = _most_common(head_kinds), _most_common(tail_kinds)
    inverse = record.inverse_name or inverse_words(words)
    forward_texts = [_join(head, words, tail), *record.aliases]
    inverse_texts = [_join(tail, inverse, head)]
    if record.description:
        forward_texts.append(record.description)
        inverse_texts.append(record.description)
    return RelationPhrases(
        tuple(dict.fromkeys(forward_texts)),
        tuple(dict.fromkeys(inverse_texts)),
        tail or _examples(words, tail_examples),
        head or _examples(inverse, head_examples),
    )


def _join(*parts: str) -> str:
    return " ".join(part for part in parts if part)


def _examples(words: str, names: Sequence[str], limit: int = 3, max_chars: int = 40) -> str:
    """``directed by: George Stevens, Mark Sandrich``: answers of one way by example, with what they are."""
    if not names:
        return ""
    return f"{words}: " + ", ".join(name[:max_chars] for name in names[:limit])
