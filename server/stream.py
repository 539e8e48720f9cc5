"""Graph updates from a message stream: the source interface, its NATS JetStream implementation, and the
consumer that applies updates exactly once.

An update is one message on subject ``graphfuse.<graph>.updates`` holding one ``graphfuse.v1.Record``:
its protobuf bytes, or its canonical JSON (``{"triple": {"head": ..., "relation": ..., "tail": ...}}``,
``{"removeTriple": {...}}``, ``{"entity": {"id": ..., "name": ..., "aliases": [...]}}``), told apart by a
``Content-Type: application/json`` header or by a leading ``{``.

The consumer applies messages in stream order, a run of consecutive messages for one graph per store
transaction; the run's last stream sequence is stored in that same transaction and the messages are
acknowledged only after it commits. On start it resumes after the stored sequence, and a redelivered
message at or below it is acknowledged without being applied again. A message that cannot be applied
(malformed, invalid, unknown graph, oversized) is published to ``graphfuse.<graph>.deadletter`` with the
reason in a header, and the stream goes on.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from graphfuse.v1 import graphfuse_pb2 as pb

from gnn.records import Record, validate_record
from server.errors import Unavailable
from server.record_messages import record_from_proto, record_to_proto

log = logging.getLogger(__name__)

STREAM = "GRAPHFUSE_UPDATES"
DEAD_LETTER_STREAM = "GRAPHFUSE_DEADLETTER"
UPDATE_SUBJECTS = "graphfuse.*.updates"
MAX_UPDATE_BYTES = 64 * 1024
CREATE_GRAPH_HEADER = "Graphfuse-Create-Graph"  # "1": create the graph if missing (empty body: only that)
DELETE_GRAPH_HEADER = "Graphfuse-Delete-Graph"  # "1" on an empty message: delete the graph everywhere
DESCRIPTION_HEADER = "Graphfuse-Description"  # of a graph the message creates
_SUBJECT = re.compile(r"^graphfuse\.([^.]+)\.updates$")


@dataclass
class StreamMessage:
    """One update as the source delivered it; ``handle`` is the source's own message object."""

    subject: str
    sequence: int  # position in the stream, increasing
    data: bytes
    headers: dict[str, str] = field(default_factory=dict)
    handle: Any = None


class UpdateSource(Protocol):
    """Where updates come from (NATS JetStream now; a Kafka topic would implement the same)."""

    name: str  # identifies the stream position in the store

    def batches(self, after: int) -> AsyncIterator[list[StreamMessage]]:
        """Messages in stream order from sequence ``after + 1`` on, in batches, until closed."""
        ...

    async def ack(self, message: StreamMessage) -> None: ...

    async def dead_letter(self, message: StreamMessage, graph: str, reason: str) -> None:
        """Keep ``message`` aside with ``reason`` (then it is acknowledged)."""
        ...

    async def close(self) -> None: ...


class BadUpdate(ValueError):
    """A message that cannot be applied; its text is the dead-letter reason."""


def graph_of(message: StreamMessage) -> str:
    """The graph an update's subject names; raises BadUpdate when it is not ``graphfuse.<graph>.updates``."""
    match = _SUBJECT.match(message.subject)
    if match is None:
        raise BadUpdate(f"subject {message.subject!r} is not graphfuse.<graph>.updates")
    return match.group(1)


def decode_update(message: StreamMessage) -> tuple[str, Record]:
    """``(graph, record)`` of an update message; raises BadUpdate saying why it cannot be applied."""
    graph = graph_of(message)
    if len(message.data) > MAX_UPDATE_BYTES:
        raise BadUpdate(f"message is {len(message.data)} bytes, more than {MAX_UPDATE_BYTES}")
    record = pb.Record()
    is_json = "json" in message.headers.get("Content-Type", "").lower() or message.data.lstrip()[:1] == b"{"
    try:
        if is_json:
            json_format.Parse(message.data, record)
        else:
            record.ParseFromString(message.data)
    except (json_format.ParseError, DecodeError, UnicodeDecodeError, RecursionError) as error:
        kind = "JSON" if is_json else "protobuf"
        raise BadUpdate(f"not a {kind} graphfuse.v1.Record: {str(error)[:300]}") from None
    parsed = record_from_proto(record)
    if parsed is None:
        raise BadUpdate("the record is empty: set triple, remove_triple or entity")
    reason = validate_record(parsed)
    if reason:
        raise BadUpdate(f"{record.WhichOneof('record')}: {reason}")
    return graph, parsed


