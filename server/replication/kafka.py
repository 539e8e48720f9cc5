"""Graph updates from a Kafka topic, through the same consumer as JetStream's (:mod:`.stream`).

A message holds what a JetStream update holds (one ``graphfuse.v1.Record`` or a ``RecordBatch``, protobuf or
canonical JSON, the same headers); the graph it updates is its **key** (UTF-8), or its ``Graphfuse-Graph``
header where it has no key. Producers key by graph, so with Kafka's default partitioner (murmur2 of the key,
as the Java client, librdkafka's ``murmur2_random`` and aiokafka choose) one graph's updates share a partition
and stay in order.

Each partition is assigned explicitly (no consumer group) and applied by an :class:`UpdateConsumer` of its
own. Its position is the offset of the next message to apply (Kafka's committed-offset convention, so a
message's position is its offset + 1), stored in the SQLite transaction that applies the message's records,
and nowhere else: on start each partition is read from its stored offset, so a restart or a crash neither
applies a message twice nor skips one. Messages that cannot be applied go to the dead-letter topic (default
``<topic>.deadletter``) with the reason and where they came from in headers; a crash between a dead letter
and the commit after it sends that dead letter again, so readers of the dead-letter topic tell them apart by
``Graphfuse-Partition`` and ``Graphfuse-Offset``.

Written against Kafka's protocol; tested against Tansu, a Kafka-protocol broker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from graphfuse.gnn.data.records import Record
from graphfuse.server.core.errors import Unavailable
from graphfuse.server.record_messages import record_to_proto
from graphfuse.server.replication.stream import (
    BATCH_HEADER,
    CREATE_GRAPH_HEADER,
    DELETE_GRAPH_HEADER,
    DESCRIPTION_HEADER,
    MAX_BATCH_BYTES,
    MAX_BATCH_RECORDS,
    PUBLISH_BATCH_BYTES,
    PUBLISH_BATCH_RECORDS,
    StreamMessage,
    UpdateConsumer,
    batch_bodies,
    dead_letter_body,
    dead_letter_headers,
)

log = logging.getLogger(__name__)

GRAPH_HEADER = "Graphfuse-Graph"  # the graph of a message without a key
FETCH_BYTES = 1024 * 1024  # per partition fetch
FETCH_WAIT_MS = 50  # the longest a broker may hold a fetch while the partition has nothing new
POLL_MS = 1000


def topic_epoch(topic: str) -> str:
    """What snapshots of replicas of ``topic`` are tagged with (a topic created again is not told apart)."""
    return f"kafka:{topic}"


def partition_prefix(topic: str) -> str:
    """What the names of the topic's partitions' stored positions start with."""
    return f"kafka:{topic}:"


def partition_source_name(topic: str, partition: int) -> str:
    """The name a partition's position is stored under."""
    return f"{partition_prefix(topic)}{partition}"


