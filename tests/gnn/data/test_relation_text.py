import pytest

from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.data.records import EntityRecord, TripleRecord
from graphfuse.gnn.data.relation_text import describe_relation, relation_words


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


def test_describe_relation_adds_the_most_common_endpoint_kinds():
    heads, tails = ["Compound", "Compound", "Gene"], ["Disease", "Disease", "Symptom"]
    assert describe_relation("TREATS_CtD", heads, tails) == "compound treats disease"
    assert describe_relation("located_in", [], ["Anatomy"]) == "located in anatomy"
    assert describe_relation("located_in") == "located in"


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
