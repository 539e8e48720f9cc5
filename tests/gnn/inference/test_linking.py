import itertools
import math

import pytest
import torch

from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.data.records import EntityRecord, TripleRecord
from graphfuse.gnn.inference.linking import (
    STOPWORDS,
    EntityLinker,
    Mention,
    nearest_entities,
    normalize,
    strip_mentions,
    tokenize,
)

ENTITIES = [
    EntityRecord("m.nyc", "New York City", ("NYC", "the Big Apple")),
    EntityRecord("m.ny", "New York"),
    EntityRecord("Top_Hat"),  # named "Top Hat" from its id
    EntityRecord("m.who", "The Who"),  # stopwords only
    EntityRecord("m.lotr", "The Lord of the Rings"),  # stopwords plus content words
    EntityRecord("m.sl", "Schindler’s List"),
    EntityRecord("m.gr", "Ginger Rogers"),
]
NYC, NY, TOP_HAT, WHO, LOTR, SCHINDLER, GINGER = range(7)


def films_linker() -> tuple[KnowledgeGraph, EntityLinker]:
    graph = KnowledgeGraph(ENTITIES, [TripleRecord("Top_Hat", "starred_actors", "m.gr")])
    return graph, EntityLinker(graph)


def mentioned(mentions: list[Mention]) -> list[tuple[str, tuple[int, ...], str]]:
    return [(m.text, m.entities, m.method) for m in mentions]


def assert_spans(text: str, mentions: list[Mention]) -> None:
    """Offsets index the original text, in order, without overlaps."""
    for mention in mentions:
        assert text[mention.start : mention.end] == mention.text
    for before, after in itertools.pairwise(mentions):
        assert before.end <= after.start


@pytest.fixture(scope="module")
def linker() -> EntityLinker:
    return films_linker()[1]


# ------------------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("New_York-City!", [("new", 0, 3), ("york", 4, 8), ("city", 9, 13)]),
        ("  Top  HAT ", [("top", 2, 5), ("hat", 7, 10)]),
        ("Schindler’s List", [("schindler's", 0, 11), ("list", 12, 16)]),
        ("rock 'n' roll", [("rock", 0, 4), ("n", 6, 7), ("roll", 9, 13)]),
        ("?!", []),
    ],
)
def test_tokenize_keeps_spans_of_the_original_text(text, tokens):
    assert tokenize(text) == tokens


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("New York City", "new york city"),
        ("  NEW   york,  City! ", "new york city"),
        ("new_york_city", "new york city"),
        ("New-York/City", "new york city"),
        ("Schindler’s List", "schindler's list"),
        ("Schindler's  LIST.", "schindler's list"),
        ("Amélie (2001)", "amélie 2001"),
        ("--!!", ""),
    ],
)
def test_normalize(text, normal):
    assert normalize(text) == normal
    assert normalize(normal) == normal  # idempotent


# ------------------------------------------------------------------------------------- lookup


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("m.nyc", [(NYC, "exact")]),  # the id itself
        ("M.NYC", [(NYC, "exact")]),  # the id once normalised
        ("New York City", [(NYC, "exact")]),
        ("new-york  CITY!", [(NYC, "exact")]),
        ("nyc", [(NYC, "alias")]),
        ("The big apple", [(NYC, "alias")]),
        ("Top_Hat", [(TOP_HAT, "exact")]),
        ("top hat", [(TOP_HAT, "exact")]),  # the default name
        ("schindler's list", [(SCHINDLER, "exact")]),
        ("new york", [(NY, "exact")]),
        ("york", []),
        ("Boston", []),
        ("", []),
    ],
)
def test_lookup(linker, text, found):
    assert linker.lookup(text) == found


