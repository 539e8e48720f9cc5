import json
import pickle
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import networkx as nx
import pytest

from graphfuse.gnn.data.records import MAX_ID_CHARS, EntityRecord, RelationRecord, TripleRecord
from graphfuse.gnn.formats.datasets import shared_data_dir
from graphfuse.gnn.formats.loaders import (
    FORMATS,
    InteractionLayout,
    LoadError,
    detect_format,
    iter_records,
    iter_relations,
    load_records,
    load_relations,
)

TRIPLES = [
    TripleRecord("aspirin", "treats", "headache"),
    TripleRecord("aspirin", "causes", "stomach ulcer"),
    TripleRecord("ibuprofen", "treats", "headache"),
]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def triples_of(records: list) -> list[TripleRecord]:
    return [record for record in records if isinstance(record, TripleRecord)]


def entities_of(records: list) -> dict[str, EntityRecord]:
    return {record.id: record for record in records if isinstance(record, EntityRecord)}


# ---------------------------------------------------------------- line formats: round trips


def test_tsv_round_trip(tmp_path):
    lines = "".join(f" {t.head} \t{t.relation}\t {t.tail}\n" for t in TRIPLES)
    text = "# drugs\nhead\trelation\ttail\n\n" + lines
    assert load_records(write(tmp_path / "g.tsv", text)) == TRIPLES


def test_tsv_header_is_skipped_only_on_the_first_line(tmp_path):
    path = write(tmp_path / "g.tsv", "HEAD\tRelation\ttail\na\tr\tb\nhead\trelation\ttail\n")
    assert load_records(path) == [TripleRecord("a", "r", "b"), TripleRecord("head", "relation", "tail")]


def test_csv_round_trip_with_quoted_commas(tmp_path):
    text = (
        'Head,Relation,Tail\n"Paris, Texas",directed_by,Wim Wenders\n\n# note\n"a ""quoted"" title",r,b\r\n'
    )
    assert load_records(write(tmp_path / "g.csv", text)) == [
        TripleRecord("Paris, Texas", "directed_by", "Wim Wenders"),
        TripleRecord('a "quoted" title', "r", "b"),
    ]


def test_metaqa_round_trip(tmp_path):
    text = "".join(f"{t.head}|{t.relation}|{t.tail}\n" for t in TRIPLES)
    path = write(tmp_path / "kb.txt", text)
    assert detect_format(path) == "metaqa"
    assert load_records(path) == TRIPLES


def test_metaqa_titles_with_pipes_split_around_the_relation(tmp_path):
    path = write(tmp_path / "kb.txt", "Face|Off|directed_by|John Woo\nKismet|starred_actors|A|B\n")
    assert load_records(path) == [
        TripleRecord("Face|Off", "directed_by", "John Woo"),
        TripleRecord("Kismet", "starred_actors", "A|B"),
    ]


def test_jsonl_round_trip_with_entities_and_triples(tmp_path):
    lines = [
        {"id": "aspirin", "name": "Aspirin", "aliases": ["ASA", "acetylsalicylic acid"]},
        {"id": "headache", "type": "disease"},
        {"id": "ibuprofen", "name": None, "aliases": None},
        *({"head": t.head, "relation": t.relation, "tail": t.tail} for t in TRIPLES),
    ]
    path = write(tmp_path / "g.jsonl", "\n".join(json.dumps(line) for line in lines) + "\n\n")
    assert load_records(path) == [
        EntityRecord("aspirin", "Aspirin", ("ASA", "acetylsalicylic acid")),
        EntityRecord("headache", type="disease"),
        EntityRecord("ibuprofen"),
        *TRIPLES,
    ]


