"""Graph updates from a message stream: the source interface, its NATS JetStream implementation, and the
consumer that applies updates exactly once.

An update is one message on subject ``graphfuse.<graph>.updates`` holding one ``graphfuse.v1.Record``:
its protobuf bytes, or its canonical JSON (``{"triple": {"head": ..., "relation": ..., "tail": ...}}``,
``{"removeTriple": {...}}``, ``{"entity": {"id": ..., "name": ..., "aliases": [...]}}``,
``{"relation": {"id": ..., "name": ..., "inverseName": ..., "aliases": [...], "description": ...}}``), told
apart by a ``Content-Type: application/json`` header or by a leading ``{``. A message may instead hold
several records in order, a ``graphfuse.v1.RecordBatch``: its protobuf bytes with the header
``Graphfuse-Batch: 1``, or the JSON ``{"records": [<record>, ...]}`` (the header is optional there).
``Ingest`` in replicated mode publishes batches of at most :data:`PUBLISH_BATCH_RECORDS` records and
:data:`PUBLISH_BATCH_BYTES` bytes.

The consumer applies messages in stream order, a run of consecutive messages for one graph per store
transaction; the run's last stream sequence is stored in that same transaction and the messages are
acknowledged only after it commits. On start it resumes after the stored sequence, and a redelivered
message at or below it is acknowledged without being applied again. A message that cannot be applied
(malformed, invalid, unknown graph, oversized) is published to ``graphfuse.<graph>.deadletter`` with the
reason in a header, and the stream goes on. In a batch whose records are readable one by one, only the records
that cannot be applied are set aside: the others apply in order, and one dead letter holds the bad ones as a
batch of the same form, their positions in the message (``Graphfuse-Record-Indexes``) and a reason per record.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from google.protobuf import json_format
from google.protobuf.message import DecodeError

from graphfuse.gnn.data.records import Record, validate_record
from graphfuse.server.core.errors import Unavailable
from graphfuse.server.record_messages import RECORD_KINDS, record_from_proto, record_to_proto
from graphfuse.v1 import graphfuse_pb2 as pb

log = logging.getLogger(__name__)

STREAM = "GRAPHFUSE_UPDATES"
DEAD_LETTER_STREAM = "GRAPHFUSE_DEADLETTER"
UPDATE_SUBJECTS = "graphfuse.*.updates"
STREAM_NAME_IN_USE = 10058  # JetStream's err_code for a stream that exists with another configuration
NO_SUITABLE_PEERS = 10005  # too few nodes to place its copies on, as while a cluster forms
CLUSTER_NOT_AVAILABLE = 10008
MAX_UPDATE_BYTES = 64 * 1024  # a one-record message
# A batch message: with its dead-letter headers it stays under NATS's default max_payload (1 MiB)
MAX_BATCH_BYTES = 960 * 1024
MAX_BATCH_RECORDS = 10_000
PUBLISH_BATCH_RECORDS = 1000  # records per message Ingest publishes, by default (1: one Record message each)
PUBLISH_BATCH_BYTES = 256 * 1024  # and bytes, a margin under MAX_BATCH_BYTES
MAX_RUN_RECORDS = 4096  # records the consumer applies per store transaction (then acknowledges them)
FETCH_BYTES = 1024 * 1024  # about this many message bytes per fetch: big batches come a few at a time
BATCH_HEADER = "Graphfuse-Batch"  # "1": the message is a graphfuse.v1.RecordBatch
MAX_REASON_CHARS = 16_000  # of a dead letter's reason header (a batch's reason names each bad record)
CREATE_GRAPH_HEADER = "Graphfuse-Create-Graph"  # "1": create the graph if missing (empty body: only that)
DELETE_GRAPH_HEADER = "Graphfuse-Delete-Graph"  # "1" on an empty message: delete the graph everywhere
DESCRIPTION_HEADER = "Graphfuse-Description"  # of a graph the message creates
_SUBJECT = re.compile(r"^graphfuse\.([^.]+)\.updates$")


@dataclass
class StreamMessage:
    """One update as the source delivered it; ``handle`` is the source's own message object."""

    subject: str  # JetStream's subject; where a Kafka message came from
    sequence: int  # position in the stream, increasing
    data: bytes
    headers: dict[str, str] = field(default_factory=dict)
    handle: Any = None
    graph: str = ""  # the graph a source names apart from the subject (a Kafka message's key)