def test_lookup_returns_every_entity_sharing_a_key():
    graph = KnowledgeGraph(
        [
            EntityRecord("paris_fr", "Paris"),
            EntityRecord("paris_tx", "Paris", ("Paris, Texas",)),
            EntityRecord("m.pt", "Paris, Texas", ("Paris",)),
        ]
    )
    linker = EntityLinker(graph)
    assert linker.lookup("PARIS") == [(0, "exact"), (1, "exact"), (2, "alias")]
    assert linker.lookup("paris texas") == [(1, "alias"), (2, "exact")]
    assert mentioned(linker.find_mentions("a film like paris, texas")) == [
        ("paris, texas", (1, 2), "exact")  # exact as soon as one entity matches exactly
    ]
    assert mentioned(linker.find_mentions("born in paris?")) == [("paris", (0, 1, 2), "exact")]


def test_a_name_several_entities_share_links_those_written_in_its_letter_case():
    graph = KnowledgeGraph(
        [EntityRecord("Rocky"), EntityRecord("rocky"), EntityRecord("m.rh", "Rocky Horror", ("rocky",))]
    )
    linker = EntityLinker(graph)
    assert linker.lookup("rocky!") == [(1, "exact"), (2, "alias")]
    assert linker.lookup("Rocky!") == [(0, "exact")]
    assert linker.lookup("ROCKY") == [(0, "exact"), (1, "exact"), (2, "alias")]  # none written so: all
    assert mentioned(linker.find_mentions("films tagged rocky")) == [("rocky", (1, 2), "exact")]
    assert mentioned(linker.find_mentions("who starred in Rocky")) == [("Rocky", (0,), "exact")]


def test_a_name_the_text_spells_out_with_its_punctuation_wins():
    graph = KnowledgeGraph(
        [EntityRecord("Moulin Rouge!"), EntityRecord("Moulin Rouge"), EntityRecord("moulin rouge")]
    )
    linker = EntityLinker(graph)
    assert mentioned(linker.find_mentions("who directed Moulin Rouge! first")) == [
        ("Moulin Rouge!", (0,), "exact")
    ]
    assert mentioned(linker.find_mentions("who directed Moulin Rouge")) == [("Moulin Rouge", (1,), "exact")]
    assert mentioned(linker.find_mentions("films tagged moulin rouge")) == [("moulin rouge", (2,), "exact")]
    assert mentioned(linker.find_mentions("who directed MOULIN ROUGE")) == [
        ("MOULIN ROUGE", (0, 1, 2), "exact")
    ]


def test_exact_beats_alias_for_the_same_entity():
    graph = KnowledgeGraph([EntityRecord("x", "Foo", ("foo", "FOO!", "Bar"))])
    linker = EntityLinker(graph)
    assert linker.lookup("foo") == [(0, "exact")]
    assert linker.lookup("bar") == [(0, "alias")]
    assert mentioned(linker.find_mentions("foo and bar")) == [("foo", (0,), "exact"), ("bar", (0,), "alias")]


# ------------------------------------------------------------------------------------- mentions


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Is New York City bigger than new york?",
            [("New York City", (NYC,), "exact"), ("new york", (NY,), "exact")],
        ),
        ("new york city", [("new york city", (NYC,), "exact")]),  # not "new york" inside it
        ("what about new_york_city", [("new_york_city", (NYC,), "exact")]),
        ("is the big apple in New York", [("the big apple", (NYC,), "alias"), ("New York", (NY,), "exact")]),
        (
            "who starred in top hat with ginger rogers",
            [("top hat", (TOP_HAT,), "exact"), ("ginger rogers", (GINGER,), "exact")],
        ),
        ("who directed Schindler's List?", [("Schindler's List", (SCHINDLER,), "exact")]),
        ("what is the weather", []),
    ],
)
def test_find_mentions_longest_first(linker, text, expected):
    mentions = linker.find_mentions(text)
    assert mentioned(mentions) == expected
    assert_spans(text, mentions)


