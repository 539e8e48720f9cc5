"""Server assembly: servicers, health, reflection; start-up, readiness and graceful shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from graphfuse.server.core.config import ServerConfig
from graphfuse.server.core.service import GraphService
from graphfuse.server.jobs.background import BackgroundJobs
from graphfuse.server.replication.kafka import KafkaUpdates
from graphfuse.server.replication.snapshots import (
    JetStreamSnapshots,
    S3Snapshots,
    SnapshotInfo,
    Snapshotter,
    restore_newest,
)
from graphfuse.server.replication.stream import JetStreamSource, UpdateConsumer
from graphfuse.server.storage.store import DB_FILENAME
from graphfuse.server.transport.auth import AuthInterceptor, TokenTable
from graphfuse.server.transport.metrics import Metrics
from graphfuse.server.transport.observability import CallInterceptor
from graphfuse.server.transport.servicer import (
    EmbedderServicer,
    GraphsServicer,
    InfoServicer,
    ReasonerServicer,
)
from graphfuse.v1 import graphfuse_pb2 as pb
from graphfuse.v1 import graphfuse_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)
SERVICE_NAMES = tuple(
    pb.DESCRIPTOR.services_by_name[name].full_name for name in ("Info", "Embedder", "Graphs", "Reasoner")
)


class App:
    """A running graphfuse server: the gRPC server, its service layer and its health status."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        credentials = _credentials(config)
        tokens = _tokens(config)
        if not config.loopback and credentials is None and tokens is None and not config.insecure:
            raise ValueError(
                f"refusing to serve {config.address} without TLS (--tls-cert/--tls-key) or bearer tokens "
                "(--tokens/--token): anyone who can reach it could read and write every graph; pass "
                "--insecure to do it anyway"
            )
        self.service = GraphService(config)
        self.jobs = BackgroundJobs(self.service)
        self.metrics = Metrics(self.service)
        self.metrics_port: int | None = None
        options = [
            ("grpc.max_send_message_length", config.max_message_bytes),
            ("grpc.max_receive_message_length", config.max_message_bytes),
            ("grpc.keepalive_time_ms", int(config.keepalive_seconds * 1000)),
            ("grpc.keepalive_timeout_ms", int(config.keepalive_timeout_seconds * 1000)),
            ("grpc.http2.min_ping_interval_without_data_ms", 5000),
        ]
        interceptors: list[grpc.aio.ServerInterceptor] = [
            CallInterceptor(self.metrics, config.limits.max_concurrent_requests)
        ]
        if tokens is not None:
            interceptors.append(AuthInterceptor(tokens))
        self.server = grpc.aio.server(interceptors=interceptors, options=options)
        servicers = {
            "graphfuse.v1.Info": InfoServicer(self.service),
            "graphfuse.v1.Embedder": EmbedderServicer(self.service),
            "graphfuse.v1.Graphs": GraphsServicer(self.service),
            "graphfuse.v1.Reasoner": ReasonerServicer(self.service),
        }
        pb_grpc.add_InfoServicer_to_server(servicers["graphfuse.v1.Info"], self.server)
        pb_grpc.add_EmbedderServicer_to_server(servicers["graphfuse.v1.Embedder"], self.server)
        pb_grpc.add_GraphsServicer_to_server(servicers["graphfuse.v1.Graphs"], self.server)
        pb_grpc.add_ReasonerServicer_to_server(servicers["graphfuse.v1.Reasoner"], self.server)
        self.gateway = (
            _gateway()(servicers, interceptors, lambda: self.serving, config.max_message_bytes)
            if config.http_port is not None
            else None
        )
        self.http_port: int | None = None
        self.serving = False  # health SERVING: loaded, and caught up with the update stream
        self.consumer: UpdateConsumer | None = None
        self.kafka: KafkaUpdates | None = None
        self._consuming: asyncio.Task[None] | None = None
        self.snapshots: JetStreamSnapshots | S3Snapshots | None = None
        self.snapshotter: Snapshotter | None = None  # with --nats: `await snapshotter.snapshot()` takes one
        self.restored: SnapshotInfo | None = None  # the snapshot this replica started from
        self._snapshotting: asyncio.Task[None] | None = None
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (
                *SERVICE_NAMES,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            self.server,
        )
        if credentials is not None:
            self.port = self.server.add_secure_port(config.address, credentials)
        else:
            self.port = self.server.add_insecure_port(config.address)
        if self.port == 0:
            raise OSError(f"could not bind {config.address}")
        self.tls = credentials is not None

    async def _set_health(self, status: int) -> None:
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, status)

    async def listen(self) -> None:
        """Accept connections with health NOT_SERVING; calls get UNAVAILABLE until :meth:`start` is done."""
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.server.start()
        if self.config.metrics_port is not None:
            self.metrics_port = self.metrics.serve(self.config.host, self.config.metrics_port)
        if self.gateway is not None:
            assert self.config.http_port is not None
            self.http_port = await self.gateway.start(self.config.host, self.config.http_port)
        log.info(
            "listening on %s:%d (%s; not serving until ready)",
            self.config.host,
            self.port,
            "TLS" if self.tls else "plaintext",
        )

    async def start(self) -> None:
        """Listen at once, load the model and graphs and warm up, then report SERVING."""
        started = time.perf_counter()
        await self.listen()
        if self.config.nats_url and self.config.kafka_bootstrap:
            raise ValueError("give --nats or --kafka, not both")
        source = await self._connect_stream(self.config.nats_url) if self.config.nats_url else None
        if self.config.kafka_bootstrap:
            await self._connect_kafka(self.config.kafka_bootstrap)
        await self.service.start()
        self.jobs.start()
        if source is not None:
            await self._consume(source)
        if self.kafka is not None:
            await self._consume_kafka(self.kafka)
        await self._set_health(health_pb2.HealthCheckResponse.SERVING)
        self.serving = True
        log.info("serving on %s:%d after %.1f s", self.config.host, self.port, time.perf_counter() - started)

    async def _connect_stream(self, url: str) -> JetStreamSource:
        """Connect to the update stream and its snapshots; a fresh replica (no store yet) installs the newest
        snapshot of the stream first, so that it applies only the updates after it."""
        source = JetStreamSource(
            url, replicas=self.config.stream_replicas, publish_records=self.config.stream_batch_records
        )
        self.consumer = UpdateConsumer(self.service, source)
        await source.connect()
        await self._restore_if_fresh(
            JetStreamSnapshots(url, replicas=self.config.stream_replicas), source.epoch
        )
        return source

    async def _restore_if_fresh(self, snapshots: JetStreamSnapshots | S3Snapshots, epoch: str) -> None:
        """Connect to the snapshot store; a data directory without a store installs the newest snapshot of
        the stream of ``epoch`` (unless --no-snapshot-restore)."""
        self.snapshots = snapshots
        await snapshots.connect()
        if self.config.snapshot_restore and not (self.config.data_dir / DB_FILENAME).exists():
            self.restored = await restore_newest(snapshots, self.config.data_dir, epoch)

    def _take_snapshots(self, streams: str | list[str], epoch: str, applied: Callable[[], int]) -> None:
        """Take snapshots every --snapshot-every seconds (0: only when `snapshotter.snapshot()` is called)."""
        assert self.service.store is not None and self.snapshots is not None
        every = self.config.snapshot_every
        self.snapshotter = Snapshotter(self.service.store, self.snapshots, streams, epoch, applied, every)
        if every > 0:
            self._snapshotting = asyncio.create_task(self.snapshotter.run_forever())

    async def _consume(self, source: JetStreamSource) -> None:
        """Apply the update stream from now on, Ingest through it, and catch up to within the allowed lag
        (health stays NOT_SERVING until then); then take snapshots every --snapshot-every seconds."""
        consumer = self.consumer
        assert consumer is not None and self.service.store is not None and self.snapshots is not None
        stored, first = await self.service.stream_position(source.name), await source.first_sequence()
        if stored + 1 < first:
            log.error(
                "this replica applied the update stream up to sequence %d, but the stream now begins at %d: "
                "updates it never applied were removed; start it on an empty data directory to install a "
                "snapshot",
                stored,
                first,
            )
        self.service.publisher, self.service.consumer = source, consumer
        self._consuming = asyncio.create_task(consumer.run_forever())
        wanted = await source.last_sequence() - self.config.stream_max_lag
        if wanted > consumer.applied:
            log.info("catching up on the update stream: to sequence %d (at %d)", wanted, consumer.applied)
            await consumer.wait_for(wanted, None)
        self._take_snapshots(source.name, source.epoch, lambda: consumer.applied)

    async def _connect_kafka(self, bootstrap: str) -> None:
        """Connect to the Kafka update topic and, with --snapshot-s3, its snapshots; a fresh replica (no store
        yet) installs the newest snapshot first, so that it applies only the updates after it."""
        config = self.config
        self.kafka = KafkaUpdates(
            self.service,
            bootstrap,
            config.kafka_topic,
            config.kafka_dead_letter_topic,
            config.kafka_partitions,
            publish_records=config.stream_batch_records,
        )
        await self.kafka.connect()
        if config.snapshot_s3:
            await self._restore_if_fresh(
                S3Snapshots(config.snapshot_s3, config.s3_endpoint), self.kafka.epoch
            )

    async def _consume_kafka(self, kafka: KafkaUpdates) -> None:
        """Apply the Kafka update topic from each partition's stored offset on, Ingest through it, and catch
        up to within the allowed lag (health stays NOT_SERVING until then); then, with --snapshot-s3, take
        snapshots every --snapshot-every seconds."""
        self.service.publisher = self.service.consumer = kafka
        kafka.start()
        await kafka.catch_up(self.config.stream_max_lag)
        if self.snapshots is not None:
            self._take_snapshots(
                [source.name for source in kafka.sources], kafka.epoch, lambda: kafka.applied
            )

    async def stop(self) -> None:
        """NOT_SERVING, stop accepting, let in-flight calls finish within the grace period, close store."""
        self.serving = False
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        if self.gateway is not None:
            await self.gateway.stop()
        if self._snapshotting is not None:
            self._snapshotting.cancel()
            await asyncio.gather(self._snapshotting, return_exceptions=True)
        if self.consumer is not None:
            await self.consumer.stop()
        if self.kafka is not None:
            await self.kafka.stop()
        if self._consuming is not None:
            self._consuming.cancel()  # unacknowledged messages are delivered again after the restart
            await asyncio.gather(self._consuming, return_exceptions=True)
        if self.snapshots is not None:
            await self.snapshots.close()
        await self.server.stop(self.config.grace_seconds)
        await self.jobs.close()
        await self.service.close()
        self.metrics.close()
        log.info("stopped")


