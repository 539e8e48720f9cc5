"""Graph updates from NATS JetStream, against a real `nats-server` started on a free port."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from graphfuse.gnn.data.records import EntityRecord, Record, RelationRecord, Retraction, TripleRecord
from graphfuse.server.client import Client
from graphfuse.server.replication.stream import (
    BATCH_HEADER,
    DEAD_LETTER_STREAM,
    MAX_BATCH_RECORDS,
    MAX_UPDATE_BYTES,
    STREAM,
    JetStreamSource,
    StreamMessage,
    UpdateConsumer,
    batch_bodies,
    decode_update,
)
from graphfuse.v1 import graphfuse_pb2 as pb
from tests.helpers.nats_servers import NatsCluster
from tests.server.conftest import RunningServer, server_config


def nats_cluster(tmp_path: Path, size: int) -> NatsCluster:
    try:
        return NatsCluster(tmp_path / "jetstream", size).start()
    except FileNotFoundError as missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{missing} (CI installs it in .ci/run)")
        pytest.skip(str(missing))


@pytest.fixture()
def nats_url(tmp_path: Path) -> Iterator[str]:
    cluster = nats_cluster(tmp_path, 1)
    yield cluster.url
    cluster.stop()


def publish(url: str, messages: list[tuple[str, bytes, dict[str, str] | None]]) -> list[int]:
    """Publish ``(subject, data, headers)`` messages to JetStream; their stream sequences."""
    import nats

    async def run() -> list[int]:
        nc = await nats.connect(url)
        js = nc.jetstream()
        sequences = [(await js.publish(s, d, headers=h)).seq for s, d, h in messages]
        await nc.close()
        return sequences

    return asyncio.run(run())


def dead_letter_messages(url: str, expected: int) -> list:
    """The dead letters (nats messages), in order."""
    import nats

    async def run() -> list:
        nc = await nats.connect(url)
        js = nc.jetstream()
        subscription = await js.pull_subscribe("graphfuse.*.deadletter", stream=DEAD_LETTER_STREAM)
        messages = await subscription.fetch(expected, timeout=5)
        await nc.close()
        return messages

    return asyncio.run(run())


def dead_letters(url: str, expected: int) -> list[tuple[str, str]]:
    """``(subject it came from, reason)`` of the dead letters, in order."""
    return [
        (m.headers["Graphfuse-Subject"], m.headers["Graphfuse-Reason"])
        for m in dead_letter_messages(url, expected)
    ]


def publish_chunks(
    url: str, graph: str, chunks: list[tuple[list[Record], str]], publish_records: int = 1000
) -> list[int]:
    """Publish each ``(records, key)`` as `Ingest` does in replicated mode; the last sequence of each."""

    async def run() -> list[int]:
        source = JetStreamSource(url, publish_records=publish_records)
        await source.connect()
        try:
            return [await source.publish(graph, records, False, key) for records, key in chunks]
        finally:
            await source.close()

    return asyncio.run(run())


def stream_messages(url: str) -> int:
    import nats

    async def run() -> int:
        nc = await nats.connect(url)
        info = await nc.jetstream().stream_info(STREAM)
        await nc.close()
        return info.state.messages

    return asyncio.run(run())


def triple_json(head: str, relation: str, tail: str, op: str = "triple") -> bytes:
    return json.dumps({op: {"head": head, "relation": relation, "tail": tail}}).encode()


def eventually(check: Callable[[], bool], seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "the update never became visible"
        time.sleep(0.05)


def streaming_server(data_dir: Path, nats_url: str) -> RunningServer:
    config = server_config(data_dir, demo=False)
    config.nats_url = nats_url
    return RunningServer(config)


def test_decoding_both_forms_and_refusals() -> None:
    proto = pb.Record(entity=pb.Entity(id="x", name="X", aliases=["ex"])).SerializeToString()
    update = decode_update(StreamMessage("graphfuse.g.updates", 1, proto))
    ((index, record),) = update.records
    assert update.graph == "g" and not update.batch and index == 0
    assert record.id == "x" and record.aliases == ("ex",)
    update = decode_update(
        StreamMessage("graphfuse.g.updates", 2, triple_json("a", "r", "b", "removeTriple"))
    )
    assert update.records == [(0, Retraction("a", "r", "b"))]
    for data, reason in [
        (b"{not json", "not a JSON graphfuse.v1.Record"),
        (b'{"triple": {"head": 5}}', "not a JSON graphfuse.v1.Record"),
        (b"{}", "the record is empty"),
        (triple_json("a", "r", " b"), "leading or trailing whitespace"),
        (b"\xff\xfe garbage", "not a protobuf graphfuse.v1.Record"),
        (b"x" * (MAX_UPDATE_BYTES + 1), "bytes, more than"),
    ]:
        with pytest.raises(ValueError, match=reason):
            decode_update(StreamMessage("graphfuse.g.updates", 3, data))


def test_decoding_relation_records_in_both_forms() -> None:
    record = RelationRecord("CtD", "treats", "treated by", ("cures",), "a compound treats a disease")
    proto = pb.Record(
        relation=pb.Relation(
            id="CtD",
            name="treats",
            inverse_name="treated by",
            aliases=["cures"],
            description="a compound treats a disease",
        )
    )
    update = decode_update(StreamMessage("graphfuse.g.updates", 1, proto.SerializeToString()))
    assert update.records == [(0, record)]
    document = {
        "relation": {
            "id": "CtD",
            "name": "treats",
            "inverseName": "treated by",
            "aliases": ["cures"],
            "description": "a compound treats a disease",
        }
    }
    update = decode_update(StreamMessage("graphfuse.g.updates", 2, json.dumps(document).encode()))
    assert update.records == [(0, record)]
    (body,) = batch_bodies([TripleRecord("a", "CtD", "b"), record], 10, 1 << 20)
    update = decode_update(StreamMessage("graphfuse.g.updates", 3, body, {BATCH_HEADER: "1"}))
    assert update.records == [(0, TripleRecord("a", "CtD", "b")), (1, record)]
    bad = json.dumps({"relation": {"id": "CtD", "aliases": ["cures", " x"]}}).encode()
    with pytest.raises(ValueError, match="relation: relation alias ' x' has leading or trailing whitespace"):
        decode_update(StreamMessage("graphfuse.g.updates", 4, bad))


class QuietSubscription:
    """A pull subscription that times out as nats-py does (its own TimeoutError, or asyncio's), then
    delivers one message."""

    def __init__(self, timeouts: list[Exception], message: object) -> None:
        self.timeouts, self.message = timeouts, message

    async def fetch(self, batch: int, timeout: float) -> list:  # noqa: ARG002
        if self.timeouts:
            raise self.timeouts.pop(0)
        return [self.message]

    async def unsubscribe(self) -> None:
        pass


def test_a_fetch_that_times_out_either_way_is_a_quiet_stream_not_a_failure() -> None:
    from types import SimpleNamespace

    from nats.errors import TimeoutError as NatsTimeout

    message = SimpleNamespace(
        subject="graphfuse.med.updates",
        data=b"{}",
        headers=None,
        metadata=SimpleNamespace(sequence=SimpleNamespace(stream=7)),
    )
    subscription = QuietSubscription([NatsTimeout(), TimeoutError()], message)

    async def pull_subscribe(*args, **kwargs) -> QuietSubscription:  # noqa: ANN002, ANN003, ARG001
        return subscription

    async def first_batch() -> list[StreamMessage]:
        source = JetStreamSource("nats://unused")
        source._js = SimpleNamespace(pull_subscribe=pull_subscribe)  # noqa: SLF001
        source._nc = SimpleNamespace(is_closed=False)  # noqa: SLF001
        async for batch in source.batches(0):
            return batch
        raise AssertionError("no batch")

    (received,) = asyncio.run(first_batch())
    assert received.sequence == 7 and subscription.timeouts == []


class DeafSource:
    """An update source whose reads ignore cancellation (as a cancellation lost inside a fetch leaves them)
    until it is closed, then fail, as reads on a closed NATS connection do."""

    name = "deaf"

    def __init__(self) -> None:
        self.closed = asyncio.Event()

    async def batches(self, after: int):  # noqa: ANN201, ARG002
        while not self.closed.is_set():
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                continue
        raise ConnectionError("connection closed")
        yield

    async def close(self) -> None:
        self.closed.set()


def test_stopping_the_consumer_ends_it_even_when_its_source_ignores_the_cancellation() -> None:
    from types import SimpleNamespace

    async def scenario() -> None:
        async def stream_position(name: str) -> int:  # noqa: ARG001
            return 0

        consumer = UpdateConsumer(SimpleNamespace(stream_position=stream_position), DeafSource())
        task = asyncio.create_task(consumer.run_forever())
        await asyncio.sleep(0.05)
        await consumer.stop()
        task.cancel()
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), timeout=5)

    asyncio.run(scenario())


def test_decoding_batches_keeps_each_records_position() -> None:
    records = [TripleRecord("a", "r", "b"), EntityRecord("a", "A"), Retraction("a", "r", "b")]
    (body,) = batch_bodies(records, 10, 1 << 20)
    update = decode_update(StreamMessage("graphfuse.g.updates", 1, body, {BATCH_HEADER: "1"}))
    assert update.batch and update.records == list(enumerate(records)) and not update.invalid
    with pytest.raises(ValueError, match="whitespace"):  # without the header: read as one (garbled) Record
        decode_update(StreamMessage("graphfuse.g.updates", 1, body))
    document = {"records": [json.loads(triple_json("a", "r", "b")), {"triple": {"head": 5}}, {}]}
    update = decode_update(StreamMessage("graphfuse.g.updates", 2, json.dumps(document).encode()))
    assert update.batch and update.records == [(0, TripleRecord("a", "r", "b"))]
    assert [i for i, _ in update.invalid] == [1, 2]
    assert "not a JSON graphfuse.v1.Record" in update.invalid[0][1]
    assert "the record is empty" in update.invalid[1][1]
    header = {BATCH_HEADER: "1"}
    too_many = batch_bodies(
        [TripleRecord("a", "r", f"b{i}") for i in range(MAX_BATCH_RECORDS + 1)], 10**6, 10**9
    )
    for data, headers, reason in [
        (b'{"records": []}', {}, "holds no records"),
        (b'{"records": [], "graph": "g"}', {}, "and nothing else"),
        (b"[1, 2]", {**header, "Content-Type": "application/json"}, "and nothing else"),
        (b"\xff\xfe garbage", header, "not a protobuf graphfuse.v1.RecordBatch"),
        (too_many[0], header, f"more than {MAX_BATCH_RECORDS}"),
    ]:
        with pytest.raises(ValueError, match=reason):
            decode_update(StreamMessage("graphfuse.g.updates", 3, data, headers))


def test_batch_bodies_split_by_records_and_bytes() -> None:
    records = [TripleRecord(f"head_{i}", "relation", f"tail_{i}") for i in range(10)]
    assert [len(pb.RecordBatch.FromString(b).records) for b in batch_bodies(records, 4, 1 << 20)] == [4, 4, 2]
    bodies = batch_bodies(records, 100, 90)
    assert len(bodies) > 2 and all(len(b) <= 90 for b in bodies)
    again = [r for b in bodies for r in pb.RecordBatch.FromString(b).records]
    assert [r.triple.head for r in again] == [r.head for r in records]


def test_updates_apply_in_order_and_retractions_remove(tmp_path: Path, nats_url: str) -> None:
    server = streaming_server(tmp_path / "data", nats_url)
    try:
        with server.client() as client:
            client.create_graph("med")
            add = pb.Record(triple=pb.Triple(head="drug_a", relation="treats", tail="cough"))
            *_, aliased = publish(
                nats_url,
                [
                    ("graphfuse.med.updates", add.SerializeToString(), None),
                    ("graphfuse.med.updates", triple_json("drug_a", "treats", "fever"), None),
                    (
                        "graphfuse.med.updates",
                        json.dumps({"entity": {"id": "drug_a", "aliases": ["DA-1"]}}).encode(),
                        {"Content-Type": "application/json"},
                    ),
                    (
                        "graphfuse.med.updates",
                        json.dumps({"relation": {"id": "treats", "inverseName": "treated by"}}).encode(),
                        None,
                    ),
                ],
            )
            eventually(lambda: client.lookup("med", head="drug_a", relation="treats").total_facts == 2)
            eventually(lambda: server.app.consumer.applied >= aliased)  # the alias may come in a later batch
            assert client.lookup("med", head="DA-1", relation="treats").total_facts == 2  # the alias links
            (words,) = client.graph_info("med").relation_words
            assert (words.id, words.inverse_name) == ("treats", "treated by")
            (last,) = publish(
                nats_url,
                [("graphfuse.med.updates", triple_json("drug_a", "treats", "cough", "removeTriple"), None)],
            )
            eventually(lambda: client.lookup("med", head="drug_a", relation="treats").total_facts == 1)
            answers = client.ask("what does drug_a treat", graph="med").answers
            assert "cough" not in [a.entity_id for a in answers]
            eventually(lambda: server.app.consumer.applied == last)
            assert server.app.service.store.stream_position(server.app.consumer.source.name) == last
    finally:
        server.stop()


def test_bad_messages_are_dead_lettered_and_the_stream_goes_on(tmp_path: Path, nats_url: str) -> None:
    server = streaming_server(tmp_path / "data", nats_url)
    try:
        with server.client() as client:
            client.create_graph("med")
            publish(
                nats_url,
                [
                    ("graphfuse.med.updates", triple_json("drug_a", "treats", "cough"), None),
                    ("graphfuse.med.updates", b"{not json", None),
                    ("graphfuse.med.updates", b'{"triple": {"head": 5}}', None),
                    ("graphfuse.nope.updates", triple_json("a", "r", "b"), None),
                    ("graphfuse.med.updates", b"x" * (MAX_UPDATE_BYTES + 1), None),
                    ("graphfuse.med.updates", triple_json("drug_a", "cures", "cough", "removeTriple"), None),
                    ("graphfuse.med.updates", triple_json("drug_b", "treats", "fever"), None),
                ],
            )
            eventually(lambda: client.lookup("med", relation="treats").total_facts == 2)
            letters = dead_letters(nats_url, 5)
            reasons = [reason for _, reason in letters]
            assert len(letters) == 5 and server.app.consumer.dead_letters == 5
            assert "not a JSON graphfuse.v1.Record" in reasons[0] and "no field" not in reasons[0]
            assert "not a JSON graphfuse.v1.Record" in reasons[1]
            assert letters[2] == ("graphfuse.nope.updates", "graph 'nope' not found")
            assert "bytes, more than" in reasons[3]
            assert "relation 'cures'" in reasons[4]
            assert {t.head_id for t in client.lookup("med", relation="treats").triples} == {
                "drug_a",
                "drug_b",
            }
    finally:
        server.stop()


def test_batches_apply_in_order_and_only_their_bad_records_are_set_aside(
    tmp_path: Path, nats_url: str
) -> None:
    server = streaming_server(tmp_path / "data", nats_url)
    try:
        with server.client() as client:
            client.create_graph("med")
            (proto_batch,) = batch_bodies(
                [
                    TripleRecord("drug_a", "treats", "cough"),
                    TripleRecord("drug_b", "treats", "fever"),
                    EntityRecord("drug_a", "Drug A", ("DA-1",)),
                ],
                10,
                1 << 20,
            )
            json_batch = {
                "records": [
                    json.loads(triple_json("drug_c", "treats", "flu")),
                    {"triple": {"head": 5}},
                    json.loads(triple_json("drug_b", "treats", "fever", "removeTriple")),
                    json.loads(triple_json("drug_a", "cures", "cough", "removeTriple")),
                    {},
                ]
            }
            *_, last = publish(
                nats_url,
                [
                    ("graphfuse.med.updates", proto_batch, {BATCH_HEADER: "1"}),
                    ("graphfuse.med.updates", json.dumps(json_batch).encode(), None),
                    ("graphfuse.med.updates", b"\xff garbage", {BATCH_HEADER: "1"}),
                    ("graphfuse.med.updates", triple_json("drug_d", "treats", "cough"), None),
                ],
            )
            facts = client.lookup("med", relation="treats", min_sequence=last).triples
            assert {(t.head_id, t.tail_id) for t in facts} == {
                ("drug_a", "cough"),
                ("drug_c", "flu"),
                ("drug_d", "cough"),
            }
            assert client.lookup("med", head="DA-1", relation="treats").total_facts == 1
            part, whole = dead_letter_messages(nats_url, 2)
            assert part.headers["Graphfuse-Record-Indexes"] == "1,3,4"
            reason = part.headers["Graphfuse-Reason"]
            assert reason.startswith("3 of the batch's 5 records cannot be applied (the others apply): #1: ")
            assert "#3: remove_triple: relation 'cures'" in reason and "#4: the record is empty" in reason
            assert json.loads(part.data) == {"records": [json_batch["records"][i] for i in (1, 3, 4)]}
            assert "not a protobuf graphfuse.v1.RecordBatch" in whole.headers["Graphfuse-Reason"]
            assert whole.headers[BATCH_HEADER] == "1"
            assert server.app.consumer.dead_letters == 2 and server.app.consumer.applied == last
    finally:
        server.stop()


def test_ingest_publishes_batches_in_order_and_a_retried_publish_applies_once(
    tmp_path: Path, nats_url: str
) -> None:
    config = server_config(tmp_path / "data", demo=False)
    config.nats_url, config.stream_batch_records = nats_url, 2
    server = RunningServer(config)
    try:
        with server.client() as client:
            client.create_graph("med")
            before = stream_messages(nats_url)
            a, b, c = (TripleRecord(f"drug_{x}", "treats", "cough") for x in "abc")
            records = [
                a,
                b,
                Retraction(a.head, a.relation, a.tail),
                c,
                Retraction(b.head, b.relation, b.tail),
                a,
            ]
            (ack,) = client.ingest("med", records)
            assert ack.accepted and stream_messages(nats_url) - before == 3  # 2 records per message
            facts = client.lookup("med", relation="treats", min_sequence=ack.stream_sequence).triples
            assert {t.head_id for t in facts} == {"drug_a", "drug_c"}

            # a publish retried with its key (its acknowledgement lost) is stored once: the retraction holds
            d = TripleRecord("drug_d", "treats", "cough")
            chunks = [
                ([d], "chunk-1"),
                ([Retraction(d.head, d.relation, d.tail)], "chunk-2"),
                ([d], "chunk-1"),
            ]
            first, removed, retried = publish_chunks(nats_url, "med", chunks)
            assert retried == first and removed > first
            facts = client.lookup("med", relation="treats", min_sequence=removed).triples
            assert {t.head_id for t in facts} == {"drug_a", "drug_c"}
            assert server.app.consumer.dead_letters == 0
    finally:
        server.stop()


def test_restart_resumes_after_the_stored_position_and_applies_nothing_twice(
    tmp_path: Path, nats_url: str
) -> None:
    data = tmp_path / "data"
    server = streaming_server(data, nats_url)
    try:
        with server.client() as client:
            client.create_graph("med")  # through the stream: sequence 1
            *_, applied = publish(
                nats_url,
                [
                    ("graphfuse.med.updates", triple_json("drug_a", "treats", "cough"), None),
                    ("graphfuse.med.updates", triple_json("drug_a", "treats", "cough", "removeTriple"), None),
                ],
            )
            eventually(lambda: server.app.consumer.applied == applied)
    finally:
        server.stop()
    # while the server is down
    (last,) = publish(nats_url, [("graphfuse.med.updates", triple_json("drug_c", "treats", "flu"), None)])
    server = streaming_server(data, nats_url)
    try:
        with server.client() as client:
            facts = client.lookup("med", relation="treats", min_sequence=last).triples
            assert [(t.head_id, t.tail_id) for t in facts] == [("drug_c", "flu")]  # the retraction held
            assert server.app.consumer.applied == last
    finally:
        server.stop()
    server = streaming_server(data, nats_url)  # nothing new: up to date (and SERVING) at once
    try:
        assert server.app.serving and server.app.consumer.applied == last
    finally:
        server.stop()


def test_replicas_ingest_through_the_stream_and_read_their_writes(tmp_path: Path, nats_url: str) -> None:
    first = streaming_server(tmp_path / "a", nats_url)
    second = streaming_server(tmp_path / "b", nats_url)
    try:
        with first.client() as a, second.client() as b:
            a.create_graph("shared", "replicated graph")
            facts = [TripleRecord("drug_a", "treats", "cough"), TripleRecord("drug_b", "treats", "fever")]
            (ack,) = a.ingest("shared", facts)
            assert ack.accepted and ack.stream_sequence == 2  # the graph, then one message with both facts
            for replica in (b, a):  # each answers once it has applied the write
                seen = replica.lookup("shared", relation="treats", min_sequence=ack.stream_sequence)
                assert seen.total_facts == 2
            assert b.graph_info("shared").description == "replicated graph"
            assert b.server_info().applied_sequence >= ack.stream_sequence

            (ack,) = b.ingest("shared", [Retraction("drug_a", "treats", "cough")])
            answers = a.ask("what does drug_a treat", graph="shared", min_sequence=ack.stream_sequence)
            assert "cough" not in [x.entity_id for x in answers.answers]
            assert a.lookup("shared", relation="treats", min_sequence=ack.stream_sequence).total_facts == 1

            assert a.delete_graph("shared").deleted  # on every replica, through the stream
            gone = b.create_graph("probe")  # a later write: once b applied it, it applied the deletion
            assert gone.name == "probe" and [g.name for g in b.list_graphs().graphs] == ["probe"]
        # no retries: the client's retry policy would otherwise try UNAVAILABLE again until the deadline
        with Client(first.target, timeout=0.5, retries=1) as impatient:
            with pytest.raises(grpc.RpcError) as behind:
                impatient.lookup("shared", relation="treats", min_sequence=ack.stream_sequence + 1000)
            assert behind.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "behind the requested min_sequence" in behind.value.details()
    finally:
        first.stop()
        second.stop()


def purge_before(url: str, sequence: int) -> int:
    """Delete the update stream's messages before ``sequence``; its first sequence then."""
    import nats

    async def run() -> int:
        nc = await nats.connect(url)
        js = nc.jetstream()
        await js.purge_stream(STREAM, seq=sequence)
        first = (await js.stream_info(STREAM)).state.first_seq
        await nc.close()
        return first

    return asyncio.run(run())


def test_a_fresh_replica_starts_from_a_snapshot_and_applies_only_later_updates(
    tmp_path: Path, nats_url: str
) -> None:
    first = streaming_server(tmp_path / "a", nats_url)
    second = None
    try:
        with first.client() as a:
            a.create_graph("shared", "replicated graph")
            names = [EntityRecord(f"drug_{i}", f"Drug number {i}") for i in range(40)]
            facts = [TripleRecord(f"drug_{i}", "treats", f"illness_{i % 7}") for i in range(40)]
            (ack,) = a.ingest("shared", names + facts)
            a.lookup("shared", relation="treats", min_sequence=ack.stream_sequence)
        # names are embedded in the background: the snapshot carries their cached vectors once they are
        assert first._run(first.app.service.registry.wait_for_names("shared", 60))
        (tmp_path / "a" / "checkpoints").mkdir()
        (tmp_path / "a" / "checkpoints" / "other.pt").write_bytes(b"trained weights")
        taken = first._run(first.app.snapshotter.snapshot())
        assert taken is not None and taken.sequence == ack.stream_sequence
        assert first._run(first.app.snapshotter.snapshot()) is None  # nothing applied since
        # Every message the snapshot covers leaves the stream: a replica replaying it would miss them
        assert purge_before(nats_url, taken.sequence + 1) == taken.sequence + 1
        with first.client() as a:
            later = [
                TripleRecord("drug_new", "treats", "illness_1"),
                Retraction("drug_0", "treats", "illness_0"),
            ]
            (ack,) = a.ingest("shared", later)
            a.lookup("shared", relation="treats", min_sequence=ack.stream_sequence)

        second = streaming_server(tmp_path / "b", nats_url)
        assert second.app.restored == taken
        with second.client() as b:
            b.lookup("shared", relation="treats", min_sequence=ack.stream_sequence)
            assert b.graph_info("shared").description == "replicated graph"
        stores = [server.app.service.store for server in (first, second)]
        entities, triples = stores[1].read_graph("shared")
        assert (entities, triples) == stores[0].read_graph("shared")
        assert TripleRecord("drug_new", "treats", "illness_1") in triples and len(triples) == 40
        assert stores[1].stream_position(second.app.consumer.source.name) == ack.stream_sequence
        model = second.app.service.encoder.name
        assert len(stores[1].get_embeddings(model, [f"Drug number {i}" for i in range(40)])) == 40
        assert (tmp_path / "b" / "checkpoints" / "other.pt").read_bytes() == b"trained weights"
        assert second.app.consumer.dead_letters == 0

        sequences = []  # the bucket keeps the newest two
        with first.client() as a:
            for i in range(2):
                (ack,) = a.ingest("shared", [TripleRecord(f"drug_{i}", "treats", "cough")])
                a.lookup("shared", relation="treats", min_sequence=ack.stream_sequence)
                sequences.append(first._run(first.app.snapshotter.snapshot()).sequence)
        assert [info.sequence for info in first._run(first.app.snapshots.list())] == sequences[::-1]
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_min_sequence_needs_an_update_stream(client) -> None:  # noqa: ANN001
    with pytest.raises(grpc.RpcError) as refused:
        client.lookup(relation="treats", min_sequence=5)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "--nats" in refused.value.details()


def test_more_stream_copies_than_nodes_fail_at_once_and_an_existing_stream_is_used(nats_url: str) -> None:
    import nats
    from nats.js.errors import APIError

    async def connect(replicas: int) -> float:
        source = JetStreamSource(nats_url, replicas=replicas)
        started = time.monotonic()
        try:
            await source.connect()
        finally:
            await source.close()
        return time.monotonic() - started

    async def create_stream_with_limits() -> None:
        nc = await nats.connect(nats_url)
        await nc.jetstream().add_stream(name=STREAM, subjects=["graphfuse.*.updates"], max_msgs=1_000_000)
        await nc.close()

    with pytest.raises(APIError, match="replicas > 1"):  # no cluster will form: not worth waiting for one
        asyncio.run(connect(3))
    asyncio.run(create_stream_with_limits())  # as an operator would, with another configuration
    assert asyncio.run(connect(1)) < 5.0  # used as it is


def ingest_retrying(client: Client, graph: str, records: list, seconds: float = 30.0) -> list:
    """A writer's loop: UNAVAILABLE (the stream is electing a leader) means try the chunk again."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return list(client.ingest(graph, records))
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_a_three_node_cluster_keeps_serving_when_a_node_dies(tmp_path: Path) -> None:
    cluster = nats_cluster(tmp_path, 3)
    replicas: list[RunningServer] = []
    try:
        for i, node in enumerate(cluster.nodes[:2]):  # each replica prefers another node, knows all
            config = server_config(tmp_path / f"replica{i}", demo=False)
            config.nats_url = ",".join([node.url, cluster.url])
            config.stream_replicas = 3
            replicas.append(RunningServer(config))
        with replicas[0].client() as a, replicas[1].client() as b:
            a.create_graph("shared")
            (ack,) = a.ingest("shared", [TripleRecord("drug_a", "treats", "cough")])
            assert b.lookup("shared", relation="treats", min_sequence=ack.stream_sequence).total_facts == 1
            cluster.nodes[0].kill()  # the node the first replica talks to
            acks = []
            for i in range(5):  # writes go on through the two nodes left (the stream has 3 copies)
                acks += ingest_retrying(b, "shared", [TripleRecord(f"drug_{i}", "treats", "fever")])
            assert all(x.accepted for x in acks)
            last = acks[-1].stream_sequence
            for replica in (a, b):
                assert replica.lookup("shared", relation="treats", min_sequence=last).total_facts == 6
    finally:
        for replica in replicas:
            replica.stop()
        cluster.stop()