def test_mentions_do_not_overlap():
    graph = KnowledgeGraph(
        [
            EntityRecord("ab", "Alpha Beta"),
            EntityRecord("bc", "Beta Gamma"),
            EntityRecord("g", "Gamma"),
            EntityRecord("b", "Beta"),
        ]
    )
    linker = EntityLinker(graph)
    text = "alpha beta gamma"
    mentions = linker.find_mentions(text)
    # "alpha beta" and "beta gamma" have the same length: the leftmost wins, then "gamma" is left
    assert mentioned(mentions) == [("alpha beta", (0,), "exact"), ("gamma", (2,), "exact")]
    assert_spans(text, mentions)
    assert mentioned(linker.find_mentions("beta gamma alpha")) == [("beta gamma", (1,), "exact")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("films like [New York] and new york city", [("New York", (NY,), "exact")]),
        ("[Top Hat] or [nyc]?", [("Top Hat", (TOP_HAT,), "exact"), ("nyc", (NYC,), "alias")]),
        ("[Boston] and [new york]", [("new york", (NY,), "exact")]),  # unmatched marks are ignored
        ("what is [The Who]", [("The Who", (WHO,), "exact")]),  # an explicit mark links stopwords too
        ("[Boston] and new york city", [("new york city", (NYC,), "exact")]),  # no mark matches: free text
    ],
)
def test_bracket_marks_take_precedence(linker, text, expected):
    mentions = linker.find_mentions(text)
    assert mentioned(mentions) == expected
    assert_spans(text, mentions)
    for mention in mentions:
        if text[mention.start - 1] == "[":
            assert text[mention.end] == "]"


def test_bracket_offsets_exclude_the_brackets(linker):
    text = "who starred in [Top Hat]"
    (mention,) = linker.find_mentions(text)
    assert (mention.start, mention.end) == (16, 23)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("who sang with the who", []),
        ("The Who", []),
        ("what is the lord of the rings about", [("the lord of the rings", (LOTR,), "exact")]),
        ("The Lord of the Rings", [("The Lord of the Rings", (LOTR,), "exact")]),
    ],
)
def test_stopword_only_names_are_not_linked(linker, text, expected):
    assert set(normalize("The Who").split()) <= STOPWORDS
    assert linker.lookup("the who") == [(WHO, "exact")]  # still found by lookup
    assert mentioned(linker.find_mentions(text)) == expected


def test_mentions_longer_than_the_limit_are_not_linked():
    long_name = " ".join(f"w{i}" for i in range(13))
    graph = KnowledgeGraph([EntityRecord("long", long_name), EntityRecord("short", "w0 w1")])
    linker = EntityLinker(graph)
    assert linker.lookup(long_name) == [(0, "exact")]
    assert mentioned(linker.find_mentions(long_name)) == [("w0 w1", (1,), "exact")]


# ------------------------------------------------------------------------------------- strip_mentions


@pytest.mark.parametrize(
    ("text", "stripped"),
    [
        ("what films star [Ginger Rogers]", "what films star"),
        ("[Ginger Rogers] starred in which films", "starred in which films"),
        ("is new york city far from new york", "is far from"),
        ("who starred in [Top Hat] with [Ginger Rogers]?", "who starred in with ?"),
        ("how  tall\tis   it", "how tall is it"),  # nothing to strip: whitespace collapsed
        ("[Top Hat]", "[Top Hat]"),  # everything stripped: the text itself
        ("new york city", "new york city"),
    ],
)
def test_strip_mentions(linker, text, stripped):
    assert strip_mentions(text, linker.find_mentions(text)) == stripped


def test_a_name_ending_in_punctuation_is_stripped_whole():
    graph = KnowledgeGraph(
        [EntityRecord("m.ja", "José Alvarenga Jr."), EntityRecord("m.t", "That Thing You Do!")]
    )
    linker = EntityLinker(graph)
    for text, stripped in [
        ("the movies directed by José Alvarenga Jr. starred who", "the movies directed by starred who"),
        ("what did josé alvarenga jr. direct", "what did direct"),
        ("who directed That Thing You Do!", "who directed"),
        ("who directed That Thing You Do", "who directed"),  # the name's "!" left out by the text
    ]:
        assert strip_mentions(text, linker.find_mentions(text)) == stripped


