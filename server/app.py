"""Server assembly: servicers, health, reflection; start-up, readiness and graceful shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal
import time

import grpc
from graphfuse.v1 import graphfuse_pb2 as pb
from graphfuse.v1 import graphfuse_pb2_grpc as pb_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from server.config import ServerConfig
from server.service import GraphService
from server.servicer import EmbedderServicer, GraphsServicer, InfoServicer, ReasonerServicer

log = logging.getLogger(__name__)
SERVICE_NAMES = tuple(
    pb.DESCRIPTOR.services_by_name[name].full_name for name in ("Info", "Embedder", "Graphs", "Reasoner")
)


class App:
    """A running graphfuse server: the gRPC server, its service layer and its health status."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.service = GraphService(config)
        options = [
            ("grpc.max_send_message_length", config.max_message_bytes),
            ("grpc.max_receive_message_length", config.max_message_bytes),
        ]
        self.server = grpc.aio.server(options=options)
        pb_grpc.add_InfoServicer_to_server(InfoServicer(self.service), self.server)
        pb_grpc.add_EmbedderServicer_to_server(EmbedderServicer(self.service), self.server)
        pb_grpc.add_GraphsServicer_to_server(GraphsServicer(self.service), self.server)
        pb_grpc.add_ReasonerServicer_to_server(ReasonerServicer(self.service), self.server)
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
        self.port = self.server.add_insecure_port(config.address)
        if self.port == 0:
            raise OSError(f"could not bind {config.address}")

    async def _set_health(self, status: int) -> None:
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, status)

    async def listen(self) -> None:
        """Accept connections with health NOT_SERVING; calls get UNAVAILABLE until :meth:`start` is done."""
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.server.start()
        log.info("listening on %s:%d (not serving until ready)", self.config.host, self.port)

    async def start(self) -> None:
        """Listen at once, load the model and graphs and warm up, then report SERVING."""
        started = time.perf_counter()
        await self.listen()
        await self.service.start()
        await self._set_health(health_pb2.HealthCheckResponse.SERVING)
        log.info("serving on %s:%d after %.1f s", self.config.host, self.port, time.perf_counter() - started)

    async def stop(self) -> None:
        """NOT_SERVING, stop accepting, let in-flight calls finish within the grace period, close store."""
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.server.stop(self.config.grace_seconds)
        await self.service.close()
        log.info("stopped")


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
    if starting.done():
        starting.result()
        print(f"graphfuse ready on {config.host}:{app.port}", flush=True)
        await stopping.wait()
    else:
        starting.cancel()
    await app.stop()