def _credentials(config: ServerConfig) -> grpc.ServerCredentials | None:
    """TLS server credentials from the configured PEM files (client certificates required with a CA)."""
    if config.tls_cert is None and config.tls_key is None:
        if config.tls_client_ca is not None:
            raise ValueError("--tls-client-ca needs --tls-cert and --tls-key")
        return None
    if config.tls_cert is None or config.tls_key is None:
        raise ValueError("--tls-cert and --tls-key go together")
    try:
        chain = (config.tls_key.read_bytes(), config.tls_cert.read_bytes())
        client_ca = config.tls_client_ca.read_bytes() if config.tls_client_ca else None
    except OSError as error:
        raise ValueError(f"cannot read a TLS file: {error}") from None
    return grpc.ssl_server_credentials(
        [chain], root_certificates=client_ca, require_client_auth=bool(client_ca)
    )


def _tokens(config: ServerConfig) -> TokenTable | None:
    if config.tokens_file is not None and config.token:
        raise ValueError("give --tokens FILE or --token, not both")
    if config.tokens_file is not None:
        return TokenTable.from_file(config.tokens_file)
    if config.token:
        return TokenTable.single(config.token)
    return None


async def serve(config: ServerConfig) -> None:
    """Run until SIGINT or SIGTERM, then shut down gracefully."""
    app = App(config)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    print(f"graphfuse listening on {config.host}:{app.port}", flush=True)
    starting = asyncio.create_task(app.start())
    await asyncio.wait([starting, asyncio.create_task(stopping.wait())], return_when=asyncio.FIRST_COMPLETED)
    try:
        if starting.done():
            starting.result()  # a failed start (bad model, device or precision) raises here, after stop
            if app.metrics_port is not None:
                print(f"graphfuse metrics on http://{config.host}:{app.metrics_port}/metrics", flush=True)
            if app.http_port is not None:
                print(f"graphfuse http on http://{config.host}:{app.http_port}/", flush=True)
            print(f"graphfuse ready on {config.host}:{app.port}", flush=True)
            await stopping.wait()
        else:
            starting.cancel()
    finally:
        await app.stop()


def _gateway() -> type:
    """The HTTP/JSON gateway class; it needs the ``http`` extra (aiohttp)."""
    try:
        from graphfuse.server.transport.gateway import Gateway  # noqa: PLC0415 - an optional feature
    except ModuleNotFoundError as error:
        raise RuntimeError("--http-port needs the HTTP gateway: pip install 'graphfuse[http]'") from error
    return Gateway
