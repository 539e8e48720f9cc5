"""Graph updates from a Kafka topic, against a Kafka-protocol broker (Tansu) started on a free port."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from prometheus_client import generate_latest

from graphfuse.gnn.data.records import Retraction, TripleRecord
from graphfuse.server.cli import main
from graphfuse.server.replication.kafka import partition_of
from graphfuse.server.replication.stream import BATCH_HEADER, CREATE_GRAPH_HEADER, batch_bodies
from graphfuse.v1 import graphfuse_pb2 as pb
from tests.helpers.kafka_broker import start_or_skip
from tests.helpers.nats_servers import free_port
from tests.server.conftest import RunningServer, server_config
from tests.server.replication.test_stream import eventually, triple_json

TOPIC = "graphfuse.updates"


@pytest.fixture()
def kafka() -> Iterator[str]:
    broker = start_or_skip()
    yield broker.bootstrap
    broker.stop()


def kafka_server(data_dir: Path, bootstrap: str, partitions: int = 2) -> RunningServer:
    config = server_config(data_dir, demo=False)
    config.kafka_bootstrap, config.kafka_partitions = bootstrap, partitions
    return RunningServer(config)


def produce(bootstrap: str, messages: list[tuple[str | None, bytes, dict[str, str] | None]]) -> list[int]:
    """Send ``(key, value, headers)`` messages to the update topic in order (asserting that the producer's
    partitioner put each keyed one where :func:`partition_of` says); each one's position (offset + 1)."""
    from aiokafka import AIOKafkaProducer

    async def run() -> list[int]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            positions = []
            for key, value, headers in messages:
                pairs = [(k, v.encode()) for k, v in (headers or {}).items()]
                written = await producer.send_and_wait(
                    TOPIC, value, key=key.encode() if key is not None else None, headers=pairs
                )
                if key is not None:
                    assert written.partition == partition_of(key, len(await producer.partitions_for(TOPIC)))
                positions.append(written.offset + 1)
            return positions
        finally:
            await producer.stop()

    return asyncio.run(run())


