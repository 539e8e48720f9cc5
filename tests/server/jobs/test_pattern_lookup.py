"""`graphfuse train --task link --relation R` over the real server: the relation resolved by its words, a
path-pattern predictor written and served, Lookup inferring triples with evidence grouped by pattern."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.data.records import RelationRecord
from graphfuse.server.cli import commands
from graphfuse.server.cli.commands import main
from graphfuse.server.jobs.link_training import resolve_relations
from graphfuse.server.storage.checkpoints import checkpoint_path, load_checkpoint
from tests.helpers.pharmacology import pharmacology
from tests.server.conftest import RunningServer, server_config

INFERRED = 2


@pytest.fixture(scope="module")
def pattern_server(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    data_dir = tmp_path_factory.mktemp("pattern-data")
    config = server_config(data_dir, demo=False)
    config.checkpoint_poll_seconds = 0.2
    server = RunningServer(config)
    entities, triples = pharmacology()
    records = [
        *entities,
        RelationRecord("CtD", "treats", None, ("is indicated for",)),
        *[t if t.relation != "treats" else type(t)(t.head, "CtD", t.tail) for t in triples],
    ]
    with server.client() as client:
        assert all(ack.accepted for ack in client.ingest("pharma", records))
    trained = CliRunner().invoke(
        main,
        ["train", "--task", "link", "--graph", "pharma", "--relation", "is indicated for"]
        + ["--data-dir", str(data_dir), "--target", server.target],
    )
    yield server, data_dir, trained
    server.stop()


def test_train_a_named_relation_then_lookup_infers_it_with_patterns(pattern_server) -> None:  # noqa: ANN001
    server, _, result = pattern_server
    assert result.exit_code == 0, result.output
    assert "| CtD |" in result.output and "now serves pharma with the new checkpoint" in result.output
    with server.client() as client:
        response = client.lookup("pharma", head="c3", relation="treats", top_k=5, exclude_facts=True)
        bare = client.lookup(
            "pharma", head="c3", relation="treats", top_k=5, exclude_facts=True, no_evidence=True
        )
        reverse = client.lookup("pharma", relation="treats", tail="d2", top_k=5, exclude_facts=True)
        gene = client.lookup("pharma", head="g1", relation="treats", top_k=5, exclude_facts=True)
    assert response.link_predictor.startswith("PathPatternPredictor for CtD")
    assert response.triples and all(t.kind == INFERRED for t in response.triples)
    assert [t.score for t in response.triples] == [t.score for t in bare.triples]
    assert all(not t.evidence for t in bare.triples)
    patterns = {p.pattern for t in response.triples for p in t.evidence}
    assert patterns and all(p.startswith("Compound -") and p.endswith(" Disease") for p in patterns)
    assert not any("CtD" in p for p in patterns)  # relations shown by their record's name
    assert all(t.tail_id == "d2" and t.head_id.startswith("c") for t in reverse.triples)
    assert not gene.triples  # a gene treats nothing


def test_ask_answers_stored_treatments_then_inferred_ones(pattern_server) -> None:  # noqa: ANN001
    server, _, _ = pattern_server
    with server.client() as client:
        facts_only = client.lookup("pharma", head="c3", relation="CtD", facts_only=True)
        stored = {t.tail_id for t in facts_only.triples}
        answer = client.ask("which diseases could c3 treat", graph="pharma", top_k=8)
    assert answer.topic_entities[0].id == "c3"
    inferred = [a for a in answer.answers if a.kind == INFERRED]
    assert inferred and not {a.entity_id for a in inferred} & stored
    assert all(a.entity_id.startswith("d") and 0 < a.score < 1 and a.evidence for a in inferred)
    assert all(p.kind == INFERRED and p.pattern for a in inferred for p in a.evidence)
    best_stored = max(a.score for a in answer.answers if a.entity_id in stored)
    assert best_stored > max(a.score for a in inferred)  # the stored answer of the same reading ranks first
    assert [a.score for a in answer.answers] == sorted((a.score for a in answer.answers), reverse=True)


def test_eval_ranks_stored_treatments_hidden_from_the_graph(pattern_server, tmp_path) -> None:  # noqa: ANN001
    server, data_dir, _ = pattern_server
    with server.client() as client:
        stored = client.lookup("pharma", relation="CtD", top_k=200, facts_only=True).triples
    test = tmp_path / "test.tsv"
    test.write_text("".join(f"{t.head_id}\tCtD\t{t.tail_id}\n" for t in stored[:20]) + "c1\tbinds\tg1\n")
    arguments = ["eval", "--task", "link", "--graph", "pharma", "--test", str(test)]
    result = CliRunner().invoke(main, [*arguments, "--data-dir", str(data_dir), "--target", server.target])
    assert result.exit_code == 0, result.output
    assert "1 test triples skipped" in result.output  # binds: not a relation the predictor knows
    mrr = float(result.output.split("| test |")[1].split("|")[2])
    assert mrr > 0.2


def test_a_relation_nobody_named_is_refused(pattern_server) -> None:  # noqa: ANN001
    _, data_dir, _ = pattern_server
    arguments = ["train", "--task", "link", "--graph", "pharma", "--relation", "cures"]
    result = CliRunner().invoke(main, [*arguments, "--data-dir", str(data_dir)])
    assert result.exit_code != 0 and "no relation of the graph is named 'cures'" in result.output


def test_relations_resolve_by_id_record_words_or_id_words() -> None:
    entities, triples = pharmacology()
    graph = KnowledgeGraph(entities, triples)
    graph.add([RelationRecord("binds", "binds to", None, ("targets",))])
    graph.add([RelationRecord("UPREGULATES_CuG", None), RelationRecord("UPREGULATES_DuG", None)])
    r = graph.relation_index
    assert resolve_relations(graph, ["treats"]) == [r["treats"]]
    assert resolve_relations(graph, ["Targets"]) == [r["binds"]]
    assert resolve_relations(graph, ["upregulates"]) == [r["UPREGULATES_CuG"], r["UPREGULATES_DuG"]]
    assert resolve_relations(graph, ["all"]) == [r["binds"], r["associates"], r["treats"]]  # >= 6 edges each
    with pytest.raises(KeyError, match="'cures'"):
        resolve_relations(graph, ["cures"])


def test_a_large_graph_gets_path_patterns_for_every_relation_by_default(pattern_server, monkeypatch) -> None:  # noqa: ANN001
    _, data_dir, _ = pattern_server
    monkeypatch.setattr(commands, "LARGE_GRAPH", 100)  # the pharmacology graph has a few hundred triples
    arguments = ["train", "--task", "link", "--graph", "pharma", "--data-dir", str(data_dir)]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 0, result.output
    assert "(--relation all)" in result.output and "| binds |" in result.output and "| CtD |" in result.output
    model, _ = load_checkpoint(checkpoint_path(data_dir, "pharma", "link"))
    assert set(model.targets) == {"binds", "associates", "CtD"}
