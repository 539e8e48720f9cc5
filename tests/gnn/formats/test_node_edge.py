import gzip
import re
from pathlib import Path

import pytest

from graphfuse.gnn.data.records import EntityRecord, RelationRecord, TripleRecord
from graphfuse.gnn.formats.loaders import LoadError
from graphfuse.gnn.formats.node_edge import iter_node_edge_records

# Hetionet's shapes, a few lines of each; one pathway name ends in blanks, one has a double space inside.
HETIONET_NODES = """id\tname\tkind
Compound::DB00945\tAspirin\tCompound
Compound::DB01050\tIbuprofen\tCompound
Disease::DOID:10763\thypertension\tDisease
Gene::5743\tPTGS2\tGene
Gene::7124\tTNF\tGene
Pathway::WP2895_r79216\tDifferentiation of white and brown adipocyte   \tPathway
Pathway::WP2879_r79602\tFarnesoid X Receptor  Pathway\tPathway
"""
HETIONET_EDGES = """source\tmetaedge\ttarget
Compound::DB00945\tCbG\tGene::5743
Compound::DB01050\tCuG\tGene::7124
Disease::DOID:10763\tDuG\tGene::7124
Compound::DB00945\tCtD\tDisease::DOID:10763
Gene::5743\tGpPW\tPathway::WP2895_r79216
"""
HETIONET_METAEDGES = """metaedge\tabbreviation\tedges\tsource_nodes\ttarget_nodes\tunbiased
Compound - binds - Gene\tCbG\t11571\t1389\t1689\t0
Compound - upregulates - Gene\tCuG\t18756\t703\t3247\t18756
Compound - treats - Disease\tCtD\t755\t387\t77\t0
Disease - upregulates - Gene\tDuG\t7731\t44\t5630\t7731
Gene - participates - Pathway\tGpPW\t84372\t9861\t1822\t0
"""


def write(path: Path, text: str) -> Path:
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as file:
            file.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def of_type(records: list, kind: type) -> list:
    return [record for record in records if isinstance(record, kind)]


def test_hetionet_nodes_gzipped_sif_and_metaedges(tmp_path):
    records = list(
        iter_node_edge_records(
            write(tmp_path / "nodes.tsv", HETIONET_NODES),
            write(tmp_path / "edges-5k.sif.gz", HETIONET_EDGES),
            write(tmp_path / "metaedges.tsv", HETIONET_METAEDGES),
        )
    )
    relations, entities, triples = (
        of_type(records, kind) for kind in (RelationRecord, EntityRecord, TripleRecord)
    )
    assert records == relations + entities + triples  # relation words, then nodes, then edges
    assert [r.id for r in relations] == ["CbG", "CuG", "CtD", "DuG", "GpPW"]
    assert entities[0] == EntityRecord("Compound::DB00945", "Aspirin", (), "Compound")
    names = {e.id: e.name for e in entities}
    assert names["Pathway::WP2895_r79216"] == "Differentiation of white and brown adipocyte"
    assert names["Pathway::WP2879_r79602"] == "Farnesoid X Receptor Pathway"
    assert {e.type for e in entities} == {"Compound", "Disease", "Gene", "Pathway"}
    # CuG and DuG say 'upregulates' between two kind pairs, but the abbreviations are distinct: kept.
    assert triples == [
        TripleRecord("Compound::DB00945", "CbG", "Gene::5743"),
        TripleRecord("Compound::DB01050", "CuG", "Gene::7124"),
        TripleRecord("Disease::DOID:10763", "DuG", "Gene::7124"),
        TripleRecord("Compound::DB00945", "CtD", "Disease::DOID:10763"),
        TripleRecord("Gene::5743", "GpPW", "Pathway::WP2895_r79216"),
    ]


def test_a_verb_between_several_kind_pairs_becomes_one_relation_per_pair(tmp_path):
    edges = """source\tmetaedge\ttarget
Compound::DB01050\tupregulates\tGene::7124
Compound::DB00945\tbinds\tGene::5743
Disease::DOID:10763\tupregulates\tGene::7124
Compound::DB00945\ttreats\tDisease::DOID:10763
Compound::DB00945\tupregulates\tGene::5743
"""
    records = list(
        iter_node_edge_records(
            write(tmp_path / "nodes.tsv", HETIONET_NODES), write(tmp_path / "e.sif", edges)
        )
    )
    entities = of_type(records, EntityRecord)
    relations = of_type(records, RelationRecord)
    assert relations == [
        RelationRecord("Compound upregulates Gene", "upregulates", aliases=("Compound upregulates Gene",)),
        RelationRecord("Disease upregulates Gene", "upregulates", aliases=("Disease upregulates Gene",)),
    ]
    assert records.index(relations[0]) > records.index(entities[-1])  # after the nodes, before the edges
    assert [t.relation for t in of_type(records, TripleRecord)] == [
        "Compound upregulates Gene",
        "binds",
        "Disease upregulates Gene",
        "treats",
        "Compound upregulates Gene",
    ]


