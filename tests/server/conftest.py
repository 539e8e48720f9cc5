"""A real graphfuse server on a free port, in a background event loop, shared by the server tests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from graphfuse.server.app import App
from graphfuse.server.client import Client
from graphfuse.server.core.config import ServerConfig


class RunningServer:
    """Runs :class:`App` on its own event loop thread; tests talk to it over a real channel."""

    def __init__(self, config: ServerConfig, start_service: bool = True) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.app: App = self._run(self._create(config))
        if start_service:
            self._run(self.app.start())
        self.target = f"127.0.0.1:{self.app.port}"

    @staticmethod
    async def _create(config: ServerConfig) -> App:
        return App(config)

    def _run(self, coroutine):  # noqa: ANN001, ANN202
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=300)

    def client(self) -> Client:
        return Client(self.target, timeout=60)

    def stop(self) -> None:
        self._run(self.app.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)


def server_config(data_dir: Path, demo: bool = True) -> ServerConfig:
    return ServerConfig(port=0, data_dir=data_dir, demo=demo, grace_seconds=1.0)


@pytest.fixture(scope="session")
def running_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = RunningServer(server_config(tmp_path_factory.mktemp("graphfuse-data")))
    yield server
    server.stop()


@pytest.fixture()
def client(running_server: RunningServer) -> Iterator[Client]:
    with running_server.client() as c:
        yield c