def test_jsonl_relation_records_mirror_the_entity_objects(tmp_path):
    lines = [
        {
            "relation": {
                "id": "P27",
                "name": "country of citizenship",
                "inverse_name": "citizens",
                "aliases": ["nationality", "citizen of"],
                "description": "the country that recognises the person as its citizen",
            }
        },
        {"relation": {"id": "CtD", "aliases": None, "name": None}},
        {"head": "Q1", "relation": "P27", "tail": "Q2"},  # a triple's relation stays a string
    ]
    path = write(tmp_path / "g.jsonl", "\n".join(json.dumps(line) for line in lines) + "\n")
    assert load_records(path) == [
        RelationRecord(
            "P27",
            "country of citizenship",
            "citizens",
            ("nationality", "citizen of"),
            "the country that recognises the person as its citizen",
        ),
        RelationRecord("CtD"),
        TripleRecord("Q1", "P27", "Q2"),
    ]


@pytest.mark.parametrize("suffix", [".tsv", ".csv", ".txt"])
def test_relation_table_round_trip(tmp_path, suffix):
    separator = "," if suffix == ".csv" else "\t"
    rows = [
        ["ID", "name", "Inverse_Name", "aliases", "description"],  # any case
        ["P27", "country of citizenship", "citizens", "nationality | citizen of", "a person's country"],
        ["rel_12", "", "", "", ""],
        ["CtD", "treats", "", "cures||is a therapy for"],  # the trailing empty cell left out
    ]
    text = "# words for terse relation ids\n\n" + "\n".join(separator.join(row) for row in rows) + "\n"
    path = write(tmp_path / f"relations{suffix}", text)
    expected = [
        RelationRecord(
            "P27", "country of citizenship", "citizens", ("nationality", "citizen of"), "a person's country"
        ),
        RelationRecord("rel_12"),
        RelationRecord("CtD", "treats", None, ("cures", "is a therapy for")),
    ]
    assert load_relations(path) == expected
    assert load_records(path, "relations") == expected  # graphfuse ingest FILE --format relations


def test_relation_table_columns_may_come_in_any_order_and_csv_quotes(tmp_path):
    path = write(tmp_path / "r.csv", 'aliases,id\n"cures, heals|remedies",CtD\n')
    assert load_relations(path) == [RelationRecord("CtD", aliases=("cures, heals", "remedies"))]


HETIONET_METAEDGES = """metaedge\tabbreviation\tedges\tsource_nodes\ttarget_nodes\tunbiased
Compound - treats - Disease\tCtD\t755\t387\t77\t0
Compound - causes - Side Effect\tCcSE\t138944\t1071\t5701\t0
Gene - interacts - Gene\tGiG\t147164\t9526\t14084\t15517
Gene > regulates > Gene\tGr>G\t265672\t4634\t7048\t265672
Pharmacologic Class - includes - Compound\tPCiC\t1029\t345\t724\t0
"""


def test_hetionet_metaedges_become_relation_records(tmp_path):
    path = write(tmp_path / "metaedges.tsv", HETIONET_METAEDGES)
    assert load_relations(path) == [
        RelationRecord("CtD", "treats", None, ("Compound treats Disease",)),
        RelationRecord("CcSE", "causes", None, ("Compound causes Side Effect",)),
        RelationRecord("GiG", "interacts", "interacts", ("Gene interacts Gene",)),  # undirected: both ways
        RelationRecord("Gr>G", "regulates", None, ("Gene regulates Gene",)),  # directed
        RelationRecord("PCiC", "includes", None, ("Pharmacologic Class includes Compound",)),
    ]


def test_the_shared_hetionet_metaedges_file_reads_whole():
    try:
        path = shared_data_dir() / "hetionet" / "metaedges.tsv"
    except FileNotFoundError as error:
        pytest.skip(f"shared data is absent: {error}")
    records = load_relations(path)
    assert len(records) == 24 and len({r.id for r in records}) == 24
    assert RelationRecord("CtD", "treats", None, ("Compound treats Disease",)) in records


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("name\taliases\nP27\tx\n", 1, "expected a header naming the columns id, name"),
        ("id\tname\tcolour\nP27\tx\tred\n", 1, "expected a header naming the columns"),
        ("id\tname\n\nP27\tcitizen\tof\n", 3, "expected at most 2 fields (id, name), got 3"),
        ("id\tname\nP27\tcit\x00izen\n", 2, "relation name 'cit\\x00izen' contains a tab, newline or NUL"),
        ("id\tname\n\tcitizen\n", 2, "relation id is empty"),
        ("id\taliases\nP27\t" + "x" * 1100 + "\n", 2, "relation alias is 1100 characters long"),
        (
            "metaedge\tabbreviation\nCompound treats Disease\tCtD\n",
            2,
            "expected a metaedge 'Kind - verb - Kind'",
        ),
        ("metaedge\tabbreviation\nCompound - treats - Disease\n", 2, "expected 2 fields"),
    ],
)
def test_malformed_relation_tables_name_the_line(tmp_path, text, line, reason):
    path = write(tmp_path / "relations.tsv", text)
    with pytest.raises(LoadError) as info:
        load_relations(path)
    assert info.value.line == line and reason in info.value.reason


