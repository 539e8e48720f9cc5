"""Entity linking: text -> entities, by normalised exact/alias match first, embedding neighbours second."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from graphfuse.gnn.data.graph import KnowledgeGraph

_TOKEN = re.compile(r"\w+(?:['’]\w+)*")
_BRACKETED = re.compile(r"\[([^\[\]]+)\]")
MAX_MENTION_TOKENS = 12
# A mention made only of these words is not linked (it would turn question words into topic entities).
STOPWORDS = frozenset(
    """a an and are as at be by can could did do does for from had has have how i in is it its of on or
    that the their them there these they this those to was were what when where which who whom whose why
    will with would you your me my we our not no""".split()
)


def tokenize(text: str) -> list[tuple[str, int, int]]:
    """Normalised word tokens of ``text`` with their character spans."""
    text = text.replace("_", " ")  # keeps offsets: spans index the caller's text
    return [(m.group().lower().replace("’", "'"), m.start(), m.end()) for m in _TOKEN.finditer(text)]


def normalize(text: str) -> str:
    """The form names are matched in: lowercase words separated by single spaces, punctuation dropped."""
    if text.isalnum():  # one word (most ids): the string itself when already lowercase, not a copy
        lowered = text.lower()
        return text if lowered == text else lowered
    return " ".join(token for token, _, _ in tokenize(text))


def _as_written(text: str) -> str:
    """``text`` normalised as :func:`normalize` does, letter case kept."""
    return " ".join(text[start:end].replace("’", "'") for _, start, end in tokenize(text))


@dataclass(frozen=True, slots=True)
class Mention:
    """A span of text linked to entities."""

    text: str
    start: int  # character offsets in the original text
    end: int
    entities: tuple[int, ...]
    method: str  # "exact" (id or name) or "alias"


class EntityLinker:
    """Finds the entities a text talks about.

    Args:
        graph: the graph whose entity ids, names and aliases are matched; call :meth:`update` after the
            graph gains entities.
    """

    def __init__(self, graph: KnowledgeGraph) -> None:
        self.graph = graph
        # normalised spelling -> the entities it names: one entity as an int (``e`` by its id or name, ``~e``
        # by an alias), several as {entity: method}; an int per key keeps millions of ids small
        self._index: dict[str, int | dict[int, str]] = {}
        self._keys: dict[int, tuple[str, ...]] = {}  # an entity's keys, where they are more than its id's
        self._add(range(graph.num_entities))

    def update(self, entities: Iterable[int]) -> None:
        """(Re-)index the given entities after they were added, renamed or given aliases."""
        entities = list(entities)
        for entity in entities:
            for key in self._keys.pop(entity, None) or self._id_keys(entity):
                self._remove(key, entity)
        self._add(entities)

    def _add(self, entities: Iterable[int]) -> None:
        """Index entities that have no keys in the index."""
        graph = self.graph
        index = self._index
        ids, names, aliases = graph.entity_ids, graph.names, graph.aliases
        for entity in entities:
            entity_id = ids[entity]
            id_key = normalize(entity_id)
            one_spelling = names[entity] == entity_id and entity not in aliases  # most bulk loads' ids
            if one_spelling and id_key and id_key not in index:
                index[id_key] = entity
                continue
            texts = [(names[entity], "exact")] + [(a, "alias") for a in aliases.get(entity, ())]
            keys = []
            for key, method in [(id_key, "exact")] + [(normalize(text), method) for text, method in texts]:
                if not key:
                    continue
                keys.append(key)
                if key not in index:
                    index[key] = entity if method == "exact" else ~entity
                    continue
                found = self._found(key)
                if found.get(entity) != "exact":
                    found[entity] = method
                self._store(key, found)
            if set(keys) != ({id_key} if id_key else set()):  # else update() derives them from the id
                self._keys[entity] = tuple(keys)

    def _id_keys(self, entity: int) -> tuple[str, ...]:
        key = normalize(self.graph.entity_ids[entity])
        return (key,) if key else ()

    def _found(self, key: str) -> dict[int, str]:
        """The entities ``key`` names, ``{entity: "exact" | "alias"}`` (a new dict for a single one)."""
        found = self._index.get(key)
        if found is None:
            return {}
        if isinstance(found, int):
            return {found: "exact"} if found >= 0 else {~found: "alias"}
        return found

    def _remove(self, key: str, entity: int) -> None:
        found = self._found(key)
        found.pop(entity, None)
        if not found:
            self._index.pop(key, None)
        else:
            self._store(key, found)

    def _store(self, key: str, found: dict[int, str]) -> None:
        if len(found) > 1:
            self._index[key] = found
        else:
            ((entity, method),) = found.items()
            self._index[key] = entity if method == "exact" else ~entity

    def lookup(self, text: str) -> list[tuple[int, str]]:
        """Entities ``text`` names, as ``(entity, method)``: the entity with exactly that id (ids are
        unambiguous), else every entity whose id, name or alias equals it once normalised."""
        exact_id = self.graph.entity_index.get(text)
        if exact_id is not None:
            return [(exact_id, "exact")]
        return self._as_written_in(text, 0, len(text), self._found(normalize(text)))

    def _as_written_in(self, text: str, start: int, end: int, found: dict[int, str]) -> list[tuple[int, str]]:
        """``found``'s ``(entity, method)`` pairs for the mention ``text[start:end]``, narrowed to those
        written as the text writes them when some are and some are not: those whose name the text spells out
        from ``start``, punctuation and letter case included, the longest ones ("Moulin Rouge!" over "Moulin
        Rouge"); else those whose name has the mention's letter case ("rocky" the tag, "Rocky" the film)."""
        candidates = sorted(found.items())
        if len(candidates) < 2:
            return candidates
        names = {entity: self._spellings(entity) for entity, _ in candidates}
        spelled = {
            entity: max((len(name) for name in names[entity] if text.startswith(name, start)), default=0)
            for entity in names
        }
        longest = max(spelled.values())
        if longest >= end - start:
            return [(entity, method) for entity, method in candidates if spelled[entity] == longest]
        written = _as_written(text[start:end])
        same = [(e, m) for e, m in candidates if any(_as_written(name) == written for name in names[e])]
        return same or candidates

    def find_mentions(self, text: str) -> list[Mention]:
        """Non-overlapping entity mentions in ``text``, longest first.

        Spans in square brackets (MetaQA's topic marks) are linked on their own when they match. A span
        that several entities' names match once normalised links those the text writes out exactly, if any
        (see :meth:`_as_written_in`).
        """
        mentions = []
        for match in _BRACKETED.finditer(text):
            found = self.lookup(match.group(1))
            if found:
                mentions.append(self._mention(text, match.start(1), match.end(1), found))
        if mentions:
            return mentions

        tokens = tokenize(text)
        taken = [False] * len(tokens)
        longest = min(MAX_MENTION_TOKENS, len(tokens))
        for length in range(longest, 0, -1):
            candidates = []
            for start in range(len(tokens) - length + 1):
                words = [tokens[i][0] for i in range(start, start + length)]
                if all(word in STOPWORDS for word in words):
                    continue
                found = self._found(" ".join(words))
                if found:
                    candidates.append((words[0] in STOPWORDS, start, found))
            # Among equally long spans, one that starts with a function word yields ("actors in Time Bandits":
            # "Time Bandits" before "in Time").
            for _, start, found in sorted(candidates, key=lambda c: (c[0], c[1])):
                span = range(start, start + length)
                if any(taken[i] for i in span):
                    continue
                for i in span:
                    taken[i] = True
                begin, end = tokens[start][1], tokens[start + length - 1][2]
                mentions.append(self._mention(text, begin, end, self._as_written_in(text, begin, end, found)))
        # A text that names something with capitals or digits ("what film genre is Little Fockers") uses its
        # single lowercase words that happen to be entity names ("film") as ordinary words.
        # A sentence's first word is capitalised whatever it is ("Give the broader term for mart").
        opening = len(text) - len(text.lstrip())
        named = [m for m in mentions if _is_named(m.text[1:] if m.start == opening else m.text)]
        if named:
            mentions = [m for m in mentions if m in named or " " in m.text.strip()]
        return sorted(mentions, key=lambda m: m.start)

    def _spellings(self, entity: int) -> tuple[str, ...]:
        """How ``entity`` may be written: its id, its name and its aliases."""
        graph = self.graph
        return (graph.entity_ids[entity], graph.names[entity], *graph.aliases.get(entity, ()))

    def _mention(self, text: str, start: int, end: int, found: Sequence[tuple[int, str]]) -> Mention:
        """The mention ``text[start:end]`` of ``found``, taken on to the end of a name the text spells out
        from ``start`` when that name ends past the last word ("José Alvarenga Jr.", "That Thing You Do!"):
        stripped, a kept "." or "!" would read as the end of the question."""
        for entity, _ in found:
            for name in self._spellings(entity):
                if start + len(name) > end and text[start : start + len(name)].casefold() == name.casefold():
                    end = start + len(name)
        method = "exact" if any(m == "exact" for _, m in found) else "alias"
        return Mention(text[start:end], start, end, tuple(e for e, _ in found), method)


def _is_named(surface: str) -> bool:
    """Whether a mention is written like a name: with an uppercase letter or a digit."""
    return any(ch.isupper() or ch.isdigit() for ch in surface)


def strip_mentions(text: str, mentions: Sequence[Mention], placeholder: str = "") -> str:
    """``text`` without the mentioned entities (and their brackets), so relation matching sees the rest;
    with a ``placeholder``, it stands where each mention was ("the films directed by [MASK] starred who")."""
    kept, cursor = [], 0
    for mention in sorted(mentions, key=lambda m: m.start):
        kept.append(text[cursor : mention.start])
        cursor = mention.end
    kept.append(text[cursor:])
    words = [part.replace("[", " ").replace("]", " ") for part in kept]
    if not "".join(words).strip():
        return text
    return " ".join(f" {placeholder} ".join(words).split())


def strip_topics(linker: EntityLinker, text: str, topics: Iterable[int], placeholder: str = "") -> str:
    """``text`` without the mentions of the given topic entities (other mentions stay); see
    :func:`strip_mentions`."""
    wanted = set(topics)
    mentions = [m for m in linker.find_mentions(text) if wanted & set(m.entities)]
    return strip_mentions(text, mentions, placeholder)


def nearest_entities(query: Tensor, entity_vectors: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Top-``k`` entities by cosine similarity to each query.

    Vectors stored in half precision are scanned in it; the best ``4k + 16`` of the scan are then scored
    in the query's precision, so their ranking is that of the stored vectors without the scan's rounding.

    Shapes:
        query: ``(B, D)`` or ``(D,)`` normalised; entity_vectors: ``(N, D)`` normalised.
        returns ``(scores, indices)``, each ``(B, k)`` (or ``(k,)``).
    """
    k = min(k, entity_vectors.shape[0])
    if entity_vectors.dtype == query.dtype:
        return torch.topk(query @ entity_vectors.T, k, dim=-1)  # (B, N) scanned exactly
    scan = query.to(entity_vectors.dtype) @ entity_vectors.T
    wide = torch.topk(scan.float(), min(4 * k + 16, entity_vectors.shape[0]), dim=-1).indices  # (B, W)
    rescored = (entity_vectors[wide].to(query.dtype) @ query.unsqueeze(-1)).squeeze(-1)
    scores, order = torch.topk(rescored, k, dim=-1)
    return scores, wide.gather(-1, order)
