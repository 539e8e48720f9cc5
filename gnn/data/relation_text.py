"""Relation names in the words an encoder can match, for any naming scheme.

Relation ids in the wild are Freebase-style paths (``/film/film/directed_by``), snake, kebab or camel case
(``has_genre``, ``part-of``, ``memberOf``), upper case with codes (``TREATS_CtD``, ``P27``), or terse schema
terms (``isa``, ``_hypernym``). :func:`relation_words` turns each into plain words; :func:`describe_relation`
adds what the relation connects, from the kinds of its heads and tails where the graph has kinds.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

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


def describe_relation(
    relation_id: str, head_kinds: Iterable[str] = (), tail_kinds: Iterable[str] = ()
) -> str:
    """The relation's words between the most common kinds of its heads and tails, where known:
    ``TREATS_CtD`` with compounds -> diseases reads ``compound treats disease``."""
    words = relation_words(relation_id)
    head, tail = _most_common(head_kinds), _most_common(tail_kinds)
    return " ".join(part for part in (head, words, tail) if part)


def _most_common(kinds: Iterable[str]) -> str:
    counts = Counter(k for k in kinds if k)
    return relation_words(counts.most_common(1)[0][0]) if counts else ""