def test_adjacency_lists_become_typed_users_items_and_interactions(tmp_path):
    path = write(tmp_path / "train.txt", "0 3 5\n1 3\n2\n")
    assert load_records(path) == [
        EntityRecord("user:0", type="user"),
        EntityRecord("item:3", type="item"),
        EntityRecord("item:5", type="item"),
        TripleRecord("user:0", "interacted_with", "item:3"),
        TripleRecord("user:0", "interacted_with", "item:5"),
        EntityRecord("user:1", type="user"),
        TripleRecord("user:1", "interacted_with", "item:3"),
        EntityRecord("user:2", type="user"),  # a user without interactions yet
    ]
    layout = InteractionLayout("prescribed", "patient", "drug")
    assert list(iter_records(path, "adjacency", layout))[3] == TripleRecord(
        "patient:0", "prescribed", "drug:3"
    )


def test_adjacency_rejects_non_integer_ids(tmp_path):
    path = write(tmp_path / "train.txt", "0 1\n1 x2\n")
    with pytest.raises(LoadError, match=r"train\.txt:2: expected whitespace-separated integer ids"):
        load_records(path, "adjacency")


def test_edgelist_round_trip_through_networkx(tmp_path):
    graph = nx.MultiDiGraph()
    for t in TRIPLES:
        graph.add_edge(t.head.replace(" ", "_"), t.tail.replace(" ", "_"), relation=t.relation)
    graph.add_edge("aspirin", "headache")  # parallel edge without a relation
    path = tmp_path / "g.edgelist"
    nx.write_edgelist(graph, path, data=True)
    assert Counter(load_records(path)) == Counter(
        [TripleRecord(t.head.replace(" ", "_"), t.relation, t.tail.replace(" ", "_")) for t in TRIPLES]
        + [TripleRecord("aspirin", "related_to", "headache")]
    )


def test_edgelist_without_data_and_with_comments(tmp_path):
    path = write(tmp_path / "g.edges", "# SNAP style\n1 2\n2 3 # trailing comment\n")
    assert load_records(path) == [TripleRecord("1", "related_to", "2"), TripleRecord("2", "related_to", "3")]


# ---------------------------------------------------------------- graph formats: round trips


def drug_graph() -> nx.MultiDiGraph:
    graph = nx.MultiDiGraph()
    graph.add_node("aspirin", name="Aspirin", aliases="ASA|acetylsalicylic acid")
    graph.add_node("headache", label="Headache")
    graph.add_node("lonely")  # isolated nodes still become entities
    graph.add_edge("aspirin", "headache", relation="treats")
    graph.add_edge("aspirin", "headache", relation="prevents")  # parallel edge
    graph.add_edge("headache", "aspirin")
    return graph


@pytest.mark.parametrize(
    ("suffix", "write_graph"),
    [(".graphml", nx.write_graphml), (".gml", nx.write_gml), (".gexf", nx.write_gexf)],
)
def test_graph_formats_round_trip_a_multigraph(tmp_path, suffix, write_graph):
    path = tmp_path / f"drugs{suffix}"
    write_graph(drug_graph(), path)
    records = load_records(path)
    # GML keeps node ids in 'label' (nx.write_gml drops a 'label' attribute): only 'name' names a node
    headache_name = None if suffix == ".gml" else "Headache"
    assert entities_of(records) == {
        "aspirin": EntityRecord("aspirin", "Aspirin", ("ASA", "acetylsalicylic acid")),
        "headache": EntityRecord("headache", headache_name),
        "lonely": EntityRecord("lonely"),
    }
    assert Counter(triples_of(records)) == Counter(
        [
            TripleRecord("aspirin", "treats", "headache"),
            TripleRecord("aspirin", "prevents", "headache"),
            TripleRecord("headache", "related_to", "aspirin"),
        ]
    )
    assert all(isinstance(record, EntityRecord) for record in records[:3])  # nodes before edges


