"""Recommendation lookups over the real server: an adjacency file ingested by the CLI, `graphfuse train|eval
--task recommend`, Lookup(head = a user, relation = the interaction relation), node types, freshness."""

from __future__ import annotations

import asyncio
import json
import random
import time
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner

from graphfuse.gnn.data.records import EntityRecord, TripleRecord
from graphfuse.server.cli.commands import main
from graphfuse.server.client import AsyncClient
from tests.server.conftest import RunningServer, server_config
from tests.server.test_server import rpc_error

INFERRED = 2
RELATION = "interacted_with"


ADJECTIVES = "blue golden quiet little old green red silver sunny misty".split()


def item_name(item: int, items: int = 40) -> str:
    """Names that tell the communities apart, as a catalog's would: coffee places, then mountain trails."""
    kind = "coffee roasters" if item < items // 2 else "mountain trail"
    return f"{ADJECTIVES[item % len(ADJECTIVES)].title()} {kind} {item}"


def two_communities(users: int = 60, items: int = 40, seed: int = 0) -> tuple[str, str]:
    """Adjacency lists ``user item item ...``: the first half of the users interact mostly with the first half
    of the items, the others with the rest; returns (stored lines, held-out lines)."""
    rng = random.Random(seed)
    stored, held = [], []
    for user in range(users):
        mine = range(items // 2) if user < users // 2 else range(items // 2, items)
        chosen = rng.sample(list(mine), 8) + [rng.randrange(items)]
        stored.append(" ".join(map(str, [user, *sorted(set(chosen[1:]))])))
        held.append(f"{user} {chosen[0]}")
    return "\n".join(stored) + "\n", "\n".join(held) + "\n"


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    data_dir = tmp_path_factory.mktemp("recommend-data")
    stored, held = two_communities()
    (data_dir / "train.txt").write_text(stored)
    (data_dir / "valid.txt").write_text(held)
    config = server_config(data_dir, demo=False)
    config.checkpoint_poll_seconds = 0.2
    config.recommend_refresh_seconds = 0.3
    config.recommend_auto = False  # fitted by `graphfuse train` below
    server = RunningServer(config)
    runner = CliRunner()
    ingested = runner.invoke(
        main, ["ingest", str(data_dir / "train.txt"), "--graph", "shop", "--target", server.target]
    )
    assert ingested.exit_code == 0, ingested.output
    with server.client() as client:
        names = [EntityRecord(f"item:{i}", item_name(i)) for i in range(40)]
        assert all(a.accepted for a in client.ingest("shop", names, wait_for_names=True))
        before = client.lookup("shop", head="user:0", relation=RELATION, top_k=5)
        assert not before.link_predictor and all(t.kind != INFERRED for t in before.triples)
    trained = runner.invoke(
        main,
        [
            "train",
            "--task",
            "recommend",
            "--graph",
            "shop",
            "--data-dir",
            str(data_dir),
            "--target",
            server.target,
        ],
    )
    assert trained.exit_code == 0, trained.output
    assert "| held-out |" in trained.output and "now serves shop with the new checkpoint" in trained.output
    assert "cold items ranked by name |" in trained.output
    yield server, data_dir
    server.stop()


def _known(client, user: str) -> set[str]:  # noqa: ANN001
    facts = client.lookup("shop", head=user, relation=RELATION, top_k=100, facts_only=True)
    return {t.tail_id for t in facts.triples}


def test_a_user_is_recommended_new_items_of_their_community(shop) -> None:  # noqa: ANN001
    server, _ = shop
    with server.client() as client:
        assert client.graph_info("shop").recommender.startswith("GraphFilterRecommender on interacted_with")
        response = client.lookup("shop", head="user:3", relation=RELATION, top_k=10)
        known = _known(client, "user:3")
    tails = [t.tail_id for t in response.triples]
    assert len(tails) == 10 and all(t.kind == INFERRED for t in response.triples)  # known items left out
    assert all(tail.startswith("item:") for tail in tails) and not set(tails) & known
    community = sum(int(tail.split(":")[1]) < 20 for tail in tails[:5])
    assert community >= 4, tails  # user 3 interacts with items 0-19
    scores = [t.score for t in response.triples]
    assert scores == sorted(scores, reverse=True) and all(0.0 < s < 1.0 for s in scores)
    assert response.link_predictor.startswith("GraphFilterRecommender")


def test_evidence_is_co_interaction_paths(shop) -> None:  # noqa: ANN001
    server, _ = shop
    with server.client() as client:
        top = client.lookup("shop", head="user:3", relation=RELATION, top_k=1).triples[0]
        known = _known(client, "user:3")
    assert top.evidence
    for path in top.evidence:
        first, second, third = path.hops
        assert (
            first.head_id == "user:3" and first.tail_id in known and not first.reversed
        )  # user -> known item
        assert second.reversed and second.tail_id == first.tail_id  # known item <- other user
        assert third.head_id == second.head_id != "user:3" and third.tail_id == top.tail_id  # other -> item
    assert 0.0 < sum(p.weight for p in top.evidence) <= 1.0 + 1e-6


def test_plain_user_numbers_resolve_and_known_items_are_facts_on_request(shop) -> None:  # noqa: ANN001
    server, _ = shop
    with server.client() as client:
        by_number = client.lookup("shop", head="7", relation=RELATION, top_k=3)
        by_id = client.lookup("shop", head="user:7", relation=RELATION, top_k=3)
        no_relation = client.lookup("shop", head="user:7", top_k=3)  # a user's lookup: recommendations
        facts = client.lookup("shop", head="user:7", relation=RELATION, top_k=50, facts_only=True)
    assert [t.tail_id for t in by_number.triples] == [t.tail_id for t in by_id.triples]
    assert [t.tail_id for t in no_relation.triples] == [t.tail_id for t in by_id.triples]
    assert facts.triples and all(t.kind != INFERRED for t in facts.triples)


def test_an_item_as_head_is_refused_with_its_type(shop) -> None:  # noqa: ANN001
    server, _ = shop
    with server.client() as client:
        error = rpc_error(client.lookup, "shop", head="item:3", relation=RELATION)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "head 'item:3' is a item entity" in error.details() and "to user entities" in error.details()


def test_a_new_interaction_changes_that_users_recommendations_at_once(shop) -> None:  # noqa: ANN001
    server, _ = shop
    with server.client() as client:
        before = [
            t.tail_id for t in client.lookup("shop", head="user:40", relation=RELATION, top_k=10).triples
        ]
        acks = client.ingest("shop", [TripleRecord("user:40", RELATION, before[0])])
        assert all(a.accepted for a in acks)
        after = [
            t.tail_id for t in client.lookup("shop", head="user:40", relation=RELATION, top_k=10).triples
        ]
        assert before[0] not in after and after != before[1:]  # now known, and its neighbours moved up
        # a user the model never saw is recommended from their own interactions
        new = [EntityRecord("user:999", type="user")] + [
            TripleRecord("user:999", RELATION, f"item:{i}") for i in (20, 21, 22)
        ]
        assert all(a.accepted for a in client.ingest("shop", new))
        fresh = client.lookup("shop", head="user:999", relation=RELATION, top_k=5).triples
    assert fresh and sum(int(t.tail_id.split(":")[1]) >= 20 for t in fresh) >= 4


def test_a_named_item_without_interactions_is_recommended_by_its_name(shop) -> None:  # noqa: ANN001
    server, _ = shop
    with server.client() as client:
        new = [EntityRecord("item:200", "Misty coffee roasters downtown", type="item")]
        assert all(a.accepted for a in client.ingest("shop", new, wait_for_names=True))
        coffee = client.lookup("shop", head="user:5", relation=RELATION, top_k=20).triples
        trails = client.lookup("shop", head="user:45", relation=RELATION, top_k=20).triples
    cold = [t for t in coffee if t.tail_id == "item:200"]
    assert cold, [t.tail_id for t in coffee]  # user 5 goes to coffee places
    (path,) = cold[0].evidence  # the user's item whose name is most like it
    assert path.hops[0].head_id == "user:5" and "coffee roasters" in path.hops[0].tail_name
    cold_rank = (
        [t.tail_id for t in trails].index("item:200") if "item:200" in [t.tail_id for t in trails] else 99
    )
    assert cold_rank > [t.tail_id for t in coffee].index("item:200")  # a hiker is less likely to go


def test_global_structures_are_refreshed_in_the_background(shop) -> None:  # noqa: ANN001
    server, _ = shop
    new_item = [EntityRecord("item:100", "Blue Bottle Coffee", type="item")]
    likes = [TripleRecord(f"user:{u}", RELATION, "item:100") for u in range(12)]
    with server.client() as client:
        assert all(a.accepted for a in client.ingest("shop", new_item + likes, wait_for_names=True))
        deadline = time.monotonic() + 60
        while True:  # an earlier test's refit may finish first: wait for the one that sees these likes
            found = client.lookup("shop", head="user:14", relation=RELATION, top_k=40).triples
            (new,) = [t for t in found if t.tail_id == "item:100"]
            if new.evidence and all(len(p.hops) == 3 for p in new.evidence):  # scored by co-interactions
                break
            assert time.monotonic() < deadline, "the recommender was not refitted with the new item"
            time.sleep(0.2)
        assert "refreshed" in client.graph_info("shop").recommender


def test_eval_prints_recall_and_ndcg_of_held_out_interactions(shop) -> None:  # noqa: ANN001
    _, data_dir = shop
    result = CliRunner().invoke(
        main,
        [
            "eval",
            "--task",
            "recommend",
            "--graph",
            "shop",
            "--data-dir",
            str(data_dir),
            "--test",
            str(data_dir / "valid.txt"),
            "--k",
            "10",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["metrics"]["users"] > 0 and report["metrics"]["k"] == 10
    assert 0.3 < report["metrics"]["recall"] <= 1.0  # held-out items are mostly of the user's community


def test_train_refuses_a_graph_without_typed_interactions(tmp_path: Path) -> None:
    server = RunningServer(server_config(tmp_path, demo=False))
    try:
        with server.client() as client:
            assert all(a.accepted for a in client.ingest("plain", [TripleRecord("a", "likes", "b")]))
    finally:
        server.stop()
    result = CliRunner().invoke(
        main, ["train", "--task", "recommend", "--graph", "plain", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code != 0 and "needs typed ends" in result.output


def test_an_interaction_graph_without_a_recommender_gets_one_fitted_in_the_background(tmp_path: Path) -> None:
    config = server_config(tmp_path, demo=False)
    config.checkpoint_poll_seconds = 0.2
    config.recommend_refresh_seconds = 0.3
    server = RunningServer(config)
    stored, _ = two_communities()
    interactions = [
        TripleRecord(f"user:{user}", RELATION, f"item:{item}")
        for line in stored.splitlines()
        for user, *items in [line.split()]
        for item in items
    ]
    typed = [EntityRecord(f"user:{u}", type="user") for u in range(60)]
    typed += [EntityRecord(f"item:{i}", type="item") for i in range(40)]
    try:
        with server.client() as client:
            assert all(a.accepted for a in client.ingest("auto", typed + interactions))
            assert all(
                a.accepted
                for a in client.ingest("kg", [TripleRecord("a", "r", "b"), TripleRecord("b", "s", "c")])
            )
            deadline = time.monotonic() + 60
            while not client.graph_info("auto").recommender:
                assert time.monotonic() < deadline, "no recommender was fitted"
                time.sleep(0.2)
            found = client.lookup("auto", head="user:3", relation=RELATION, top_k=5).triples
            assert found and all(t.kind == INFERRED for t in found)
            assert not client.graph_info("kg").recommender  # not an interaction graph: left alone
    finally:
        server.stop()


def test_concurrent_recommendations_share_wide_passes_and_keep_their_answers(shop) -> None:  # noqa: ANN001
    """Recommendation lookups have a batcher of their own, wider than link prediction's 16: 40 concurrent
    callers get the lists they get alone, and share passes."""
    server, _ = shop
    users = [f"user:{u}" for u in range(40)]
    with server.client() as client:
        alone = {
            u: client.lookup("shop", head=u, relation=RELATION, top_k=5, no_evidence=True) for u in users
        }
    service = server.app.service
    batcher, links = service.recommend_batcher, service.link_batcher
    before = (batcher.batches, batcher.items, links.items)
    assert batcher.max_batch == 256 > links.max_batch

    async def together() -> list:
        async with AsyncClient(server.target, timeout=60) as client:
            return await asyncio.gather(
                *(client.lookup("shop", head=u, relation=RELATION, top_k=5, no_evidence=True) for u in users)
            )

    for user, response in zip(users, asyncio.run(together()), strict=True):
        assert [t.tail_id for t in response.triples] == [t.tail_id for t in alone[user].triples]
    batches, items = batcher.batches - before[0], batcher.items - before[1]
    assert items == len(users) and links.items == before[2]  # every one went to the recommender's batcher
    assert batches < items  # some shared a pass
