"""Replica snapshots without NATS: archives written and installed, the periodic writer's rule, restoring
from an in-memory snapshot store (server/snapshots.py; the JetStream store is tested in test_stream.py)."""

from __future__ import annotations

import asyncio
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest

from graphfuse.gnn.data.records import EntityRecord, TripleRecord
from graphfuse.server.replication.snapshots import (
    SnapshotError,
    SnapshotInfo,
    Snapshotter,
    install_snapshot,
    restore_newest,
    write_snapshot,
)
from graphfuse.server.storage.store import DB_FILENAME, GraphStore

STREAM = "nats:TEST"


class MemorySnapshots:
    """A SnapshotStore in memory; ``broken`` names snapshots whose download fails."""

    def __init__(self) -> None:
        self.stored: dict[str, tuple[SnapshotInfo, bytes]] = {}
        self.broken: set[str] = set()

    async def list(self) -> list[SnapshotInfo]:
        return sorted((info for info, _ in self.stored.values()), key=lambda i: i.sequence, reverse=True)

    async def put(self, archive: Path, info: SnapshotInfo) -> None:
        self.stored[info.name] = (info, archive.read_bytes())

    async def get(self, info: SnapshotInfo, archive: Path) -> None:
        if info.name in self.broken:
            raise SnapshotError(f"{info.name} cannot be read")
        archive.write_bytes(self.stored[info.name][1])

    async def close(self) -> None:
        pass


def replica_store(data_dir: Path, sequence: int) -> GraphStore:
    """A store with a graph written at stream ``sequence``, a cached embedding and a checkpoint beside it."""
    store = GraphStore(data_dir)
    store.create_graph("med", "a graph")
    records = [EntityRecord("drug_a", "Drug A", ("DA-1",)), TripleRecord("drug_a", "treats", "cough")]
    store.write("med", records, (STREAM, sequence))
    store.put_embeddings("model", {"Drug A": np.ones(4, dtype=np.float32)})
    (data_dir / "checkpoints" / "link").mkdir(parents=True)
    (data_dir / "checkpoints" / "med.pt").write_bytes(b"reasoner")
    (data_dir / "checkpoints" / "link" / "med.pt").write_bytes(b"link predictor")
    (data_dir / "checkpoints" / ".med.pt.x.tmp").write_bytes(b"half written")
    return store


def test_a_snapshot_carries_the_store_its_position_and_the_checkpoints(tmp_path: Path) -> None:
    with replica_store(tmp_path / "a", 7) as store:
        assert write_snapshot(store, tmp_path / "snapshot.tar", STREAM) == 7
        graph = store.read_graph("med")
    install_snapshot(tmp_path / "snapshot.tar", tmp_path / "b")
    with GraphStore(tmp_path / "b") as copy:
        assert copy.read_graph("med") == graph and copy.stream_position(STREAM) == 7
        assert copy.get_embeddings("model", ["Drug A"])["Drug A"].tolist() == [1.0] * 4
    assert (tmp_path / "b" / "checkpoints" / "med.pt").read_bytes() == b"reasoner"
    assert (tmp_path / "b" / "checkpoints" / "link" / "med.pt").read_bytes() == b"link predictor"
    assert not (tmp_path / "b" / "checkpoints" / ".med.pt.x.tmp").exists()
    installed = sorted(p.name for p in (tmp_path / "b").iterdir())
    assert installed == ["checkpoints", DB_FILENAME, f"{DB_FILENAME}.clean"]  # `copy` closed cleanly
    with pytest.raises(SnapshotError, match="has a store already"):
        install_snapshot(tmp_path / "snapshot.tar", tmp_path / "b")


def archive(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize(
    ("members", "reason"),
    [
        ({"../graphfuse.db": b"x"}, "not a store or a checkpoint"),
        ({"checkpoints/../../x.pt": b"x"}, "not a store or a checkpoint"),
        ({"notes.txt": b"x"}, "not a store or a checkpoint"),
        ({"checkpoints/med.pt": b"x"}, "holds no graphfuse.db"),
        ({DB_FILENAME: b"not sqlite at all"}, "store is not usable"),
    ],
)
def test_a_foreign_or_damaged_archive_installs_nothing(
    tmp_path: Path, members: dict[str, bytes], reason: str
) -> None:
    with pytest.raises(SnapshotError, match=reason):
        install_snapshot(archive(tmp_path / "bad.tar", members), tmp_path / "data")
    assert not (tmp_path / "data" / DB_FILENAME).exists() and not (tmp_path / "x.pt").exists()
    with pytest.raises(SnapshotError, match="not a readable archive"):
        install_snapshot(tmp_path / "data" / "missing.tar", tmp_path / "data")


def test_snapshots_are_taken_only_past_the_newest_stored(tmp_path: Path) -> None:
    snapshots = MemorySnapshots()
    applied = [0]
    with replica_store(tmp_path / "a", 7) as store:
        snapshotter = Snapshotter(store, snapshots, STREAM, "epoch-1", lambda: applied[0])
        assert asyncio.run(snapshotter.snapshot()) is None  # nothing applied yet
        applied[0] = 7
        taken = asyncio.run(snapshotter.snapshot())
        assert taken is not None and (taken.sequence, taken.epoch) == (7, "epoch-1") and taken.size > 0
        assert asyncio.run(snapshotter.snapshot()) is None  # nothing new since
        snapshots.stored["other"] = (SnapshotInfo("other", 99, "epoch-0"), b"")  # an older stream's
        store.write("med", [TripleRecord("drug_a", "treats", "flu")], (STREAM, 8))
        applied[0] = 8
        assert asyncio.run(snapshotter.snapshot()).sequence == 8
    assert [info.sequence for info in asyncio.run(snapshots.list())] == [99, 8, 7]


def test_restoring_takes_the_newest_readable_snapshot_of_the_stream(tmp_path: Path) -> None:
    snapshots = MemorySnapshots()
    for sequence in (5, 7):
        with replica_store(tmp_path / f"r{sequence}", sequence) as store:
            write_snapshot(store, tmp_path / f"{sequence}.tar", STREAM)
        asyncio.run(snapshots.put(tmp_path / f"{sequence}.tar", SnapshotInfo(f"s{sequence}", sequence, "e1")))
    snapshots.stored["s9"] = (SnapshotInfo("s9", 9, "e0"), b"")  # of a stream since created again
    snapshots.broken.add("s7")
    assert asyncio.run(restore_newest(snapshots, tmp_path / "fresh", "e1")).sequence == 5
    with GraphStore(tmp_path / "fresh") as restored:
        assert restored.stream_position(STREAM) == 5
    assert asyncio.run(restore_newest(MemorySnapshots(), tmp_path / "empty", "e1")) is None
    assert not (tmp_path / "empty" / DB_FILENAME).exists()