def test_gml_list_aliases_and_numeric_attributes(tmp_path):
    graph = nx.Graph()
    graph.add_node("x", aliases=["p", "q"])
    graph.add_node("y", aliases=["only"], name=42)
    graph.add_edge("x", "y", type=7)
    path = tmp_path / "g.gml"
    nx.write_gml(graph, path)
    assert load_records(path) == [
        EntityRecord("x", None, ("p", "q")),
        EntityRecord("y", "42", ("only",)),
        TripleRecord("x", "7", "y"),
    ]


def test_undirected_graphml_gives_one_triple_per_edge(tmp_path):
    graph = nx.Graph()
    graph.add_edge("a", "b", label="knows")
    graph.add_edge("b", "c", type="likes")
    path = tmp_path / "g.graphml"
    nx.write_graphml(graph, path)
    assert triples_of(load_records(path)) == [
        TripleRecord("a", "knows", "b"),
        TripleRecord("b", "likes", "c"),
    ]


def test_hand_written_gexf_labels(tmp_path):
    text = """<?xml version="1.0" encoding="UTF-8"?>
<gexf xmlns="http://www.gexf.net/1.2draft" version="1.2">
  <graph defaultedgetype="directed">
    <nodes><node id="n1" label="Aspirin"/><node id="n2" label="n2"/></nodes>
    <edges><edge id="e1" source="n1" target="n2" label="treats"/></edges>
  </graph>
</gexf>
"""
    assert load_records(write(tmp_path / "g.gexf", text)) == [
        EntityRecord("n1", "Aspirin"),
        EntityRecord("n2"),  # a label equal to the id is no name
        TripleRecord("n1", "treats", "n2"),
    ]


# ---------------------------------------------------------------- malformed input