class UpdateSource(Protocol):
    """Where updates come from (NATS JetStream now; a Kafka topic would implement the same)."""

    name: str  # identifies the stream position in the store
    epoch: str  # changes when the log is created again (its sequences start over); set once connected

    def batches(self, after: int) -> AsyncIterator[list[StreamMessage]]:
        """Messages in stream order from sequence ``after + 1`` on, in batches, until closed."""
        ...

    async def ack(self, message: StreamMessage) -> None: ...

    async def dead_letter(
        self, message: StreamMessage, graph: str, reason: str, part: bytes | None = None, indexes: str = ""
    ) -> None:
        """Keep ``message`` aside with ``reason`` (the caller acknowledges it); of a batch, only ``part``,
        its records at the comma-separated positions ``indexes``. Keeping the same message twice keeps it
        once."""
        ...

    async def close(self) -> None: ...


class BadUpdate(ValueError):
    """A message that cannot be applied; its text is the dead-letter reason."""


def graph_of(message: StreamMessage) -> str:
    """The graph an update names (its source's, or its subject ``graphfuse.<graph>.updates``); raises
    BadUpdate when it names none."""
    if message.graph:
        return message.graph
    match = _SUBJECT.match(message.subject)
    if match is None:
        if message.subject.startswith("graphfuse."):
            raise BadUpdate(f"subject {message.subject!r} is not graphfuse.<graph>.updates")
        raise BadUpdate(f"{message.subject} names no graph: give it the graph as its key")
    return match.group(1)


@dataclass
class Update:
    """One message, decoded: its graph, the records to apply with their position in the message, and the
    records of a batch that cannot be applied, with why."""

    graph: str
    records: list[tuple[int, Record]]
    invalid: list[tuple[int, str]] = field(default_factory=list)
    batch: bool = False

    @property
    def size(self) -> int:
        return len(self.records) + len(self.invalid)


def decode_update(message: StreamMessage) -> Update:
    """The update a message holds; raises BadUpdate saying why none of it can be applied (a one-record
    message with an invalid record, or a batch that cannot be read)."""
    graph = graph_of(message)
    if len(message.data) > MAX_BATCH_BYTES:
        raise BadUpdate(f"message is {len(message.data)} bytes, more than {MAX_BATCH_BYTES}")
    is_json = _is_json(message)
    document = _json(message.data) if is_json else None
    if message.headers.get(BATCH_HEADER) == "1" or (isinstance(document, dict) and "records" in document):
        return _decode_batch(graph, _json_batch(document) if is_json else _proto_batch(message.data))
    if len(message.data) > MAX_UPDATE_BYTES:
        raise BadUpdate(f"message is {len(message.data)} bytes, more than {MAX_UPDATE_BYTES}")
    record = _json_record(document) if is_json else _proto_record(message.data)
    parsed = _parsed(record)
    if isinstance(parsed, str):
        raise BadUpdate(parsed)
    return Update(graph, [(0, parsed)])


def batch_part(message: StreamMessage, indexes: Sequence[int]) -> bytes:
    """The records at ``indexes`` of a batch message (one :func:`decode_update` read), as a batch of the same
    form: RecordBatch bytes, or JSON ``{"records": [...]}`` holding the records as they were written."""
    if _is_json(message):
        records = _json(message.data)["records"]
        part = {"records": [records[i] for i in indexes]}
        return json.dumps(part, ensure_ascii=False, separators=(",", ":")).encode()
    batch = pb.RecordBatch.FromString(message.data)
    return pb.RecordBatch(records=[batch.records[i] for i in indexes]).SerializeToString()