@pytest.mark.parametrize(
    ("text", "stripped"),
    [
        ("the films directed by [Ginger Rogers] starred who", "the films directed by [MASK] starred who"),
        ("who starred in [Top Hat] with [Ginger Rogers]?", "who starred in [MASK] with [MASK] ?"),
        ("[Top Hat]", "[Top Hat]"),  # everything stripped: the text itself
    ],
)
def test_strip_mentions_with_a_placeholder_keeps_the_topics_place(linker, text, stripped):
    assert strip_mentions(text, linker.find_mentions(text), "[MASK]") == stripped


def test_strip_mentions_sorts_mentions(linker):
    text = "is new york city far from new york"
    assert strip_mentions(text, linker.find_mentions(text)[::-1]) == "is far from"


# ------------------------------------------------------------------------------------- updates


def test_update_after_a_rename_drops_the_old_name():
    graph, linker = films_linker()
    update = graph.add([EntityRecord("m.ny", "Gotham")])
    assert update.changed_entities == [NY]
    assert linker.lookup("gotham") == []  # not re-indexed yet
    linker.update(update.changed_entities)
    assert linker.lookup("new york") == []
    assert linker.lookup("gotham") == [(NY, "exact")]
    assert linker.lookup("m.ny") == [(NY, "exact")]  # the id still links
    assert mentioned(linker.find_mentions("from new york to gotham")) == [("gotham", (NY,), "exact")]
    assert mentioned(linker.find_mentions("new york city")) == [("new york city", (NYC,), "exact")]


def test_update_keeps_other_entities_sharing_the_old_key():
    graph = KnowledgeGraph(
        [EntityRecord("a", "Paris"), EntityRecord("b", "Paris"), EntityRecord("c", "C", ("Paris",))]
    )
    linker = EntityLinker(graph)
    linker.update(graph.add([EntityRecord("a", "Lutetia")]).changed_entities)
    assert linker.lookup("paris") == [(1, "exact"), (2, "alias")]
    assert linker.lookup("lutetia") == [(0, "exact")]
    linker.update(graph.add([EntityRecord("b", "Paris, France")]).changed_entities)
    assert linker.lookup("paris") == [(2, "alias")]


def test_update_indexes_new_entities_and_aliases():
    graph, linker = films_linker()
    update = graph.add(
        [
            TripleRecord("Boston", "located_in", "Massachusetts"),
            EntityRecord("Boston", aliases=("Beantown",)),
            EntityRecord("m.gr", aliases=("Virginia McMath",)),
        ]
    )
    boston, massachusetts = 7, 8
    assert update.changed_entities == [GINGER, boston, massachusetts]
    assert linker.lookup("beantown") == []
    linker.update(update.changed_entities)
    assert linker.lookup("beantown") == [(boston, "alias")]
    assert linker.lookup("massachusetts") == [(massachusetts, "exact")]
    text = "did virginia mcmath live in beantown or boston?"
    assert mentioned(linker.find_mentions(text)) == [
        ("virginia mcmath", (GINGER,), "alias"),
        ("beantown", (boston,), "alias"),
        ("boston", (boston,), "exact"),
    ]
    assert linker.lookup("ginger rogers") == [(GINGER, "exact")]  # the name survives the new alias


def test_update_is_idempotent(linker):
    graph, fresh = films_linker()
    fresh.update(range(graph.num_entities))
    fresh.update([NYC, NYC])
    keys = [*graph.entity_ids, *graph.names, *(a for aliases in graph.aliases.values() for a in aliases)]
    assert len(keys) == 16
    for key in keys:
        assert fresh.lookup(key) == linker.lookup(key) != [], key


