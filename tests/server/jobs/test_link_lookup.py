"""Lookup with inference over the real server: `graphfuse train --task link`, facts before inferred triples,
filters, explanations, errors, and `graphfuse eval --task link`."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner

from graphfuse.gnn.data.records import TripleRecord
from graphfuse.server.cli.commands import main
from graphfuse.server.storage.checkpoints import checkpoint_path
from graphfuse.v1 import graphfuse_pb2 as pb
from graphfuse.v1 import graphfuse_pb2_grpc as pb_grpc
from tests.server.conftest import RunningServer, server_config
from tests.server.test_server import rpc_error

FACT, INFERRED = 1, 2


def family(people: int = 30, seed: int = 0) -> tuple[list[TripleRecord], list[TripleRecord]]:
    """Stored triples, and the child_of facts left out of them (each the inverse of a stored parent_of)."""
    rng = random.Random(seed)
    pairs = sorted({(rng.randrange(people), rng.randrange(people)) for _ in range(3 * people)})
    pairs = [(a, b) for a, b in pairs if a != b]
    parent = [TripleRecord(f"p{a}", "parent_of", f"p{b}") for a, b in pairs]
    child = [TripleRecord(f"p{b}", "child_of", f"p{a}") for a, b in pairs]
    rng.shuffle(child)
    held = child[: len(child) // 6]
    return parent + child[len(held) :], held


@pytest.fixture(scope="module")
def link_server(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    data_dir = tmp_path_factory.mktemp("link-data")
    config = server_config(data_dir, demo=False)
    config.checkpoint_poll_seconds = 0.2
    server = RunningServer(config)
    stored, held = family()
    with server.client() as client:
        assert all(ack.accepted for ack in client.ingest("family", stored))
        facts_only = client.lookup("family", head="p1", relation="child_of")
        assert not facts_only.link_predictor  # no predictor yet: stored facts only
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--task",
            "link",
            "--graph",
            "family",
            "--data-dir",
            str(data_dir),
            "--epochs",
            "6",
            "--target",
            server.target,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "| valid |" in result.output and "now serves family with the new checkpoint" in result.output
    assert checkpoint_path(data_dir, "family", "link").exists()
    yield server, data_dir, held
    server.stop()


def test_facts_come_first_then_inferred_triples_with_paths(link_server) -> None:  # noqa: ANN001
    server, _, held = link_server
    missing = held[0]
    with server.client() as client:
        assert client.graph_info("family").link_predictor.startswith("LinkPredictor")
        response = client.lookup("family", head=missing.head, relation="child_of", top_k=5)
    kinds = [t.kind for t in response.triples]
    assert INFERRED in kinds and kinds == sorted(kinds)  # every fact before every inferred triple
    assert response.link_predictor.startswith("LinkPredictor")
    facts = [t for t in response.triples if t.kind == FACT]
    inferred = [t for t in response.triples if t.kind == INFERRED]
    assert len(facts) == response.total_facts or len(facts) == 5
    assert all(f.score == 1.0 for f in facts)
    scores = [t.score for t in inferred]
    assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)
    assert not {t.tail_id for t in inferred} & {t.tail_id for t in facts}  # known facts are not inferred
    assert missing.tail in [t.tail_id for t in inferred[:3]]  # the left-out inverse of a stored parent_of
    top = next(t for t in inferred if t.tail_id == missing.tail)
    assert top.evidence, "an inferred triple comes with the paths that carried its score"
    path = top.evidence[0]
    assert path.hops and abs(sum(p.weight for p in top.evidence) - 1.0) < 1e-4
    assert {h.relation for h in path.hops} <= {"parent_of", "child_of"}


def test_filters_and_patterns(link_server) -> None:  # noqa: ANN001
    server, _, held = link_server
    missing = held[0]
    with server.client() as client:
        only_inferred = client.lookup("family", head=missing.head, relation="child_of", exclude_facts=True)
        only_facts = client.lookup("family", head=missing.head, relation="child_of", facts_only=True)
        confident = client.lookup("family", head=missing.head, relation="child_of", min_score=0.9)
        pair = client.lookup("family", head=missing.head, tail=missing.tail, exclude_facts=True)
        reverse = client.lookup(
            "family", relation="child_of", tail=missing.tail, exclude_facts=True, top_k=10
        )
        everything = client.lookup("family", head=missing.head, exclude_facts=True, top_k=3)
        bare = client.lookup(
            "family", head=missing.head, relation="child_of", exclude_facts=True, no_evidence=True
        )
    assert only_inferred.triples and all(t.kind == INFERRED for t in only_inferred.triples)
    assert all(t.kind == FACT for t in only_facts.triples) and not only_facts.link_predictor
    assert all(t.score >= 0.9 for t in confident.triples if t.kind == INFERRED)
    assert pair.triples[0].relation == "child_of"  # (h, ?, t): relations ranked for the pair
    assert missing.head in [t.head_id for t in reverse.triples]  # (?, r, t) through the inverse relation
    assert [t.tail_id for t in bare.triples] == [t.tail_id for t in only_inferred.triples]
    assert all(not t.evidence for t in bare.triples) and any(t.evidence for t in only_inferred.triples)
    assert len(everything.triples) == 3 and all(t.head_id == missing.head for t in everything.triples)


def test_bad_lookups_name_the_field(link_server) -> None:  # noqa: ANN001
    server, _, _ = link_server
    with server.client() as client:
        error = rpc_error(client.lookup, "family", head="p1", relation="quantum chromodynamics")
        assert error.code() == grpc.StatusCode.NOT_FOUND and "relation" in error.details()
        error = rpc_error(client.lookup, "family", head="nobody at all here", relation="child_of")
        assert error.code() == grpc.StatusCode.NOT_FOUND and "head" in error.details()
        error = rpc_error(client.lookup, "family", head="p1", min_score=1.5)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "min_score" in error.details()
        error = rpc_error(client.lookup, "family", head="p1", exclude_facts=True, facts_only=True)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "facts_only" in error.details()


def eval_link(data_dir: Path, graph: str, test: list[TripleRecord], test_file: Path, *flags: str):  # noqa: ANN201
    """`graphfuse eval --task link` on ``test`` written as TSV to ``test_file``."""
    test_file.write_text("".join(f"{t.head}\t{t.relation}\t{t.tail}\n" for t in test))
    arguments = [
        "eval",
        "--task",
        "link",
        "--graph",
        graph,
        "--data-dir",
        str(data_dir),
        "--test",
        str(test_file),
    ]
    return CliRunner().invoke(main, [*arguments, *flags])


def test_eval_ranks_held_out_triples(link_server, tmp_path: Path) -> None:  # noqa: ANN001
    _, data_dir, held = link_server
    result = eval_link(data_dir, "family", held, tmp_path / "test.tsv", "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)["metrics"]
    assert metrics["queries"] == 2 * len(held)
    assert metrics["mrr"] > 0.5  # a random ranking of 30 people scores about 0.13


def test_eval_without_a_predictor_says_so(link_server, tmp_path: Path) -> None:  # noqa: ANN001
    _, data_dir, held = link_server
    result = eval_link(data_dir, "nothing", held[:1], tmp_path / "test.tsv")
    assert result.exit_code == 1 and "no link predictor" in result.output


def test_concurrent_lookups_share_passes_and_keep_their_answers(link_server) -> None:  # noqa: ANN001
    server, _, held = link_server
    heads = sorted({t.head for t in held})[:8]
    with server.client() as client:
        alone = {h: client.lookup("family", head=h, relation="child_of", exclude_facts=True) for h in heads}
    batcher = server.app.service.link_batcher
    before = (batcher.batches, batcher.items)

    async def together() -> list:
        async with grpc.aio.insecure_channel(server.target) as channel:
            stub = pb_grpc.ReasonerStub(channel)
            requests = [
                pb.LookupRequest(graph="family", head=h, relation="child_of", exclude_facts=True)
                for h in heads
            ]
            return await asyncio.gather(*(stub.Lookup(r, timeout=60) for r in requests))

    responses = asyncio.run(together())
    for h, response in zip(heads, responses, strict=True):
        assert [t.tail_id for t in response.triples] == [t.tail_id for t in alone[h].triples]
    batches, items = batcher.batches - before[0], batcher.items - before[1]
    assert items == len(heads) and batches < items  # some lookups shared a pass


def test_an_ensemble_checkpoint_is_served(tmp_path: Path) -> None:
    from graphfuse.gnn.data.graph import KnowledgeGraph
    from graphfuse.gnn.models.link_predictor import LinkEnsemble, LinkPredictor, LinkPredictorConfig
    from graphfuse.server.core.state import GraphState
    from graphfuse.server.storage.checkpoints import save_checkpoint

    stored, _ = family()
    graph = KnowledgeGraph([], stored)
    config = LinkPredictorConfig(num_relations=graph.num_relations, dim=8, layers=2)
    path = checkpoint_path(tmp_path, "family", "link")
    save_checkpoint(
        path,
        LinkEnsemble([LinkPredictor(config), LinkPredictor(config)]),
        {"description": "two predictors", "relation_ids": graph.relation_ids},
    )
    state = GraphState("family", graph, 4)
    assert state.use_checkpoint(path, "link") and state.link_predictor_name == "two predictors"
    assert isinstance(state.link_predictor.model, LinkEnsemble)