def _is_json(message: StreamMessage) -> bool:
    """JSON by its ``Content-Type`` header or its leading ``{``; else protobuf."""
    return "json" in message.headers.get("Content-Type", "").lower() or message.data.lstrip()[:1] == b"{"


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as error:  # ValueError: JSONDecodeError, UnicodeDecodeError
        raise BadUpdate(f"not a JSON graphfuse.v1.Record: {str(error)[:300]}") from None


def _json_record(document: Any) -> pb.Record:
    record = pb.Record()
    try:
        json_format.ParseDict(document, record)
    except (json_format.ParseError, TypeError, AttributeError, RecursionError) as error:
        raise BadUpdate(f"not a JSON graphfuse.v1.Record: {str(error)[:300]}") from None
    return record


def _proto_record(data: bytes) -> pb.Record:
    record = pb.Record()
    try:
        record.ParseFromString(data)
    except (DecodeError, RecursionError) as error:
        raise BadUpdate(f"not a protobuf graphfuse.v1.Record: {str(error)[:300]}") from None
    return record


def _json_batch(document: Any) -> list[pb.Record | str]:
    """Each record of a JSON batch, or why it is not one."""
    records = document.get("records") if isinstance(document, dict) else None
    if not isinstance(records, list) or len(document) != 1:
        raise BadUpdate('a JSON batch is {"records": [<graphfuse.v1.Record>, ...]} and nothing else')
    items: list[pb.Record | str] = []
    for item in records:
        try:
            items.append(_json_record(item))
        except BadUpdate as error:
            items.append(str(error))
    return items


def _proto_batch(data: bytes) -> list[pb.Record | str]:
    batch = pb.RecordBatch()
    try:
        batch.ParseFromString(data)
    except (DecodeError, RecursionError) as error:
        raise BadUpdate(f"not a protobuf graphfuse.v1.RecordBatch: {str(error)[:300]}") from None
    return list(batch.records)


def _decode_batch(graph: str, items: list[pb.Record | str]) -> Update:
    if not items:
        raise BadUpdate("the batch holds no records")
    if len(items) > MAX_BATCH_RECORDS:
        raise BadUpdate(f"the batch holds {len(items)} records, more than {MAX_BATCH_RECORDS}")
    update = Update(graph, [], batch=True)
    for i, item in enumerate(items):
        parsed = item if isinstance(item, str) else _parsed(item)
        if isinstance(parsed, str):
            update.invalid.append((i, parsed))
        else:
            update.records.append((i, parsed))
    return update


def _parsed(record: pb.Record) -> Record | str:
    """The record a message holds, or why it cannot be applied."""
    parsed = record_from_proto(record)
    if parsed is None:
        return f"the record is empty: set {RECORD_KINDS}"
    reason = validate_record(parsed)
    return f"{record.WhichOneof('record')}: {reason}" if reason else parsed


def batch_bodies(records: Sequence[Record], max_records: int, max_bytes: int) -> list[bytes]:
    """``records`` in order as serialized RecordBatch messages of at most ``max_records`` records and
    ``max_bytes`` bytes each (a record bigger than that alone goes in a message of its own)."""
    bodies: list[bytes] = []
    batch: list[pb.Record] = []
    size = 0
    for record in records:
        message = record_to_proto(record)
        cost = message.ByteSize() + 6  # with its field tag and length prefix (at most 6 bytes here)
        if batch and (len(batch) == max_records or size + cost > max_bytes):
            bodies.append(pb.RecordBatch(records=batch).SerializeToString())
            batch, size = [], 0
        batch.append(message)
        size += cost
    if batch:
        bodies.append(pb.RecordBatch(records=batch).SerializeToString())
    return bodies


