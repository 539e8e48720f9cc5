import pytest

from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.data.records import EntityRecord, RelationRecord, TripleRecord
from graphfuse.gnn.data.relation_text import inverse_words, relation_phrases, relation_words


@pytest.mark.parametrize(
    ("relation", "words"),
    [
        ("directed_by", "directed by"),  # snake case
        ("part-of", "part of"),  # kebab case
        ("memberOf", "member of"),  # camel case
        ("HAS_GENRE", "has genre"),  # upper snake case
        ("/film/film/directed_by", "film directed by"),  # Freebase path: its last two distinct segments
        ("/people/person/nationality", "person nationality"),
        ("/location/location/contains", "location contains"),
        ("TREATS_CtD", "treats"),  # Neo4j export of Hetionet: the code is dropped
        ("REGULATES_Gr>G", "regulates"),
        ("P27", "p 27"),  # a code alone is all there is
        ("isa", "is a"),  # schema terms keep the term and gain a gloss
        ("_hypernym", "hypernym, is a kind of"),
        ("_member_meronym", "member meronym, has part"),
    ],
)
def test_relation_words_for_each_naming_scheme(relation, words):
    assert relation_words(relation) == words


def test_relation_phrases_read_between_the_most_common_endpoint_kinds():
    heads, tails = ["Compound", "Compound", "Gene"], ["Disease", "Disease", "Symptom"]
    assert relation_phrases("TREATS_CtD", None, heads, tails).forward == ("compound treats disease",)
    assert relation_phrases("located_in", None, [], ["Anatomy"]).forward == ("located in anatomy",)
    assert relation_phrases("located_in").forward == ("located in",)


def test_graph_describes_relations_by_kinds_only_where_entities_have_kinds():
    triples = [
        TripleRecord("aspirin", "TREATS_CtD", "headache"),
        TripleRecord("ibuprofen", "TREATS_CtD", "fever"),
    ]
    untyped = KnowledgeGraph([], triples)
    assert untyped.relation_text(0) == "treats"
    kinds = [EntityRecord(e, type=k) for e, k in [("aspirin", "Compound"), ("ibuprofen", "Compound")]]
    kinds += [EntityRecord(e, type="Disease") for e in ("headache", "fever")]
    typed = KnowledgeGraph(kinds, triples)
    assert typed.relation_text(0) == "compound treats disease"


@pytest.mark.parametrize(
    ("words", "inverse"),
    [
        ("treats", "treated by"),  # a verb in the third person turns passive
        ("binds", "bound by"),  # irregular participles come from lemminflect
        ("upregulates", "upregulated by"),  # and so do words it has never seen
        ("directed by", "directed"),  # a passive turns active
        ("has genre", "genre of"),
        ("part of", "has part"),
        ("is located in", "is located in"),  # a trailing preposition: the same words both ways
        ("hypernym, is a kind of", "hyponym, has kinds"),  # schema terms have their named inverse
        ("is a", "has kind"),
        ("nationality", "nationality of"),  # a noun asks for the other side with "of"
    ],
)
def test_inverse_words(words, inverse):
    assert inverse_words(words) == inverse


def test_relation_phrases_read_both_ways_with_the_answer_side():
    phrases = relation_phrases("TREATS_CtD", None, ["Compound"], ["Disease"])
    assert phrases.forward == ("compound treats disease",)
    assert phrases.inverse == ("disease treated by compound",)
    assert (phrases.forward_answers, phrases.inverse_answers) == ("disease", "compound")


def test_relation_phrases_without_kinds_describe_answers_by_typical_names():
    phrases = relation_phrases("directed_by", head_examples=["Heat", "Alien"], tail_examples=["Michael Mann"])
    assert phrases.forward == ("directed by",) and phrases.inverse == ("directed",)
    assert phrases.forward_answers == "directed by: Michael Mann"
    assert phrases.inverse_answers == "directed: Heat, Alien"


def test_relation_records_give_names_aliases_and_descriptions():
    record = RelationRecord("P27", "citizen of", "has citizen", ("nationality",), "the country of a person")
    phrases = relation_phrases("P27", record)
    assert phrases.forward == ("citizen of", "nationality", "the country of a person")
    assert phrases.inverse == ("has citizen", "the country of a person")


def test_graph_phrases_relations_from_its_records_and_entities():
    triples = [TripleRecord(f"film{i}", "rel_7", "Ann Lee" if i < 3 else "Bo Chan") for i in range(4)]
    graph = KnowledgeGraph([], triples)
    assert graph.relation_phrases(0).forward_answers == "rel: Ann Lee, Bo Chan"  # most connected first
    update = graph.add([RelationRecord("rel_7", "directed by", aliases=("helmed by",))])
    assert update.described_relations == [0]
    assert graph.relation_phrases(0).forward == ("directed by", "helmed by")
    assert graph.relation_text(0) == "directed by"
    assert graph.add([RelationRecord("rel_7", aliases=("helmed by",))]).described_relations == []
    assert graph.add([RelationRecord("rel_9", "cites")]).new_relations == [1]  # words before any edge