def dead_letters(bootstrap: str, expected: int) -> list:
    """The first ``expected`` messages of the dead-letter topic (all partitions), in offset order."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def run() -> list:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
        await consumer.start()
        try:
            parts = [
                TopicPartition(f"{TOPIC}.deadletter", p)
                for p in consumer.partitions_for_topic(f"{TOPIC}.deadletter")
            ]
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            found: list = []
            for _ in range(50):
                for messages in (await consumer.getmany(timeout_ms=200)).values():
                    found.extend(messages)
                if len(found) >= expected:
                    break
            return sorted(found, key=lambda m: (m.partition, m.offset))
        finally:
            await consumer.stop()

    return asyncio.run(run())


def test_updates_apply_in_order_per_graph_and_bad_ones_are_dead_lettered(tmp_path: Path, kafka: str) -> None:
    server = kafka_server(tmp_path / "data", kafka)
    try:
        with server.client() as client:
            client.create_graph("med")  # through the topic
            batch = batch_bodies([TripleRecord("gene_1", "binds", "drug_a")], 10, 1 << 20)[0]
            positions = produce(
                kafka,
                [
                    ("bio", b"", {CREATE_GRAPH_HEADER: "1"}),
                    (
                        "med",
                        pb.Record(
                            triple=pb.Triple(head="drug_a", relation="treats", tail="cough")
                        ).SerializeToString(),
                        None,
                    ),
                    ("med", triple_json("drug_a", "treats", "fever"), None),
                    ("bio", batch, {BATCH_HEADER: "1"}),
                    ("med", b"\xff\x00 not a record", None),
                    ("nope", triple_json("a", "r", "b"), None),
                    (None, triple_json("a", "r", "b"), None),
                    ("med", b"{}", None),
                    ("med", triple_json("drug_a", "treats", "fever", "removeTriple"), None),
                    ("med", triple_json("drug_b", "treats", "flu"), None),
                ],
            )
            last = positions[-1]
            facts = client.lookup("med", relation="treats", min_sequence=last).triples
            assert {(t.head_id, t.tail_id) for t in facts} == {("drug_a", "cough"), ("drug_b", "flu")}
            eventually(lambda: client.lookup("bio", relation="binds").total_facts == 1)
            letters = dead_letters(kafka, 4)
            reasons = [
                (m.key.decode() if m.key else "", dict(m.headers)["Graphfuse-Reason"].decode())
                for m in letters
            ]
            assert len(letters) == 4 and sum(c.dead_letters for c in server.app.kafka.consumers) == 4
            med = sorted(reason for key, reason in reasons if key == "med")
            assert len(med) == 2 and "not a protobuf graphfuse.v1.Record" in med[0]
            assert med[1].startswith("the record is empty")
            assert ("nope", "graph 'nope' not found") in reasons
            assert any(key == "_" and "names no graph" in reason for key, reason in reasons)
            for message in letters:
                headers = {k: v.decode() for k, v in message.headers}
                assert headers["Graphfuse-Topic"] == TOPIC and int(headers["Graphfuse-Offset"]) >= 0
            store = server.app.service.store
            for source, consumer in zip(server.app.kafka.sources, server.app.kafka.consumers, strict=True):
                eventually(lambda c=consumer, s=source: c.applied == s.highwater)
                assert store.stream_position(source.name) == consumer.applied
    finally:
        server.stop()


def test_a_failed_commit_applies_nothing_and_the_restart_applies_each_message_once(
    tmp_path: Path, kafka: str
) -> None:
    server = kafka_server(tmp_path / "data", kafka, partitions=1)
    try:
        applied: list[tuple[list, tuple]] = []
        original = server.app.service.write_and_apply
        failures = [1]

        async def failing_once(graph, records, position=None):  # noqa: ANN001, ANN202
            if position is not None and failures:
                failures.pop()
                raise OSError("disk gone (before the commit)")
            result = await original(graph, records, position)
            if position is not None:
                applied.append(([r.head for r in records], position))
            return result

        for consumer in server.app.kafka.consumers:
            consumer.service.write_and_apply = failing_once
        with server.client() as client:
            client.create_graph("med")
            produce(kafka, [("med", triple_json(f"drug_{i}", "treats", "cough"), None) for i in range(5)])
            facts = client.lookup("med", relation="treats", min_sequence=6)  # the graph's message and 5 more
            assert facts.total_facts == 5
        metrics = generate_latest(server.app.metrics.registry).decode()
        source = 'source="kafka:graphfuse.updates:0"'
        assert f"graphfuse_updates_applied_records_total{{{source}}} 5.0" in metrics
        assert f"graphfuse_updates_lag{{{source}}} 0.0" in metrics
        assert f"graphfuse_updates_position{{{source}}} 6.0" in metrics
        heads = [h for records, _ in applied for h in records]
        assert heads == [f"drug_{i}" for i in range(5)]  # each once, in order, after the failed attempt
        assert applied[-1][1] == ("kafka:graphfuse.updates:0", 6)
    finally:
        server.stop()


def test_restart_resumes_from_the_stored_offsets(tmp_path: Path, kafka: str) -> None:
    data = tmp_path / "data"
    server = kafka_server(data, kafka)
    try:
        with server.client() as client:
            client.create_graph("med")
            (ack,) = client.ingest(
                "med", [TripleRecord("drug_a", "treats", "cough"), Retraction("drug_a", "treats", "cough")]
            )
            assert ack.accepted and ack.stream_sequence > 0
            assert client.lookup("med", relation="treats", min_sequence=ack.stream_sequence).total_facts == 0
    finally:
        server.stop()
    (last,) = produce(kafka, [("med", triple_json("drug_c", "treats", "flu"), None)])  # while it is down
    server = kafka_server(data, kafka)
    try:
        assert server.app.serving  # caught up before SERVING
        with server.client() as client:
            facts = client.lookup("med", relation="treats", min_sequence=last).triples
            assert [(t.head_id, t.tail_id) for t in facts] == [("drug_c", "flu")]  # the retraction held
            assert server.app.kafka.consumer_of("med").applied == last
    finally:
        server.stop()


def test_json_batches_name_their_graph_in_a_header(tmp_path: Path, kafka: str) -> None:
    server = kafka_server(tmp_path / "data", kafka, partitions=1)
    try:
        with server.client() as client:
            client.create_graph("med")
            body = json.dumps({"records": [json.loads(triple_json("drug_a", "treats", "cough"))]}).encode()
            (last,) = produce(
                kafka, [(None, body, {"Graphfuse-Graph": "med", "Content-Type": "application/json"})]
            )
            assert client.lookup("med", relation="treats", min_sequence=last).total_facts == 1
    finally:
        server.stop()


@pytest.fixture()
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An S3-compatible object store (moto's server) on a free port, with test credentials."""
    try:
        from moto.server import ThreadedMotoServer
    except ModuleNotFoundError:
        if os.environ.get("CI") == "true":
            pytest.fail("needs PyPI package 'moto[server]' (CI installs it with the test extra)")
        pytest.skip("needs PyPI package 'moto[server]'")
    for name, value in (("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test")):
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def test_a_fresh_replica_starts_from_an_s3_snapshot_and_applies_only_later_updates(
    tmp_path: Path, kafka: str, s3_endpoint: str
) -> None:
    def replica(name: str) -> RunningServer:
        config = server_config(tmp_path / name, demo=False)
        config.kafka_bootstrap, config.kafka_partitions = kafka, 2
        config.snapshot_s3, config.s3_endpoint = "s3://graphfuse-snapshots/replicas", s3_endpoint
        return RunningServer(config)

    first = replica("a")
    second = None
    try:
        with first.client() as a:
            for graph in ("med", "bio"):  # on both partitions
                a.create_graph(graph)
                facts = [TripleRecord(f"{graph}_{i}", "treats", f"illness_{i % 7}") for i in range(20)]
                (ack,) = a.ingest(graph, facts)
                a.lookup(graph, relation="treats", min_sequence=ack.stream_sequence)
        (tmp_path / "a" / "checkpoints").mkdir()
        (tmp_path / "a" / "checkpoints" / "other.pt").write_bytes(b"trained weights")
        taken = first._run(first.app.snapshotter.snapshot())
        assert taken is not None and taken.sequence == first.app.kafka.applied == 4  # 2 messages per graph
        assert first._run(first.app.snapshotter.snapshot()) is None  # nothing applied since
        with first.client() as a:
            (ack,) = a.ingest(
                "med",
                [TripleRecord("med_new", "treats", "illness_1"), Retraction("med_0", "treats", "illness_0")],
            )
            a.lookup("med", relation="treats", min_sequence=ack.stream_sequence)

        second = replica("b")
        assert second.app.restored == taken
        with second.client() as b:
            b.lookup("med", relation="treats", min_sequence=ack.stream_sequence)
        stores = [server.app.service.store for server in (first, second)]
        for graph in ("med", "bio"):
            assert stores[1].read_graph(graph) == stores[0].read_graph(graph)
        assert sum(c.applied_records for c in second.app.kafka.consumers) == 2  # only what came after
        assert (tmp_path / "b" / "checkpoints" / "other.pt").read_bytes() == b"trained weights"

        command = [
            "snapshot",
            "--data-dir",
            str(tmp_path / "a"),
            "--snapshot-s3",
            "s3://graphfuse-snapshots/replicas",
        ]
        result = CliRunner().invoke(main, [*command, "--s3-endpoint", s3_endpoint])  # the replica runs
        assert result.exit_code == 0, result.output
        assert "stored snapshot-000000000005" in result.output
        stored = first._run(first.app.snapshots.list())
        assert [info.sequence for info in stored] == [5, 4] and stored[0].epoch == "kafka:graphfuse.updates"
    finally:
        first.stop()
        if second is not None:
            second.stop()