def partition_of(graph: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a message keyed ``graph``."""
    from aiokafka.partitioner import murmur2

    return (murmur2(graph.encode()) & 0x7FFFFFFF) % partitions


class KafkaPartitionSource:
    """One partition of the update topic, as an :class:`~.stream.UpdateSource` (positions: offset + 1).

    Args:
        updates: the :class:`KafkaUpdates` it belongs to (connection settings, dead-letter producer).
        partition: the partition's number.
    """

    def __init__(self, updates: KafkaUpdates, partition: int) -> None:
        self.updates = updates
        self.partition = partition
        self.name = partition_source_name(updates.topic, partition)
        self.epoch = ""
        self.highwater = 0  # the partition's end offset, as the last fetch saw it
        self._closed = asyncio.Event()

    async def batches(self, after: int) -> AsyncIterator[list[StreamMessage]]:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        part = TopicPartition(self.updates.topic, self.partition)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.updates.bootstrap,
            client_id=f"graphfuse-{self.name}",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # a position the partition no longer holds: skip the least
            isolation_level="read_committed",  # what a transactional producer (Flink) aborts never applies
            max_partition_fetch_bytes=max(FETCH_BYTES, MAX_BATCH_BYTES),
            fetch_max_wait_ms=FETCH_WAIT_MS,
        )
        await consumer.start()
        try:
            consumer.assign([part])
            consumer.seek(part, after)
            while not self._closed.is_set():
                fetched = await consumer.getmany(part, timeout_ms=POLL_MS, max_records=self.updates.batch)
                self.highwater = consumer.highwater(part) or self.highwater
                messages = fetched.get(part, [])
                if messages:
                    yield [self._message(m) for m in messages]
        finally:
            await consumer.stop()

    def _message(self, message: Any) -> StreamMessage:
        headers = {name: value.decode("utf-8", "replace") for name, value in message.headers or ()}
        key = message.key.decode("utf-8", "replace") if message.key is not None else ""
        graph = key or headers.get(GRAPH_HEADER, "")
        where = f"kafka {self.updates.topic}[{self.partition}]@{message.offset}"
        return StreamMessage(where, message.offset + 1, message.value or b"", headers, graph=graph)

    async def ack(self, message: StreamMessage) -> None:
        """Nothing to do: the position is stored with the records it applied."""

    async def dead_letter(
        self, message: StreamMessage, graph: str, reason: str, part: bytes | None = None, indexes: str = ""
    ) -> None:
        where = {
            "Graphfuse-Topic": self.updates.topic,
            "Graphfuse-Partition": str(self.partition),
            "Graphfuse-Offset": str(message.sequence - 1),
        }
        headers = dead_letter_headers(message, reason, indexes, where)
        await self.updates.send(
            self.updates.dead_letter_topic, graph, dead_letter_body(message, part), headers
        )

    async def close(self) -> None:
        self._closed.set()


class KafkaUpdates:
    """The update topic: one :class:`KafkaPartitionSource` and :class:`UpdateConsumer` per partition, the
    publisher `Ingest` writes through in replicated mode, and the registry's view of what was applied.

    Args:
        service: the GraphService.
        bootstrap: Kafka bootstrap servers, comma-separated ``host:port``.
        topic: the update topic (created with ``partitions`` partitions when missing).
        dead_letter_topic: where messages that cannot be applied go (default ``<topic>.deadletter``).
        batch: messages per fetch, at most.
        publish_records: records per message `publish` sends, at most.
    """

    def __init__(
        self,
        service: Any,
        bootstrap: str,
        topic: str,
        dead_letter_topic: str = "",
        partitions: int = 1,
        batch: int = 512,
        publish_records: int = PUBLISH_BATCH_RECORDS,
    ) -> None:
        if not 1 <= publish_records <= MAX_BATCH_RECORDS:
            raise ValueError(
                f"Expected 'publish_records' between 1 and {MAX_BATCH_RECORDS} (got {publish_records})"
            )
        if partitions < 1:
            raise ValueError(f"Expected 'partitions' >= 1 (got {partitions})")
        self.service = service
        self.bootstrap = bootstrap
        self.topic = topic
        self.dead_letter_topic = dead_letter_topic or f"{topic}.deadletter"
        self.new_partitions = partitions
        self.batch = batch
        self.publish_records = publish_records
        self.name = f"kafka:{topic}"
        self.epoch = topic_epoch(topic)
        self.sources: list[KafkaPartitionSource] = []
        self.consumers: list[UpdateConsumer] = []
        self._producer: Any = None
        self._tasks: list[asyncio.Task[None]] = []

    async def connect(self, timeout: float = 30.0) -> None:
        """Create the topics when missing, learn the update topic's partitions, start the producer."""
        kafka = import_kafka()
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        deadline = time.monotonic() + timeout
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="graphfuse-admin")
        await _retrying(admin.start, deadline, "reach the Kafka brokers")
        try:
            existing = set(await admin.list_topics())
            wanted = [
                NewTopic(name, self.new_partitions if name == self.topic else 1, 1)
                for name in (self.topic, self.dead_letter_topic)
                if name not in existing
            ]
            if wanted:
                try:
                    await admin.create_topics(wanted)
                except kafka.errors.TopicAlreadyExistsError:  # another replica created it meanwhile
                    pass
        finally:
            await admin.close()
        self._producer = kafka.AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            client_id="graphfuse-publisher",
            acks="all",
            max_request_size=MAX_BATCH_BYTES + 64 * 1024,
        )
        await _retrying(self._producer.start, deadline, "start the Kafka producer")
        partitions = self._producer.client.cluster.partitions_for_topic(self.topic)
        while not partitions:
            if time.monotonic() > deadline:
                raise TimeoutError(f"Kafka reports no partitions of topic {self.topic!r}")
            await self._producer.client.force_metadata_update()
            partitions = self._producer.client.cluster.partitions_for_topic(self.topic)
            await asyncio.sleep(0.1)
        self.sources = [KafkaPartitionSource(self, p) for p in sorted(partitions)]
        self.consumers = [UpdateConsumer(self.service, source) for source in self.sources]

    async def offsets(self) -> list[tuple[int, int]]:
        """Each partition's beginning and end offsets now (a replica must reach the end to be up to date)."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False)
        await consumer.start()
        try:
            parts = [TopicPartition(self.topic, s.partition) for s in self.sources]
            starts, ends = await consumer.beginning_offsets(parts), await consumer.end_offsets(parts)
            return [(starts[p], ends[p]) for p in parts]
        finally:
            await consumer.stop()

    def start(self) -> None:
        """Consume every partition in the background (each started again after a failure)."""
        self._tasks = [asyncio.create_task(c.run_forever()) for c in self.consumers]

    async def catch_up(self, max_lag: int) -> None:
        """Return once every partition is within ``max_lag`` messages of its end offset now; a stored position
        the partition no longer holds (removed by retention, or a topic created again) is logged."""
        for consumer, (start, end) in zip(self.consumers, await self.offsets(), strict=True):
            stored = await self.service.stream_position(consumer.source.name)
            if stored < start or stored > end:
                log.error(
                    "this replica applied %s up to offset %d, but the partition now holds offsets %d to %d: "
                    "updates it never applied were removed, or the topic was created again; start it on an "
                    "empty data directory",
                    consumer.source.name,
                    stored,
                    start,
                    end,
                )
            if end - max_lag > consumer.applied:
                log.info("catching up on %s: to %d (at %d)", consumer.source.name, end, consumer.applied)
                await consumer.wait_for(end - max_lag, None)

    # ------------------------------------------------------------------ what the registry reads
    def consumer_of(self, graph: str) -> UpdateConsumer:
        return self.consumers[partition_of(graph, len(self.consumers))]

    @property
    def applied(self) -> int:
        """Messages applied over every partition (positions start at 0)."""
        return sum(c.applied for c in self.consumers)

    def lag(self) -> int:
        """Messages not yet applied over every partition, as far as the last fetches know."""
        return sum(max(0, s.highwater - c.applied) for s, c in zip(self.sources, self.consumers, strict=True))

    def position(self, graph: str) -> int:
        return self.consumer_of(graph).applied

    async def wait_for(self, sequence: int, timeout: float | None, graph: str = "") -> bool:
        """Whether ``graph``'s partition reached position ``sequence`` within ``timeout`` seconds."""
        return await self.consumer_of(graph).wait_for(sequence, timeout)

    # ------------------------------------------------------------------ publishing (Ingest)
    async def publish(
        self, graph: str, records: Sequence[Record], create: bool, key: str, description: str = ""
    ) -> int:
        """Publish records as updates keyed by ``graph``, in order, as batch messages; returns the position
        after the last one (its offset + 1) once every broker replica has it. ``key`` identifies the
        publish in the ``Graphfuse-Key`` header."""
        headers = {CREATE_GRAPH_HEADER: "1", DESCRIPTION_HEADER: description[:1000]} if create else {}
        headers["Graphfuse-Key"] = key
        if self.publish_records > 1 and records:
            headers[BATCH_HEADER] = "1"
            bodies = batch_bodies(records, self.publish_records, PUBLISH_BATCH_BYTES)
        else:
            bodies = [record_to_proto(r).SerializeToString() for r in records] or ([b""] if create else [])
        return await self._publish(graph, bodies, headers)

    async def delete_graph(self, graph: str, key: str) -> int:
        return await self._publish(graph, [b""], {DELETE_GRAPH_HEADER: "1", "Graphfuse-Key": key})

    async def _publish(self, graph: str, bodies: list[bytes], headers: dict[str, str]) -> int:
        from aiokafka.errors import KafkaError

        try:
            futures = [await self._send(self.topic, graph, body, headers) for body in bodies]
            written = await asyncio.gather(*futures)
        except KafkaError as error:
            raise Unavailable(
                f"the update topic did not store the update ({type(error).__name__}); retry it: records are "
                "sets, so ones stored already are stored once"
            ) from error
        return max((m.offset + 1 for m in written), default=0)

    async def _send(self, topic: str, graph: str, body: bytes, headers: dict[str, str]) -> Any:
        pairs = [(name, value.encode()) for name, value in headers.items()]
        return await self._producer.send(topic, body, key=graph.encode(), headers=pairs)

    async def send(self, topic: str, graph: str, body: bytes, headers: dict[str, str]) -> None:
        """Send one message and wait until the brokers stored it."""
        await (await self._send(topic, graph, body, headers))

    async def stop(self) -> None:
        for consumer in self.consumers:
            await consumer.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None


async def _retrying(attempt: Any, deadline: float, what: str) -> None:
    from aiokafka.errors import KafkaError

    while True:
        try:
            await attempt()
            return
        except (KafkaError, OSError) as error:
            if time.monotonic() > deadline:
                raise
            log.info("cannot %s yet (%s); trying again", what, error)
            await asyncio.sleep(0.5)


def import_kafka() -> Any:
    """The Kafka client; it needs the ``kafka`` extra (aiokafka)."""
    try:
        import aiokafka  # noqa: PLC0415 - an optional feature
        import aiokafka.errors  # noqa: PLC0415
    except ModuleNotFoundError as error:
        raise RuntimeError("--kafka needs the Kafka client: pip install 'graphfuse[kafka]'") from error
    return aiokafka