def dead_letter_headers(
    message: StreamMessage, reason: str, indexes: str, where: dict[str, str]
) -> dict[str, str]:
    """A dead letter's headers: its reason, where the message came from (``where``, the source's own), the
    positions of the batch's records it keeps, and the message's form, so that a kept batch reads as the
    message did."""
    headers = {"Graphfuse-Reason": reason[:MAX_REASON_CHARS], **where}
    if indexes:
        headers["Graphfuse-Record-Indexes"] = indexes
    for name in ("Content-Type", BATCH_HEADER):
        if name in message.headers:
            headers[name] = message.headers[name]
    return headers


def dead_letter_body(message: StreamMessage, part: bytes | None) -> bytes:
    """What a dead letter keeps: the whole message, or ``part`` of a batch, within a batch's size bound."""
    return (message.data if part is None else part)[:MAX_BATCH_BYTES]


def _passing(error: Any) -> bool:
    """Whether a JetStream error clears by itself: no answer yet, or an API error of a cluster that is still
    forming or electing."""
    from nats.js.errors import APIError

    if not isinstance(error, APIError):
        return True  # no answer yet: a timeout, a lost connection
    return error.code == 503 or error.err_code in (NO_SUITABLE_PEERS, CLUSTER_NOT_AVAILABLE)


async def _retrying(
    attempt: Callable[[], Awaitable[Any]],
    deadline: float,
    what: str,
    passing: Callable[[Any], bool] = lambda error: True,
) -> Any:
    """``await attempt()`` until it succeeds; NATS errors and timeouts for which ``passing`` holds are retried
    every 0.5 s until ``deadline`` (``time.monotonic()``), then raised, as the others are at once."""
    from nats.errors import Error as NatsError

    while True:
        try:
            return await attempt()
        except (NatsError, TimeoutError) as error:
            if not passing(error) or time.monotonic() > deadline:
                raise
            log.info("JetStream cannot %s yet (%s); trying again", what, error)
            await asyncio.sleep(0.5)