@pytest.mark.parametrize(
    ("name", "text", "line", "reason"),
    [
        ("t.tsv", "a\tr\tb\n\n# c\na\tr\n", 4, "3 tab-separated fields (head, relation, tail), got 2"),
        ("t.tsv", "a\tr\tb\tc\n", 1, "got 4"),
        ("t.tsv", "a\tr\tb\na\t\tb\n", 2, "relation is empty"),
        ("t.tsv", "a\t  \tb\n", 1, "relation is empty"),
        ("t.tsv", "a\tr\tb\x00c\n", 1, "contains a tab, newline or NUL"),
        ("t.tsv", "a\tr\t" + "x" * 600 + "\n", 1, "600 characters long"),
        ("t.csv", "head,relation,tail\na,r\n", 2, "expected 3 comma-separated fields"),
        ("t.csv", "a,r,b\n a , , b\n", 2, "relation is empty"),
        ("t.csv", 'a,r,b\n"x\ty",r,b\n', 2, "contains a tab"),
        ("t.csv", 'a,r,b\n"multi\nline",r,b\n', 2, "contains a tab, newline"),
        ("kb.txt", "a|r|b\na|r\n", 2, "expected 3 '|'-separated fields"),
        ("kb.txt", "a|r|b\nA|B|C|D\n", 2, "not exactly one inner field is a MetaQA relation"),
        ("kb.txt", "a|directed_by|b|written_by|c\n", 1, "got 5"),
        ("kb.txt", "a| |b\n", 1, "relation is empty"),
        ("g.jsonl", '{"id": "a"}\n{"head": "a", "relation": "r"\n', 2, "invalid JSON"),
        ("g.jsonl", '{"head": "a", "relation": "r"}\n', 1, "missing ['tail']"),
        ("g.jsonl", '{"head": "a", "relation": "r", "tail": "b", "w": 1}\n', 1, "unexpected ['w']"),
        ("g.jsonl", '{"head": "a", "relation": 3, "tail": "b"}\n', 1, "relation must be a string (got int)"),
        ("g.jsonl", '{"id": "a", "aliases": "b"}\n', 1, "'aliases' to be an array of strings, got string"),
        ("g.jsonl", '{"id": "a", "aliases": [1]}\n', 1, "alias must be a string"),
        ("g.jsonl", '{"id": "a", "nmae": "A"}\n', 1, "unexpected ['nmae']"),
        ("g.jsonl", '{"name": "A"}\n', 1, "expected a triple {head, relation, tail}, an entity"),
        ("g.jsonl", '["a", "r", "b"]\n', 1, "expected a JSON object, got array"),
        ("g.jsonl", '{"id": "a\\tb"}\n', 1, "contains a tab"),
        ("g.jsonl", '{"id": " a"}\n', 1, "leading or trailing whitespace"),
        ("g.jsonl", '{"relation": "r"}\n', 1, "expected 'relation' to be an object {id, name?"),
        ("g.jsonl", '{"relation": {"name": "x"}}\n', 1, "(id required; missing ['id']"),
        ("g.jsonl", '{"relation": {"id": "r", "inverseName": "x"}}\n', 1, "unexpected ['inverseName']"),
        (
            "g.jsonl",
            '{"relation": {"id": "r", "aliases": "x"}}\n',
            1,
            "'aliases' of a relation to be an array",
        ),
        ("g.jsonl", '{"relation": {"id": "r", "name": ""}}\n', 1, "relation name is empty"),
        ("g.jsonl", '{"relation": {"id": "r", "description": 3}}\n', 1, "relation description must be"),
        ("g.edgelist", "a b\nc\n", 2, "expected 'source target'"),
        ("g.edgelist", "a b treats\n", 1, "expected 'source target' or 'source target {attribute dict}'"),
        ("g.edgelist", "a b {'relation': ''}\n", 1, "relation is empty"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, name, text, line, reason):
    path = write(tmp_path / name, text)
    with pytest.raises(LoadError) as info:
        load_records(path)
    error = info.value
    assert (error.path, error.line) == (path, line)
    assert reason in error.reason
    assert str(error).startswith(f"{path}:{line}: ")


@pytest.mark.parametrize("name, separator", [("g.tsv", "\t"), ("g.txt", "|")])
def test_ids_known_from_earlier_lines_do_not_hide_a_later_bad_one(tmp_path, name, separator):
    lines = [("a", "r", "b"), ("b", "r", "a"), (" a ", "r", "b"), ("a", "r", "x" * (MAX_ID_CHARS + 1))]
    path = write(tmp_path / name, "".join(separator.join(fields) + "\n" for fields in lines))
    records = iter_records(path, "tsv" if separator == "\t" else "metaqa")
    assert [next(records) for _ in range(3)] == [TripleRecord("a", "r", "b"), TripleRecord("b", "r", "a")] + [
        TripleRecord("a", "r", "b")
    ]
    with pytest.raises(LoadError) as info:
        next(records)
    assert info.value.line == 4
    assert f"at most {MAX_ID_CHARS}" in info.value.reason


def test_error_arrives_after_the_good_lines_are_streamed(tmp_path):
    records = iter_records(write(tmp_path / "g.tsv", "a\tr\tb\nc\tr\td\nbroken\n"))
    assert next(records) == TripleRecord("a", "r", "b")
    assert next(records) == TripleRecord("c", "r", "d")
    with pytest.raises(LoadError, match=r"g\.tsv:3: expected 3 tab-separated fields"):
        next(records)


def test_invalid_utf8_names_the_line_and_a_bom_is_dropped(tmp_path):
    path = tmp_path / "g.tsv"
    path.write_bytes(b"\xef\xbb\xbfa\tr\tb\nc\tr\t\xff\n")
    records = iter_records(path)
    assert next(records) == TripleRecord("a", "r", "b")
    with pytest.raises(LoadError, match=r"g\.tsv:2: not valid UTF-8"):
        next(records)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("g.graphml", "<graphml><graph><node id='a'></graph>"),
        ("g.gml", "graph [ node [ id 0 label "),
        ("g.gml", "graph [ node [ id 0 ] ]"),  # no label to name the node by
        ("g.gexf", "not xml at all"),
    ],
)
def test_unreadable_graph_files_raise_load_error(tmp_path, name, text):
    path = write(tmp_path / name, text)
    expected = f"^{re.escape(str(path))}: cannot be read as {path.suffix[1:]} "
    with pytest.raises(LoadError, match=expected) as info:
        load_records(path)
    assert info.value.line is None