class JetStreamSource:
    """Updates from NATS JetStream: the stream ``GRAPHFUSE_UPDATES`` (``graphfuse.*.updates``, created when
    missing), read by a pull consumer that starts after the given sequence and needs explicit acks.

    Args:
        url: NATS server URL(s), e.g. ``nats://127.0.0.1:4222`` (comma-separated for a cluster).
        batch: messages fetched per request.
        replicas: stream replicas when this source creates the stream (3 on a 3-node cluster).
    """

    def __init__(self, url: str, batch: int = 512, replicas: int = 1) -> None:
        self.url = url
        self.name = f"nats:{STREAM}"
        self.batch = batch
        self.replicas = replicas
        self._nc: Any = None
        self._js: Any = None
        self._closed = asyncio.Event()

    async def connect(self) -> None:
        import nats
        from nats.errors import Error as NatsError
        from nats.js.errors import BadRequestError

        self._nc = await nats.connect(servers=self.url.split(","), max_reconnect_attempts=-1)
        self._js = self._nc.jetstream()
        deadline = time.monotonic() + 30.0  # a cluster that just started may still be electing its leader
        for name, subjects in ((STREAM, UPDATE_SUBJECTS), (DEAD_LETTER_STREAM, "graphfuse.*.deadletter")):
            while True:
                try:
                    await self._js.add_stream(name=name, subjects=[subjects], num_replicas=self.replicas)
                    break
                except BadRequestError:  # exists with another configuration: use it as it is
                    log.info("JetStream stream %s exists; using it", name)
                    break
                except (NatsError, TimeoutError):
                    if time.monotonic() > deadline:
                        raise
                    log.info("JetStream is not ready for stream %s yet; trying again", name)
                    await asyncio.sleep(0.5)

    async def publish(
        self, graph: str, records: Sequence[Record], create: bool, key: str, description: str = ""
    ) -> int:
        """Publish records as updates, one message each; returns the stream sequence of the last, once
        JetStream has stored them all. Message ids are ``key:index``, so JetStream's duplicate window
        drops a publish that is retried with the same key. No records and ``create``: only the graph."""
        headers = {CREATE_GRAPH_HEADER: "1", DESCRIPTION_HEADER: description[:1000]} if create else {}
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

    async def batches(self, after: int) -> AsyncIterator[list[StreamMessage]]:
        from nats.errors import TimeoutError as NatsTimeout
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
        try:
            while not self._closed.is_set():
                try:
                    fetched = await subscription.fetch(self.batch, timeout=1.0)
                except NatsTimeout:
                    if time.monotonic() - quiet_since > 5.0:  # still there? (its node may have died)
                        await subscription.consumer_info()  # raises when gone: the caller starts again
                        quiet_since = time.monotonic()
                    continue
                quiet_since = time.monotonic()
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

    async def dead_letter(self, message: StreamMessage, graph: str, reason: str) -> None:
        subject = f"graphfuse.{graph if re.fullmatch(r'[A-Za-z0-9_-]+', graph) else '_'}.deadletter"
        headers = {
            "Graphfuse-Reason": reason[:1000],
            "Graphfuse-Subject": message.subject,
            "Graphfuse-Sequence": str(message.sequence),
            "Nats-Msg-Id": f"dead-{message.sequence}",  # a redelivered bad message is kept once
        }
        await self._js.publish(subject, message.data[:MAX_UPDATE_BYTES], headers=headers)
        await self.ack(message)

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
        self.dead_letters = 0
        self.progress = asyncio.Condition()

    async def run_forever(self) -> None:
        """`run`, started again a second after a failure (store or connection); cancel to stop."""
        while True:
            try:
                await self.run()
                return
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - logged; the stored position makes a restart safe
                log.exception("consuming %s failed; starting again in 1 s", self.source.name)
                await asyncio.sleep(1.0)

    async def run(self) -> None:
        self.applied = await self.service.stream_position(self.source.name)
        log.info("consuming %s after sequence %d", self.source.name, self.applied)
        async for batch in self.source.batches(self.applied):
            await self._apply(batch)

    async def wait_for(self, sequence: int, timeout: float | None) -> bool:
        """Whether ``sequence`` was applied within ``timeout`` seconds."""
        async with self.progress:
            try:
                await asyncio.wait_for(self.progress.wait_for(lambda: self.applied >= sequence), timeout)
            except TimeoutError:
                return False
        return True

    async def _apply(self, batch: Sequence[StreamMessage]) -> None:
        run: list[tuple[StreamMessage, Record]] = []
        run_graph = ""
        for message in batch:
            if message.sequence <= self.applied:
                await self.source.ack(message)  # redelivered after it was applied: never twice
                continue
            try:
                if message.headers.get(DELETE_GRAPH_HEADER) == "1":
                    await self._flush(run_graph, run)
                    run = []
                    await self._delete_graph(message)
                    continue
                if message.headers.get(CREATE_GRAPH_HEADER) == "1":
                    await self._flush(run_graph, run)
                    run = []
                    if await self._create_graph(message):
                        continue
                graph, record = decode_update(message)
                if graph not in self.service.graphs:
                    raise BadUpdate(f"graph {graph!r} not found")
            except BadUpdate as error:
                await self._flush(run_graph, run)
                run = []
                await self._dead_letter(message, str(error))
                continue
            if run and graph != run_graph:
                await self._flush(run_graph, run)
                run = []
            run_graph = graph
            run.append((message, record))
        await self._flush(run_graph, run)

    async def _flush(self, graph: str, run: list[tuple[StreamMessage, Record]]) -> None:
        if not run:
            return
        bad = dict(await self.service.retraction_errors(graph, [record for _, record in run]))
        await self._commit(graph, [item for i, item in enumerate(run) if i not in bad])
        for i, reason in bad.items():  # positions only grow: a lower one stored after a higher is kept lower
            await self._dead_letter(run[i][0], reason, graph)

    async def _commit(self, graph: str, run: list[tuple[StreamMessage, Record]]) -> None:
        if not run:
            return
        last = run[-1][0].sequence
        await self.service.write_and_apply(graph, [r for _, r in run], (self.source.name, last))
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

    async def _dead_letter(self, message: StreamMessage, reason: str, graph: str = "") -> None:
        match = _SUBJECT.match(message.subject)
        graph = graph or (match.group(1) if match else "_")
        log.warning("dead-lettered stream message %d (%s): %s", message.sequence, message.subject, reason)
        await self.source.dead_letter(message, graph, reason)  # acknowledges it
        self.dead_letters += 1
        await self._consumed(message)

    async def _consumed(self, message: StreamMessage) -> None:
        """Store that an acknowledged message that carried no records is done with (positions only grow)."""
        await self.service.set_stream_position(self.source.name, message.sequence)
        await self._advance(message.sequence)

    async def _advance(self, sequence: int) -> None:
        async with self.progress:
            self.applied = max(self.applied, sequence)
            self.progress.notify_all()