class JetStreamSource:
    """Updates from NATS JetStream: the stream ``GRAPHFUSE_UPDATES`` (``graphfuse.*.updates``, created when
    missing), read by a pull consumer that starts after the given sequence and needs explicit acks.

    Args:
        url: NATS server URL(s), e.g. ``nats://127.0.0.1:4222`` (comma-separated for a cluster).
        batch: messages fetched per request, at most (fewer when they are big: about FETCH_BYTES).
        replicas: stream replicas when this source creates the stream (3 on a 3-node cluster).
        publish_records: records per message `publish` sends, at most (1: one Record message each, the
            form that replicas from before batches read).
    """

    def __init__(
        self, url: str, batch: int = 512, replicas: int = 1, publish_records: int = PUBLISH_BATCH_RECORDS
    ) -> None:
        if not 1 <= publish_records <= MAX_BATCH_RECORDS:
            raise ValueError(
                f"Expected 'publish_records' between 1 and {MAX_BATCH_RECORDS} (got {publish_records})"
            )
        self.url = url
        self.name = f"nats:{STREAM}"
        self.batch = batch
        self.replicas = replicas
        self.publish_records = publish_records
        self.epoch = ""
        self._nc: Any = None
        self._js: Any = None
        self._closed = asyncio.Event()

    async def connect(self) -> None:
        nats = import_nats()
        self._nc = await nats.connect(servers=self.url.split(","), max_reconnect_attempts=-1)
        self._js = self._nc.jetstream()
        deadline = time.monotonic() + 30.0  # a cluster that just started may still be electing its leader
        for name, subjects in ((STREAM, UPDATE_SUBJECTS), (DEAD_LETTER_STREAM, "graphfuse.*.deadletter")):
            create = functools.partial(self._add_stream, name, subjects)
            await _retrying(create, deadline, f"create stream {name}", _passing)
        # on a cluster, a stream just created may not be known to every node for a moment
        info = await _retrying(lambda: self._js.stream_info(STREAM), deadline, f"report stream {STREAM}")
        created = info.created
        self.epoch = created.isoformat() if created else ""

    async def _add_stream(self, name: str, subjects: str) -> None:
        """Create stream ``name``; one that exists with another configuration is used as it is."""
        from nats.js.errors import APIError

        try:
            await self._js.add_stream(name=name, subjects=[subjects], num_replicas=self.replicas)
        except APIError as error:
            if error.err_code != STREAM_NAME_IN_USE:
                raise
            log.info("JetStream stream %s exists (%s); using it", name, error)

    async def publish(
        self, graph: str, records: Sequence[Record], create: bool, key: str, description: str = ""
    ) -> int:
        """Publish records as updates, in order, as batch messages (one Record message each when
        ``publish_records`` is 1); returns the stream sequence of the last message, once JetStream has stored
        them all. Message ids are ``key:index``, so JetStream's duplicate window drops a publish that is
        retried with the same key. No records and ``create``: only the graph."""
        headers = {CREATE_GRAPH_HEADER: "1", DESCRIPTION_HEADER: description[:1000]} if create else {}
        if self.publish_records > 1 and records:
            headers[BATCH_HEADER] = "1"
            bodies = batch_bodies(records, self.publish_records, PUBLISH_BATCH_BYTES)
        else:
            bodies = [record_to_proto(r).SerializeToString() for r in records] or ([b""] if create else [])
        return await self._publish(graph, bodies, headers, key)

    async def delete_graph(self, graph: str, key: str) -> int:
        """Publish the deletion of ``graph``; returns its stream sequence once stored."""
        return await self._publish(graph, [b""], {DELETE_GRAPH_HEADER: "1"}, key)

    async def _publish(self, graph: str, bodies: list[bytes], headers: dict[str, str], key: str) -> int:
        """Publish ``bodies`` to the graph's subject with ids ``key:index``; the last stream sequence."""
        from nats.errors import Error as NatsError

        subject = f"graphfuse.{graph}.updates"
        try:
            acks = await asyncio.gather(
                *(
                    self._js.publish(subject, body, headers={**headers, "Nats-Msg-Id": f"{key}:{i}"})
                    for i, body in enumerate(bodies)
                )
            )
        except (NatsError, TimeoutError) as error:
            raise Unavailable(
                f"the update stream did not store the update ({type(error).__name__}); retry it: records "
                "that were stored already are stored once"
            ) from error
        return max((ack.seq for ack in acks), default=0)

    async def last_sequence(self) -> int:
        """The stream's last sequence now (what a replica must reach to be up to date)."""
        return (await self._js.stream_info(STREAM)).state.last_seq

    async def first_sequence(self) -> int:
        """The sequence of the oldest message the stream keeps (past 1 once older ones were removed)."""
        return (await self._js.stream_info(STREAM)).state.first_seq

    async def batches(self, after: int) -> AsyncIterator[list[StreamMessage]]:
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE if after else DeliverPolicy.ALL,
            opt_start_seq=after + 1 if after else None,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=30,
            inactive_threshold=300,
            max_ack_pending=-1,
        )
        subscription = await self._js.pull_subscribe(UPDATE_SUBJECTS, stream=STREAM, config=config)
        quiet_since = time.monotonic()
        wanted = self.batch
        try:
            while not self._closed.is_set():
                try:
                    fetched = await subscription.fetch(wanted, timeout=1.0)
                except TimeoutError:  # nats' own, or asyncio's, which fetch also raises when nothing came
                    if time.monotonic() - quiet_since > 5.0:  # still there? (its node may have died)
                        await subscription.consumer_info()  # raises when gone: the caller starts again
                        quiet_since = time.monotonic()
                    continue
                quiet_since = time.monotonic()
                average = sum(len(m.data) for m in fetched) // len(fetched) + 1
                wanted = max(1, min(self.batch, FETCH_BYTES // average))
                yield [
                    StreamMessage(
                        m.subject, m.metadata.sequence.stream, m.data, dict(m.headers or {}), handle=m
                    )
                    for m in fetched
                ]
        finally:
            if not self._nc.is_closed:
                await subscription.unsubscribe()

    async def ack(self, message: StreamMessage) -> None:
        await message.handle.ack()

    async def dead_letter(
        self, message: StreamMessage, graph: str, reason: str, part: bytes | None = None, indexes: str = ""
    ) -> None:
        subject = f"graphfuse.{graph if re.fullmatch(r'[A-Za-z0-9_-]+', graph) else '_'}.deadletter"
        where = {
            "Graphfuse-Subject": message.subject,
            "Graphfuse-Sequence": str(message.sequence),
            "Nats-Msg-Id": f"dead-{message.sequence}",  # a redelivered bad message is kept once
        }
        headers = dead_letter_headers(message, reason, indexes, where)
        await self._js.publish(subject, dead_letter_body(message, part), headers=headers)

    async def close(self) -> None:
        self._closed.set()
        if self._nc is not None:
            await self._nc.close()


class UpdateConsumer:
    """Applies a source's updates to the service's graphs, in order and exactly once (see the module doc).

    Args:
        service: the GraphService (its store, graphs and batcher).
        source: an UpdateSource.
    """

    def __init__(self, service: Any, source: UpdateSource) -> None:
        self.service = service
        self.source = source
        self.applied = 0  # last stream sequence applied or dead-lettered
        self.applied_records = 0  # since start
        self.dead_letters = 0
        self.progress = asyncio.Condition()
        self._stopping = False

    async def run_forever(self) -> None:
        """`run`, started again a second after a failure (store or connection), until :meth:`stop`."""
        while not self._stopping:
            try:
                await self.run()
                return
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - logged; the stored position makes a restart safe
                if self._stopping:
                    return
                log.exception("consuming %s failed; starting again in 1 s", self.source.name)
                await asyncio.sleep(1.0)

    async def stop(self) -> None:
        """End `run_forever`: the source is closed first, so that it ends even where a cancellation is lost
        (Python 3.11's ``asyncio.wait_for``, under the NATS client's fetch, can drop one)."""
        self._stopping = True
        await self.source.close()

    async def run(self) -> None:
        await self._advance(await self.service.stream_position(self.source.name))  # wakes `wait_for` callers
        log.info("consuming %s after sequence %d", self.source.name, self.applied)
        async for batch in self.source.batches(self.applied):
            await self._apply(batch)

    def position(self, graph: str = "") -> int:
        """The last sequence applied (one stream holds every graph)."""
        return self.applied

    async def wait_for(self, sequence: int, timeout: float | None, graph: str = "") -> bool:
        """Whether ``sequence`` was applied within ``timeout`` seconds (one stream holds every graph)."""
        async with self.progress:
            try:
                await asyncio.wait_for(self.progress.wait_for(lambda: self.applied >= sequence), timeout)
            except TimeoutError:
                return False
        return True

    async def _apply(self, batch: Sequence[StreamMessage]) -> None:
        run: list[tuple[StreamMessage, Update]] = []
        run_graph = ""
        run_records = 0
        for message in batch:
            if message.sequence <= self.applied:
                await self.source.ack(message)  # redelivered after it was applied: never twice
                continue
            try:
                if message.headers.get(DELETE_GRAPH_HEADER) == "1":
                    await self._flush(run_graph, run)
                    run, run_records = [], 0
                    await self._delete_graph(message)
                    continue
                if message.headers.get(CREATE_GRAPH_HEADER) == "1":
                    await self._flush(run_graph, run)
                    run, run_records = [], 0
                    if await self._create_graph(message):
                        continue
                update = decode_update(message)
                if update.graph not in self.service.graphs:
                    raise BadUpdate(f"graph {update.graph!r} not found")
            except BadUpdate as error:
                await self._flush(run_graph, run)
                run, run_records = [], 0
                await self._dead_letter(message, str(error))
                continue
            if run and (update.graph != run_graph or run_records >= MAX_RUN_RECORDS):
                await self._flush(run_graph, run)
                run, run_records = [], 0
            run_graph = update.graph
            run.append((message, update))
            run_records += update.size
        await self._flush(run_graph, run)

    async def _flush(self, graph: str, run: list[tuple[StreamMessage, Update]]) -> None:
        """Apply a run of one graph's messages in one store transaction that stores the run's last sequence,
        then acknowledge them. Records that cannot be applied are dead-lettered first (a whole one-record
        message, or a batch's bad records), so a failure before the commit keeps nothing half done: the
        messages come again and their dead letters are kept once."""
        if not run:
            return
        records = [record for _, update in run for _, record in update.records]
        bad = dict(await self.service.retraction_errors(graph, records))
        kept: list[Record] = []
        position = 0  # in `records`
        for message, update in run:
            invalid = list(update.invalid)
            for index, record in update.records:
                if position in bad:
                    invalid.append((index, bad[position]))
                else:
                    kept.append(record)
                position += 1
            if invalid:
                await self._dead_letter_records(message, update, sorted(invalid))
        last = run[-1][0].sequence
        if kept:
            await self.service.write_and_apply(graph, kept, (self.source.name, last))
            self.applied_records += len(kept)
        else:
            await self.service.set_stream_position(self.source.name, last)
        for message, _ in run:
            await self.source.ack(message)
        await self._advance(last)

    async def _create_graph(self, message: StreamMessage) -> bool:
        """Create the message's graph when missing; whether the message held nothing else."""
        graph = graph_of(message)
        if graph not in self.service.graphs:
            try:
                description = message.headers.get(DESCRIPTION_HEADER, "")
                await self.service.create_graph(graph, description, replicate=False)
            except ValueError:  # created meanwhile, or a name the store refuses (then dead-lettered below)
                pass
        if message.data:
            return False
        await self.source.ack(message)
        await self._consumed(message)
        return True

    async def _delete_graph(self, message: StreamMessage) -> None:
        await self.service.delete_graph(graph_of(message), replicate=False)  # again: deletes nothing
        await self.source.ack(message)
        await self._consumed(message)

    async def _dead_letter(self, message: StreamMessage, reason: str) -> None:
        """Set a whole message aside, acknowledge it and store that it is done with."""
        try:
            graph = graph_of(message)
        except BadUpdate:
            graph = "_"
        await self._keep_aside(message, graph, reason)
        await self.source.ack(message)
        await self._consumed(message)

    async def _dead_letter_records(
        self, message: StreamMessage, update: Update, invalid: list[tuple[int, str]]
    ) -> None:
        """Set aside what cannot be applied of a message in a run (the run acknowledges the message): a
        one-record message whole, or the bad records of a batch with each one's position and reason."""
        if not update.batch:
            await self._keep_aside(message, update.graph, invalid[0][1])
            return
        indexes = [index for index, _ in invalid]
        reason = f"{len(invalid)} of the batch's {update.size} records cannot be applied (the others apply): "
        reason += "; ".join(f"#{index}: {why}" for index, why in invalid)
        part = batch_part(message, indexes)
        await self._keep_aside(message, update.graph, reason, part, ",".join(map(str, indexes)))

    async def _keep_aside(
        self, message: StreamMessage, graph: str, reason: str, part: bytes | None = None, indexes: str = ""
    ) -> None:
        log.warning("dead-lettered stream message %d (%s): %s", message.sequence, message.subject, reason)
        await self.source.dead_letter(message, graph, reason, part, indexes)
        self.dead_letters += 1

    async def _consumed(self, message: StreamMessage) -> None:
        """Store that an acknowledged message that carried no records is done with (positions only grow)."""
        await self.service.set_stream_position(self.source.name, message.sequence)
        await self._advance(message.sequence)

    async def _advance(self, sequence: int) -> None:
        async with self.progress:
            self.applied = max(self.applied, sequence)
            self.progress.notify_all()


def import_nats() -> Any:
    """The NATS client; it needs the ``nats`` extra (nats-py)."""
    try:
        import nats  # noqa: PLC0415 - an optional feature
    except ModuleNotFoundError as error:
        raise RuntimeError("--nats needs the NATS client: pip install 'graphfuse[nats]'") from error
    return nats
