"""The Flink job (flink/facts_job.py) end to end: raw events on a Kafka topic in, facts visible through
Lookup and Ask out, with a Kafka-protocol broker (Tansu) and a graphfuse server applying the job's topic."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.helpers.kafka_broker import start_or_skip
from tests.server.conftest import RunningServer, server_config
from tests.server.replication.test_stream import eventually

ROOT = Path(__file__).resolve().parents[2]
FLINK_PYTHON = ROOT / ".flink-venv" / "bin" / "python"
JOB = ROOT / "flink" / "facts_job.py"


def missing_piece() -> str | None:
    if not FLINK_PYTHON.exists() or not (ROOT / "flink" / "lib" / "flink-connector-kafka.jar").exists():
        return "needs the Flink environment: run flink/setup.sh"
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return "needs Java 17 (Debian package 'openjdk-17-jre-headless')"
    return None


@pytest.fixture()
def flink_job() -> Iterator[str]:
    """The job running against a fresh broker; yields the broker's bootstrap address."""
    missing = missing_piece()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{missing} (CI sets it up in .ci/run)")
        pytest.skip(missing)
    broker = start_or_skip()
    create_topic(broker.bootstrap, "events")  # before the job's source looks for its partitions
    command = [str(FLINK_PYTHON), str(JOB), "--bootstrap", broker.bootstrap]
    command += ["--source-topic", "events", "--graph", "shop"]
    job = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    yield broker.bootstrap
    job.terminate()
    try:
        job.wait(timeout=30)
    except subprocess.TimeoutExpired:
        job.kill()
    broker.stop()


def create_topic(bootstrap: str, topic: str) -> None:
    import asyncio

    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    async def run() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, 1, 1)])
        finally:
            await admin.close()

    asyncio.run(run())


def send_events(bootstrap: str, events: list[object]) -> None:
    import asyncio

    from aiokafka import AIOKafkaProducer

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            for event in events:
                body = event if isinstance(event, str) else json.dumps(event)
                await producer.send_and_wait("events", body.encode())
        finally:
            await producer.stop()

    asyncio.run(run())


def test_raw_events_become_facts_through_the_flink_job(tmp_path: Path, flink_job: str) -> None:
    config = server_config(tmp_path / "data", demo=False)
    config.kafka_bootstrap = flink_job
    server = RunningServer(config)
    try:
        with server.client() as client:
            client.create_graph("shop")
            client.create_graph("pharma")
            send_events(
                flink_job,
                [
                    {"user": " alice ", "item": "book  1", "action": "Bought", "time": 1},
                    {"user": "alice", "item": "book 1", "action": "bought", "time": 2},  # the same fact
                    {"user": "bob", "item": "book 2", "action": "added to cart", "time": 3},
                    {"subject": "aspirin", "predicate": "treats", "object": "headache", "graph": "pharma"},
                    "not an event",
                    {"user": "carol", "action": "bought"},  # no item
                ],
            )

            def shop_facts() -> set[tuple[str, str, str]]:
                found: set[tuple[str, str, str]] = set()
                for user in ("alice", "bob"):
                    try:
                        triples = client.lookup("shop", head=user, facts_only=True).triples
                    except grpc.RpcError as error:  # the user is not in the graph yet
                        assert error.code() == grpc.StatusCode.NOT_FOUND
                        continue
                    found |= {(t.head_id, t.relation, t.tail_id) for t in triples}
                return found

            eventually(lambda: len(shop_facts()) == 2, seconds=120)
            assert shop_facts() == {("alice", "bought", "book 1"), ("bob", "added_to_cart", "book 2")}
            eventually(lambda: client.lookup("pharma", head="aspirin", relation="treats").total_facts == 1)
            answers = client.ask("what did alice buy", graph="shop", topic_entities=["alice"]).answers
            assert answers[0].entity_id == "book 1"

            send_events(
                flink_job, [{"user": "bob", "item": "book 2", "action": "added to cart", "retract": True}]
            )
            eventually(lambda: shop_facts() == {("alice", "bought", "book 1")}, seconds=60)
            assert sum(c.dead_letters for c in server.app.kafka.consumers) == 0
    finally:
        server.stop()