def test_relations_given_words_by_the_relation_table_keep_their_ids(tmp_path):
    nodes = write(
        tmp_path / "nodes.csv", "id,name,type\nc,Aspirin,Compound\nd,fever,Disease\ng,TNF,Gene\nx,X,\n"
    )
    edges = write(
        tmp_path / "edges.csv", "source,target,relation\nc,g,regulates\nd,g,regulates\nx,g,binds\nc,g,binds\n"
    )
    table = write(tmp_path / "relations.tsv", "id\tname\tinverse_name\nregulates\tregulates\tregulated by\n")
    records = list(iter_node_edge_records(nodes, edges, table))
    assert of_type(records, RelationRecord) == [
        RelationRecord("regulates", "regulates", "regulated by"),  # the table's, not split
        RelationRecord("binds Gene", "binds", aliases=("binds Gene",)),  # x has no kind
        RelationRecord("Compound binds Gene", "binds", aliases=("Compound binds Gene",)),
    ]
    assert [t.relation for t in of_type(records, TripleRecord)] == [
        "regulates",
        "regulates",
        "binds Gene",
        "Compound binds Gene",
    ]
    assert of_type(records, EntityRecord)[-1] == EntityRecord("x", "X", (), None)


def test_neo4j_import_csvs(tmp_path):
    nodes = write(
        tmp_path / "nodes.csv",
        "name:ID(Node),:LABEL,title,born:int\n"
        'keanu,Person;Actor,"Reeves,  Keanu ",1964\n'
        "matrix,Movie,The Matrix,\n",
    )
    edges = write(
        tmp_path / "edges.csv.gz",
        ":START_ID(Node),source,:END_ID(Node),:TYPE\nkeanu,imdb,matrix,ACTED_IN\n",
    )
    assert list(iter_node_edge_records(nodes, edges)) == [
        EntityRecord("keanu", "Reeves, Keanu", (), "Person"),
        EntityRecord("matrix", "The Matrix", (), "Movie"),
        TripleRecord("keanu", "ACTED_IN", "matrix"),  # :START_ID wins over the 'source' property
    ]


def test_pyg_style_tables_with_any_header_case(tmp_path):
    nodes = write(tmp_path / "nodes.csv", "ID,Name,Type\n0,paper zero,paper\n1,,author\n")
    edges = write(tmp_path / "edges.csv", "Source,Target,Relation,weight\n1,0,writes,0.5\n")
    assert list(iter_node_edge_records(nodes, edges)) == [
        EntityRecord("0", "paper zero", (), "paper"),
        EntityRecord("1", None, (), "author"),  # an empty name is no name
        TripleRecord("1", "writes", "0"),
    ]


@pytest.mark.parametrize(
    ("nodes", "edges", "where", "reason"),
    [
        ("id\tname\na\tA\nb\n", "src\trelation\tdst\n", "nodes.tsv:3", "expected 2 fields like the header"),
        ("id\tname\na\tA\n \tB\n", "src\trelation\tdst\n", "nodes.tsv:3", "empty node id"),
        (
            "id\tname\na\tA\na\tA again\n",
            "src\trelation\tdst\n",
            "nodes.tsv:3",
            "node id 'a' appears a second",
        ),
        ("name\tkind\na\tA\n", "src\trelation\tdst\n", "nodes.tsv:1", "expected a node table header naming"),
        ("id\na\nb\n", "src\tdst\na\tb\n", "edges.sif.gz:1", "expected an edge table header naming"),
        ("id\na\nb\n", "src\trelation\tdst\na\tr\tb\n\na\tr\n", "edges.sif.gz:4", "expected 3 fields"),
        (
            "id\na\nb\n",
            "src\trelation\tdst\na\t\tb\n",
            "edges.sif.gz:2",
            "empty relation (column 'relation')",
        ),
        (
            "id\na\nb\n",
            "src\trelation\tdst\na\tr\tb\nb\tr\tc\n",
            "edges.sif.gz:3",
            "target 'c' is not a node id of nodes.tsv",
        ),
        (
            "id\na\nb\n",
            "# comment\nsrc\trelation\tdst\nz\tr\tb\n",
            "edges.sif.gz:3",
            "source 'z' is not a node id",
        ),
    ],
)
def test_malformed_lines_and_unknown_ids_are_reported_with_file_and_line(
    tmp_path, nodes, edges, where, reason
):
    records = iter_node_edge_records(
        write(tmp_path / "nodes.tsv", nodes), write(tmp_path / "edges.sif.gz", edges)
    )
    with pytest.raises(LoadError) as raised:
        list(records)
    assert str(raised.value).startswith(f"{tmp_path / where}: ")
    assert reason in str(raised.value)


def test_an_unknown_id_stops_before_any_triple(tmp_path):
    nodes = write(tmp_path / "nodes.tsv", "id\na\nb\n")
    edges = write(tmp_path / "edges.tsv", "source\trelation\ttarget\na\tr\tb\na\tr\tnobody\n")
    seen = []
    with pytest.raises(LoadError, match=re.escape("edges.tsv:3: target 'nobody' is not a node id")):
        for record in iter_node_edge_records(nodes, edges):
            seen.append(record)
    assert not of_type(seen, TripleRecord) and len(seen) == 2


def test_files_and_extensions_are_checked_when_called(tmp_path):
    nodes = write(tmp_path / "nodes.tsv", "id\na\n")
    with pytest.raises(FileNotFoundError, match="Expected an edge table"):
        iter_node_edge_records(nodes, tmp_path / "missing.tsv")
    with pytest.raises(ValueError, match=r"Expected an edge table ending in one of .tsv.*got 'edges.json'"):
        iter_node_edge_records(nodes, write(tmp_path / "edges.json", "{}"))


def test_a_file_that_is_not_gzip_is_reported(tmp_path):
    nodes = write(tmp_path / "nodes.tsv", "id\na\n")
    edges = tmp_path / "edges.sif.gz"
    edges.write_text("source\trelation\ttarget\n")
    with pytest.raises(LoadError, match=re.escape(f"{edges}:1: cannot be read as gzip")):
        list(iter_node_edge_records(nodes, edges))