# ------------------------------------------------------------------------------------- embeddings

S = 1 / math.sqrt(2)
VECTORS = torch.tensor([[1.0, 0.0], [0.0, 1.0], [S, S], [-1.0, 0.0], [0.6, -0.8]])  # (N=5, D=2), unit rows


@pytest.mark.parametrize(
    ("query", "order"),
    [
        ([1.0, 0.0], [0, 2, 4, 1, 3]),
        ([0.6, 0.8], [2, 1, 0, 4, 3]),
        ([-0.8, 0.6], [3, 1, 2, 0, 4]),
    ],
)
@pytest.mark.parametrize("k", [1, 3, 5])
def test_nearest_entities_single_query(query, order, k):
    query = torch.tensor(query)
    scores, indices = nearest_entities(query, VECTORS, k)
    assert scores.shape == indices.shape == (k,)
    assert indices.tolist() == order[:k]
    torch.testing.assert_close(scores, VECTORS[order[:k]] @ query)
    assert scores.tolist() == sorted(scores.tolist(), reverse=True)


@pytest.mark.parametrize(("k", "kept"), [(2, 2), (5, 5), (50, 5)])
def test_nearest_entities_batch(k, kept):
    queries = torch.tensor([[1.0, 0.0], [0.28, -0.96]])  # (B=2, D=2), no ties
    scores, indices = nearest_entities(queries, VECTORS, k)
    assert scores.shape == indices.shape == (2, kept)  # k is capped at the number of entities
    assert indices[0].tolist() == [0, 2, 4, 1, 3][:kept]
    assert indices[1].tolist() == [4, 0, 3, 2, 1][:kept]
    torch.testing.assert_close(scores, (VECTORS[indices] * queries[:, None]).sum(-1))  # (B, k)
    assert scores[:, 0].tolist() == pytest.approx([1.0, 0.936])


def test_lowercase_single_words_yield_to_a_named_mention() -> None:
    graph = KnowledgeGraph(
        [
            EntityRecord("film"),
            EntityRecord("Little Fockers"),
            EntityRecord("In Time"),
            EntityRecord("Time Bandits"),
        ],
        [],
    )
    linker = EntityLinker(graph)
    assert [m.text for m in linker.find_mentions("what film genre is Little Fockers")] == ["Little Fockers"]
    assert [m.text for m in linker.find_mentions("which film is about a film")] == ["film", "film"]
    assert [m.text for m in linker.find_mentions("the actors in Time Bandits")] == ["Time Bandits"]


def test_a_capital_that_only_opens_the_sentence_does_not_make_a_name() -> None:
    graph = KnowledgeGraph([EntityRecord("give"), EntityRecord("mart"), EntityRecord("Little Fockers")], [])
    linker = EntityLinker(graph)
    assert [m.text for m in linker.find_mentions("Give the broader term for mart.")] == ["Give", "mart"]
    assert [m.text for m in linker.find_mentions("  Give the genre of Little Fockers")] == ["Little Fockers"]
    assert [m.text for m in linker.find_mentions("Little Fockers: give its genre")] == ["Little Fockers"]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_nearest_entities_over_half_precision_vectors_rank_as_their_upcast_values(dtype):
    generator = torch.Generator().manual_seed(0)
    table = torch.nn.functional.normalize(torch.randn(5000, 32, generator=generator), dim=1).to(dtype)
    queries = torch.nn.functional.normalize(torch.randn(4, 32, generator=generator), dim=1)
    scores, indices = nearest_entities(queries, table, 10)
    expected_scores, expected = torch.topk(queries @ table.float().T, 10, dim=1)
    assert scores.dtype == torch.float32 and indices.tolist() == expected.tolist()
    torch.testing.assert_close(scores, expected_scores)
    single_scores, single = nearest_entities(queries[0], table, 3)
    assert single.tolist() == expected[0, :3].tolist() and single_scores.shape == (3,)