def test_invalid_graph_element_is_named(tmp_path):
    graph = nx.DiGraph()
    graph.add_node("a", name="")
    path = tmp_path / "g.graphml"
    nx.write_graphml(graph, path)
    with pytest.raises(LoadError, match=r"g\.graphml: node 'a': entity name is empty") as info:
        load_records(path)
    assert info.value.element == "node 'a'"

    graph = nx.DiGraph()
    graph.add_edge("a", "b", relation="bad\trelation")
    nx.write_graphml(graph, path)
    with pytest.raises(LoadError, match=r"edge 1 \(a -> b\): relation .* contains a tab"):
        load_records(path)


def test_load_error_pickles():
    error = LoadError("x.tsv", "broken", line=3)
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.path, copy.line, copy.reason) == ("x.tsv:3: broken", Path("x.tsv"), 3, "broken")
    assert isinstance(copy, ValueError)


# ---------------------------------------------------------------- format detection and arguments


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.tsv", "tsv"),
        ("A.TSV", "tsv"),
        ("a.csv", "csv"),
        ("a.jsonl", "jsonl"),
        ("a.ndjson", "jsonl"),
        ("a.graphml", "graphml"),
        ("a.gml", "gml"),
        ("a.gexf", "gexf"),
        ("a.edgelist", "edgelist"),
        ("dir.v2/a.edges", "edgelist"),
    ],
)
def test_detect_format_by_extension(name, expected):
    assert detect_format(name) == expected  # files with these extensions are not opened


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a\tr\tb\n", "tsv"),
        ("Kismet|directed_by|William Dieterle\n", "metaqa"),
        ("\n# a|b comment\n\nx|r|y\n", "metaqa"),
        ("a|b\tr\tc\n", "tsv"),  # a tab wins over '|'
        ("", "tsv"),
        ("0 0 1 2\n1 5\n", "adjacency"),
        ("7\n", "tsv"),  # one number is no interaction list
        ("a b c\n", "tsv"),
    ],
)
def test_detect_format_sniffs_metaqa_in_txt(tmp_path, text, expected):
    assert detect_format(write(tmp_path / "kb.txt", text)) == expected


def test_detect_format_rejects_unknown_extensions():
    with pytest.raises(ValueError, match=r"got 'graph\.xlsx'.*pass 'format'") as info:
        detect_format("graph.xlsx")
    assert all(format in str(info.value) for format in FORMATS)


def test_explicit_format_overrides_the_extension(tmp_path):
    path = write(tmp_path / "graph.data", "a|r|b\n")
    assert load_records(path, "metaqa") == [TripleRecord("a", "r", "b")]
    with pytest.raises(ValueError, match=r"Expected 'format' to be one of tsv, .* \(got 'xml'\)"):
        iter_records(path, "xml")  # checked when called, before iteration


def test_missing_file_is_reported_when_called(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.tsv"):
        iter_records(tmp_path / "nope.tsv")
    with pytest.raises(FileNotFoundError, match="relation table at .*nope.tsv"):
        iter_relations(tmp_path / "nope.tsv")


def test_gnn_never_imports_grpc_or_server():
    code = (
        "import sys, graphfuse.gnn.formats.loaders, graphfuse.gnn.formats.datasets\n"
        "outside = ('grpc', 'graphfuse.server', 'graphfuse.v1')\n"
        "bad = [m for m in sys.modules if m.split('.')[0] == 'grpc' or m.startswith(outside[1:])]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
