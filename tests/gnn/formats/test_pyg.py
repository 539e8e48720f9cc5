import importlib
import sys

import pytest
import torch
from torch_geometric.data import Data

from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.data.records import EntityRecord, TripleRecord
from graphfuse.gnn.formats.pyg import (
    records_from_data,
    split_records,
    to_data,
    to_hetero_data,
)


def medical_graph() -> KnowledgeGraph:
    entities = [
        EntityRecord("aspirin", "Aspirin", type="compound"),
        EntityRecord("flu", "Influenza", type="disease"),
        EntityRecord("ibuprofen", "Ibuprofen", type="compound"),
        EntityRecord("fever", "Fever", type="symptom"),
        EntityRecord("migraine", "Migraine", type="disease"),
    ]
    triples = [
        TripleRecord("aspirin", "treats", "migraine"),
        TripleRecord("ibuprofen", "treats", "flu"),
        TripleRecord("flu", "presents", "fever"),
        TripleRecord("aspirin", "treats", "flu"),
    ]
    return KnowledgeGraph(entities, triples)


def triples_of(graph: KnowledgeGraph) -> set[tuple[str, str, str]]:
    heads, rels, tails = (part.tolist() for part in graph.edges)
    ids, relations = graph.entity_ids, graph.relation_ids
    return {(ids[h], relations[r], ids[t]) for h, r, t in zip(heads, rels, tails, strict=True)}


def by_id(graph: KnowledgeGraph, field: list[str]) -> dict[str, str]:
    return dict(zip(graph.entity_ids, field, strict=True))


def test_to_data_shapes_types_and_names():
    graph = medical_graph()
    data = to_data(graph)
    assert data.edge_index.shape == (2, 4) and data.edge_index.dtype == torch.long
    assert data.edge_type.shape == (4,) and data.edge_type.dtype == torch.long
    assert data.num_nodes == 5
    assert data.node_ids == graph.entity_ids and data.node_names[0] == "Aspirin"
    assert data.relation_names == ["treats", "presents"]
    ids, relations = data.node_ids, data.relation_names
    found = {
        (ids[h], relations[r], ids[t])
        for (h, t), r in zip(data.edge_index.T.tolist(), data.edge_type.tolist(), strict=True)
    }
    assert found == triples_of(graph)


def test_to_hetero_data_node_and_edge_types():
    data = to_hetero_data(medical_graph())
    assert set(data.node_types) == {"compound", "disease", "symptom"}
    assert set(data.edge_types) == {("compound", "treats", "disease"), ("disease", "presents", "symptom")}
    assert data["compound"].node_ids == ["aspirin", "ibuprofen"]
    assert data["disease"].node_ids == ["flu", "migraine"]
    assert data["disease"].node_names == ["Influenza", "Migraine"]
    assert data["compound"].num_nodes == 2 and data["symptom"].num_nodes == 1
    # aspirin (compound 0) treats migraine (disease 1); ibuprofen (1) treats flu (0); aspirin treats flu
    treats = data["compound", "treats", "disease"].edge_index
    assert sorted(map(tuple, treats.T.tolist())) == [(0, 0), (0, 1), (1, 0)]
    assert data["disease", "presents", "symptom"].edge_index.tolist() == [[0], [0]]


def test_untyped_entities_become_entity_node_type():
    graph = KnowledgeGraph(triples=[TripleRecord("a", "knows", "b")])
    data = to_hetero_data(graph)
    assert data.node_types == ["entity"]
    assert data["entity", "knows", "entity"].edge_index.tolist() == [[0], [1]]


@pytest.mark.parametrize("convert", [to_data, to_hetero_data])
def test_round_trip(convert):
    graph = medical_graph()
    back = KnowledgeGraph(*split_records(records_from_data(convert(graph))))
    assert triples_of(back) == triples_of(graph)
    assert by_id(back, back.names) == by_id(graph, graph.names)
    assert by_id(back, back.types) == by_id(graph, graph.types)


def test_round_trip_keeps_untyped_and_isolated_entities():
    graph = KnowledgeGraph([EntityRecord("lonely")], [TripleRecord("a", "knows", "b")])
    back = KnowledgeGraph(*split_records(records_from_data(to_data(graph))))
    assert back.entity_ids == graph.entity_ids and back.types == ["", "", ""]
    assert triples_of(back) == triples_of(graph)


def test_plain_pyg_data_ingests_with_defaults():
    data = Data(edge_index=torch.tensor([[0, 1], [1, 2]]), num_nodes=3)
    entities, triples = split_records(records_from_data(data))
    assert [e.id for e in entities] == ["0", "1", "2"]
    assert all(e.name is None and e.type is None for e in entities)
    assert triples == [TripleRecord("0", "related_to", "1"), TripleRecord("1", "related_to", "2")]


def test_edge_type_without_names_and_given_names():
    data = Data(edge_index=torch.tensor([[0, 1], [1, 2]]), edge_type=torch.tensor([0, 1]), num_nodes=3)
    _, triples = split_records(records_from_data(data))
    assert [t.relation for t in triples] == ["r0", "r1"]
    _, triples = split_records(records_from_data(data, relation_names=["cites", "likes"], node_ids="abc"))
    assert triples == [TripleRecord("a", "cites", "b"), TripleRecord("b", "likes", "c")]


def test_missing_torch_geometric_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_geometric", None)
    monkeypatch.setitem(sys.modules, "torch_geometric.data", None)
    monkeypatch.delitem(sys.modules, "graphfuse.gnn.formats.pyg")
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'torch-geometric==2\.8\.1'"):
        importlib.import_module("graphfuse.gnn.formats.pyg")
