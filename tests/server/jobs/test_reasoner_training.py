"""`graphfuse train` and `graphfuse eval` against a running server, which picks up the checkpoint live."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.data.records import TripleRecord
from graphfuse.gnn.formats.datasets import load_qa_file
from graphfuse.gnn.training.generated_questions import generate_questions
from graphfuse.gnn.training.question_reasoner import TrainConfig
from graphfuse.server.cli.commands import main
from graphfuse.server.jobs import reasoner_training as training
from graphfuse.server.storage.checkpoints import checkpoint_path, load_checkpoint
from tests.server.conftest import RunningServer, server_config


def world() -> list[TripleRecord]:
    rng = random.Random(0)
    triples = []
    for m in range(30):
        for a in rng.sample(range(20), 2):
            triples.append(TripleRecord(f"film {m}", "starred_actors", f"actor {a}"))
        triples.append(TripleRecord(f"film {m}", "directed_by", f"director {rng.randrange(8)}"))
    for d in range(8):
        triples.append(TripleRecord(f"director {d}", "born_in", f"city {rng.randrange(4)}"))
    return triples


@pytest.fixture(scope="module")
def trained_server(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    data_dir = tmp_path_factory.mktemp("train-data")
    config = server_config(data_dir, demo=False)
    config.checkpoint_poll_seconds = 0.2
    server = RunningServer(config)
    with server.client() as client:
        assert all(ack.accepted for ack in client.ingest("world", world()))
    yield server, data_dir
    server.stop()


def write_questions(path: Path, count: int, seed: int) -> None:
    graph = KnowledgeGraph([], world())
    with path.open("w") as file:
        for hops in (1, 2):
            for q in generate_questions(graph, count, hops, seed=seed + hops):
                file.write(
                    json.dumps(
                        {
                            "question": q.question,
                            "answers": list(q.answers),
                            "topic_entities": [q.topic],
                            "hops": hops,
                        }
                    )
                    + "\n"
                )


def test_train_then_the_running_server_answers_with_the_checkpoint(trained_server, tmp_path: Path) -> None:  # noqa: ANN001
    server, data_dir = trained_server
    with server.client() as client:
        assert client.graph_info("world").reasoner == "zero-shot"
    questions = tmp_path / "qa.jsonl"
    write_questions(questions, 40, seed=0)
    assert len(load_qa_file(questions)) == 80

    result = CliRunner().invoke(
        main,
        [
            "train",
            "--graph",
            "world",
            "--data-dir",
            str(data_dir),
            "--questions",
            str(questions),
            "--generated",
            "40",
            "--epochs",
            "4",
            "--holdout",
            "0.25",
            "--target",
            server.target,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "held-out (20 questions)" in result.output and "| 1 |" in result.output
    assert "now serves world with the new checkpoint" in result.output
    assert checkpoint_path(data_dir, "world").exists()
    # the model reads questions with "[MASK]" where the topic stood, and the server writes it there too
    assert load_checkpoint(checkpoint_path(data_dir, "world"))[0].config.topic_placeholder == "[MASK]"

    with server.client() as client:
        info = client.graph_info("world")
        assert info.reasoner.startswith("trained: QuestionReasoner on")
        response = client.ask("what does film 3 directed by?", graph="world", top_k=3)
        assert response.answers and 0.0 < response.answers[0].score <= 1.0
        assert response.answers[0].evidence and response.answers[0].evidence[0].hops

    evaluated = CliRunner().invoke(
        main,
        [
            "eval",
            "--graph",
            "world",
            "--questions",
            str(questions),
            "--json",
            "--misses",
            str(data_dir / "misses.jsonl"),
            "--target",
            server.target,
        ],
    )
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(evaluated.output)
    assert report["metrics"]["all"]["questions"] == 80
    assert 0.0 <= report["metrics"]["1"]["hits_at_1"] <= 1.0
    misses = [json.loads(line) for line in (data_dir / "misses.jsonl").read_text().splitlines()]
    hits = report["metrics"]["all"]["hits_at_1"]
    assert len(misses) == round(80 * (1 - hits))  # exactly the questions Hits@1 counts as wrong
    for miss in misses:
        top = miss.get("top") or [[None]]  # no answers, or an "error"
        assert miss["gold"] and top[0][0] not in miss["gold"]

    checkpoint_path(data_dir, "world").unlink()
    with server.client() as client:
        for _ in range(50):
            if client.graph_info("world").reasoner == "zero-shot":
                break
            time.sleep(0.1)
        assert client.graph_info("world").reasoner == "zero-shot"


def test_train_needs_questions_or_generation(trained_server) -> None:  # noqa: ANN001
    _, data_dir = trained_server
    result = CliRunner().invoke(main, ["train", "--graph", "world", "--data-dir", str(data_dir)])
    assert result.exit_code == 2 and "--questions" in result.output


def test_a_broken_checkpoint_keeps_the_current_reasoner(trained_server) -> None:  # noqa: ANN001
    server, data_dir = trained_server
    path = checkpoint_path(data_dir, "world")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not a checkpoint")
    try:
        time.sleep(0.6)
        with server.client() as client:
            assert client.graph_info("world").reasoner == "zero-shot"
            assert client.ask("what does film 1 directed by?", graph="world").answers
    finally:
        path.unlink()


def test_trained_on_generated_questions_alone_the_reasoner_also_reads_the_zero_shot_answers(
    trained_server,  # noqa: ANN001
) -> None:
    server, data_dir = trained_server
    arguments = [
        "train",
        "--graph",
        "world",
        "--data-dir",
        str(data_dir),
        "--generated",
        "40",
        "--keep-always",
    ]
    result = CliRunner().invoke(main, [*arguments, "--epochs", "2", "--target", server.target])
    assert result.exit_code == 0, result.output
    model, _ = load_checkpoint(checkpoint_path(data_dir, "world"))
    assert model.answer_head is not None and model.answer_head.config.zero_shot
    try:
        with server.client() as client:
            response = client.ask("what does film 3 directed by?", graph="world", top_k=3)
            assert response.answers and all(0.0 < a.score <= 1.0 for a in response.answers)
    finally:
        checkpoint_path(data_dir, "world").unlink()


def test_trained_from_the_graph_alone_a_reasoner_is_kept_only_if_it_beats_zero_shot(
    trained_server,  # noqa: ANN001
) -> None:
    _, data_dir = trained_server
    checkpoint_path(data_dir, "world").unlink(missing_ok=True)
    arguments = ["train", "--graph", "world", "--data-dir", str(data_dir), "--generated", "20"]
    result = CliRunner().invoke(main, [*arguments, "--epochs", "1", "--unseen", "10"])
    assert result.exit_code == 0, result.output
    assert "unseen phrasings, Hits@1 (trained / zero-shot)" in result.output  # compared without being asked
    kept = checkpoint_path(data_dir, "world").exists()
    assert kept != ("checkpoint not written" in result.output)
    checkpoint_path(data_dir, "world").unlink(missing_ok=True)


def test_the_demo_graph_gets_a_reasoner_when_it_has_none(tmp_path: Path) -> None:
    config = server_config(tmp_path, demo=True)
    config.train_demo, config.demo_questions, config.demo_check_questions = True, 40, 30
    config.checkpoint_poll_seconds = 0.2
    server = RunningServer(config)
    try:
        training = server.app.jobs.demo_training
        deadline = time.monotonic() + 240
        while not training.done() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert training.done() and training.exception() is None
        path = checkpoint_path(tmp_path, "umls")
        declined = path.with_suffix(".zero-shot.json")
        assert path.exists() != declined.exists()  # one decision, written down
        with server.client() as client:
            for _ in range(50):
                reasoner = client.graph_info("umls").reasoner
                if reasoner.startswith("trained") == path.exists():
                    break
                time.sleep(0.2)
        assert reasoner.startswith("trained: QuestionReasoner") if path.exists() else reasoner == "zero-shot"
        decision = path.stat().st_mtime if path.exists() else declined.stat().st_mtime
        server._run(server.app.jobs._train_demo())  # a restart finds the decision and does not train
        assert (path.stat().st_mtime if path.exists() else declined.stat().st_mtime) == decision
    finally:
        server.stop()


def test_keep_if_better_writes_no_checkpoint_that_trails_zero_shot(trained_server, monkeypatch) -> None:  # noqa: ANN001
    _, data_dir = trained_server
    means = iter([0.5, 0.9])  # the trained reasoner's mean Hits@1 on unseen phrasings, then zero-shot's
    monkeypatch.setattr(training, "mean_hits_at_1", lambda metrics: next(means))
    placeholders = []  # what each call to generated_rows wrote in the topic's place
    generated_rows = training.generated_rows

    def recording(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        placeholders.append(kwargs["placeholder"])
        return generated_rows(*args, **kwargs)

    monkeypatch.setattr(training, "generated_rows", recording)
    report = training.train_graph(
        data_dir,
        "world",
        [],
        holdout=0.0,
        generated_per_hop=20,
        unseen_per_hop=10,
        keep_if_better=True,
        train_config=TrainConfig(epochs=1),
    )
    assert not report.written and not checkpoint_path(data_dir, "world").exists()
    assert report.unseen is not None and report.unseen_zero_shot is not None
    assert {"1", "2", "3"} <= set(report.unseen) and report.unseen["1"].questions > 0
    # training and the trained reasoner's check read "[MASK]" for the topic; zero-shot's check drops it
    assert placeholders == ["[MASK]", "[MASK]", ""]


def test_several_seeds_keep_the_reasoner_with_the_best_held_out_hits(
    trained_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    _, data_dir = trained_server
    questions = tmp_path / "qa.jsonl"
    write_questions(questions, 20, seed=3)
    trained = []

    def train_and_keep(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        trained.append(training_reasoner(*args, **kwargs))
        return trained[-1]

    training_reasoner = training.train_question_reasoner
    monkeypatch.setattr(training, "train_question_reasoner", train_and_keep)
    scores = iter([0.4, 0.7, 0.5])  # each seed's mean held-out Hits@1: the second is the best
    monkeypatch.setattr(training, "mean_hits_at_1", lambda metrics: next(scores))
    steps = []
    try:
        report = training.train_graph(
            data_dir,
            "world",
            load_qa_file(questions),
            holdout=0.25,
            seeds=3,
            train_config=TrainConfig(epochs=1, seed=5),
            on_step=lambda step, total, loss: steps.append((step, total)),
        )
        assert report.seed_scores == [(5, 0.4), (6, 0.7), (7, 0.5)]
        assert len(trained) == 3
        model, meta = load_checkpoint(checkpoint_path(data_dir, "world"))
        assert meta["seed"] == 6 and "(seed 6, the best of 3)" in meta["description"]
        for name, weight in trained[1].state_dict().items():
            assert torch.equal(model.state_dict()[name], weight), name
        assert [s for s, _ in steps] == list(range(1, len(steps) + 1))  # one count across the seeds
        assert {total for _, total in steps} == {len(steps)}
        with pytest.raises(ValueError, match="held-out"):
            training.train_graph(data_dir, "world", load_qa_file(questions), holdout=0.0, seeds=2)
    finally:
        checkpoint_path(data_dir, "world").unlink(missing_ok=True)
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--graph",
            "world",
            "--data-dir",
            str(data_dir),
            "--generated",
            "5",
            "--seeds",
            "2",
            "--holdout",
            "0",
        ],
    )
    assert result.exit_code == 2 and "--holdout" in result.output
