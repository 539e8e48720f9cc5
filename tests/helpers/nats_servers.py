"""`nats-server` processes with JetStream on free loopback ports, for the tests and the benches: one node, or
a cluster whose nodes route to each other."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "nats-server"  # the Debian package that has the binary


def nats_binary() -> str | None:
    found = shutil.which("nats-server")
    if found:
        return found
    return "/usr/sbin/nats-server" if Path("/usr/sbin/nats-server").exists() else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {seconds} s") from None
            time.sleep(0.05)


@dataclass
class NatsNode:
    name: str
    port: int
    command: list[str]
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


class NatsCluster:
    """``size`` JetStream nodes (1 = a single server) storing under ``directory``; start with `start`."""

    def __init__(self, directory: Path, size: int = 1) -> None:
        binary = nats_binary()
        if binary is None:
            raise FileNotFoundError(f"needs Debian package '{PACKAGE}' (apt-get install {PACKAGE})")
        ports = [(free_port(), free_port()) for _ in range(size)]
        routes = ",".join(f"nats://127.0.0.1:{cluster}" for _, cluster in ports)
        self.nodes = []
        for i, (port, cluster) in enumerate(ports):
            command = [binary, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(directory / f"n{i}")]
            if size > 1:
                command += [
                    "-n",
                    f"n{i}",
                    "--cluster_name",
                    "graphfuse",
                    "--cluster",
                    f"nats://127.0.0.1:{cluster}",
                ]
                command += ["--routes", routes]
            self.nodes.append(NatsNode(f"n{i}", port, command))

    @property
    def url(self) -> str:
        """Every node's URL, comma-separated (clients fail over between them)."""
        return ",".join(node.url for node in self.nodes)

    def start(self) -> NatsCluster:
        for node in self.nodes:
            node.start()
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
