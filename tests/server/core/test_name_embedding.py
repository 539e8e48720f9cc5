"""Names embedded in the background: a graph answers by ids and exact names before its vectors are ready,
says how far embedding has come, and an Ingest can wait for them."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from graphfuse.gnn.data.records import EntityRecord, TripleRecord
from tests.server.conftest import RunningServer, server_config

DRUGS = ["aspirin", "ibuprofen", "paracetamol", "naproxen"]


@pytest.fixture()
def held(tmp_path: Path) -> Iterator[tuple[RunningServer, threading.Event]]:
    """A server whose background name embedding waits until the returned event is set."""
    server = RunningServer(server_config(tmp_path, demo=False))
    registry = server.app.service.registry
    release = threading.Event()
    embed = registry._embed_names

    async def gated(texts: list[str], piece: int = 0):  # noqa: ANN202
        if asyncio.current_task() is registry._name_embedder:  # the background pass, not relation phrases
            while not release.is_set():
                await asyncio.sleep(0.01)
        return await embed(texts, piece)

    registry._embed_names = gated
    yield server, release
    release.set()
    server.stop()


def test_a_graph_answers_by_exact_names_while_its_names_are_embedded(held) -> None:  # noqa: ANN001
    server, release = held
    records = [TripleRecord(drug, "relieves", "headache") for drug in DRUGS]
    with server.client() as client:
        (ack,) = client.ingest("pharmacy", records)
        assert ack.accepted and ack.names_pending == len(DRUGS) + 1
        info = client.graph_info("pharmacy")
        assert (info.names_embedded, info.names_total) == (0, len(DRUGS) + 1)
        answer = client.ask("what does naproxen relieve?", graph="pharmacy")
        assert answer.answers[0].entity_id == "headache"  # linked by its exact name, phrases matched

        release.set()
        (ack,) = client.ingest("pharmacy", [EntityRecord("naproxen", "naproxen sodium")], wait_for_names=True)
        assert ack.accepted and ack.names_pending == 0
        info = client.graph_info("pharmacy")
        assert info.names_embedded == info.names_total == len(DRUGS) + 1


def test_a_restarted_server_serves_before_its_names_are_embedded(tmp_path: Path) -> None:
    first = RunningServer(server_config(tmp_path, demo=False))
    with first.client() as client:
        acks = client.ingest("pharmacy", [TripleRecord(d, "relieves", "headache") for d in DRUGS])
        assert all(a.accepted for a in acks)
    first.stop()

    second = RunningServer(server_config(tmp_path, demo=False), start_service=False)
    second.app.service.registry._embed_queued_names = _never  # names stay queued
    second._run(second.app.start())
    try:
        with second.client() as client:
            info = client.graph_info("pharmacy")
            assert (info.names_embedded, info.names_total) == (0, len(DRUGS) + 1)
            answer = client.ask("what does ibuprofen relieve?", graph="pharmacy")
            assert answer.answers[0].entity_id == "headache"
    finally:
        second.stop()


async def _never() -> None:
    await asyncio.Event().wait()


def test_an_ingest_returns_with_the_relations_it_grew_phrased_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("graphfuse.server.core.state.OUTGROWN_QUIET_S", 3600.0)  # no background pass
    server = RunningServer(server_config(tmp_path, demo=False))
    try:
        with server.client() as client:
            list(client.ingest("pharmacy", [TripleRecord("aspirin", "relieves", "headache")]))
            later = [TripleRecord(drug, "relieves", "fever") for drug in DRUGS]
            acks = list(client.ingest("pharmacy", later, chunk_size=1))  # chunks do not wait for them
            assert all(ack.accepted for ack in acks)
            state = server.app.service.registry.graphs["pharmacy"]
            assert not state.phrases_outgrown  # the stream's end did
            assert "fever" in state.relation_words(1)[0][1].forward_answers
    finally:
        server.stop()


def test_updates_from_a_stream_phrase_grown_relations_again_once_they_pause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("graphfuse.server.core.state.OUTGROWN_QUIET_S", 0.2)
    server = RunningServer(server_config(tmp_path, demo=False))
    try:
        with server.client() as client:
            list(client.ingest("pharmacy", [TripleRecord("aspirin", "relieves", "headache")]))
        registry = server.app.service.registry
        state = registry.graphs["pharmacy"]
        for drug in DRUGS:  # as a Kafka or NATS consumer applies them: no stream end
            server._run(registry.write_and_apply("pharmacy", [TripleRecord(drug, "relieves", "fever")]))
        assert state.phrases_outgrown
        for _ in range(200):
            if not state.phrases_outgrown and "fever" in state.relation_words(1)[0][1].forward_answers:
                break
            time.sleep(0.05)
        assert "fever" in state.relation_words(1)[0][1].forward_answers
    finally:
        server.stop()
