"""Snapshots of a replica, so that a fresh replica starts from one instead of replaying the update stream.

A snapshot is one tar archive: ``graphfuse.db``, a consistent copy of the store (SQLite's online backup API:
graphs, entities, cached name embeddings and the stream positions, so the stream sequence it covers is the
one stored with its records), and every file under ``checkpoints/`` (trained models). It is tagged with that
sequence and with the stream's epoch (its creation time): a snapshot of a stream that was since deleted and
created again is never used.

Snapshots live in a snapshot store behind a small interface (:class:`SnapshotStore`: list, put, get), as
updates come from an UpdateSource; :class:`JetStreamSnapshots` keeps them in the JetStream object store,
:class:`S3Snapshots` in an S3-compatible bucket (for replicas that reach only Kafka and an object store). A
replica started with ``--snapshot-every SECONDS`` (:class:`Snapshotter`) or ``graphfuse snapshot``
(:func:`snapshot_data_dir`) writes them; a replica whose data directory has no store yet installs the
newest one before it opens its store (:func:`restore_newest`), then consumes the stream after its sequence.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from graphfuse.server.replication.stream import JetStreamSource, import_nats
from graphfuse.server.storage.checkpoints import CHECKPOINT_DIR
from graphfuse.server.storage.store import DB_FILENAME, GraphStore, StoreError

log = logging.getLogger(__name__)

BUCKET = "GRAPHFUSE_SNAPSHOTS"
SEQUENCE_HEADER = "Graphfuse-Sequence"
EPOCH_HEADER = "Graphfuse-Epoch"
LIST_SECONDS = 10.0  # listing the bucket takes longer only when JetStream does not answer
GET_BYTES_PER_SECOND = 5_000_000  # a download slower than this (after 60 s) has stalled


class SnapshotError(RuntimeError):
    """A snapshot could not be written, read or installed; nothing was installed."""


@dataclass(frozen=True)
class SnapshotInfo:
    """A stored snapshot: its name, the last update-stream sequence its store holds, the stream's epoch."""

    name: str
    sequence: int
    epoch: str
    size: int = 0


class SnapshotStore(Protocol):
    """Where snapshots are kept (the JetStream object store now; S3 or a shared disk would do the same)."""

    async def list(self) -> list[SnapshotInfo]:
        """Every stored snapshot, newest (highest sequence) first; none when the store is empty."""
        ...

    async def put(self, archive: Path, info: SnapshotInfo) -> None:
        """Store the archive file as ``info`` (a snapshot of the same name is replaced)."""
        ...

    async def get(self, info: SnapshotInfo, archive: Path) -> None:
        """Write the snapshot to the file ``archive``; raises SnapshotError when it cannot be read whole."""
        ...

    async def close(self) -> None: ...


# ----------------------------------------------------------------------------------------- archives
def write_snapshot(store: GraphStore, archive: Path, stream: str | Sequence[str]) -> int:
    """Write a snapshot of ``store`` and the checkpoints beside it to the tar file ``archive``; returns the
    last sequence of ``stream`` the copy holds (of several, such as a Kafka topic's partitions, the sum of
    their positions). Runs beside a live store: writers go on meanwhile."""
    streams = [stream] if isinstance(stream, str) else list(stream)
    data_dir = store.data_dir
    with tempfile.TemporaryDirectory(dir=data_dir, prefix=".snapshot-") as tmp:
        copy = Path(tmp) / DB_FILENAME
        store.backup(copy)
        with GraphStore(tmp) as copied:  # checks the copy (quick_check) before anyone installs it
            sequence = sum(copied.stream_position(name) for name in streams)
        with tarfile.open(archive, "w") as tar:
            tar.add(copy, DB_FILENAME)
            for path in _checkpoint_files(data_dir):
                tar.add(path, path.relative_to(data_dir).as_posix())
    return sequence


def install_snapshot(archive: Path, data_dir: Path) -> None:
    """Unpack a snapshot into ``data_dir``, which has no store yet: the checkpoints first and the store last,
    so that an install cut short leaves no store (and the next start installs again).

    Raises:
        SnapshotError: ``data_dir`` has a store, or the archive is not a readable snapshot.
    """
    if (data_dir / DB_FILENAME).exists():
        raise SnapshotError(f"{data_dir} has a store already; a snapshot goes only into a fresh one")
    data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=data_dir, prefix=".snapshot-") as tmp:
        staging = Path(tmp)
        _unpack(archive, staging)
        try:
            GraphStore(staging).close()  # a damaged or foreign copy is refused before it is installed
        except StoreError as error:
            raise SnapshotError(f"the snapshot's store is not usable: {error}") from error
        for path in _checkpoint_files(staging):
            target = data_dir / path.relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
        store = staging / DB_FILENAME
        with store.open("rb") as file:
            os.fsync(file.fileno())
        os.replace(store, data_dir / DB_FILENAME)


def _unpack(archive: Path, staging: Path) -> None:
    """Extract the store and the checkpoints of ``archive``; anything else in it is refused."""
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for member in members:
                if not _expected(member):
                    raise SnapshotError(f"the snapshot holds {member.name!r}: not a store or a checkpoint")
            tar.extractall(staging, members, filter="data")
    except (tarfile.TarError, OSError) as error:
        raise SnapshotError(f"the snapshot is not a readable archive: {error}") from error
    if not (staging / DB_FILENAME).is_file():
        raise SnapshotError(f"the snapshot holds no {DB_FILENAME}")


def _expected(member: tarfile.TarInfo) -> bool:
    """Whether an archive member is the store or a file or folder under ``checkpoints/``."""
    parts = PurePosixPath(member.name).parts
    if member.name == DB_FILENAME:
        return member.isfile()
    return parts[:1] == (CHECKPOINT_DIR,) and ".." not in parts and (member.isfile() or member.isdir())


def _checkpoint_files(data_dir: Path) -> list[Path]:
    """Files under ``checkpoints/``, without the temporary files of a checkpoint being written."""
    folder = data_dir / CHECKPOINT_DIR
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def superseded(stored: list[SnapshotInfo], info: SnapshotInfo, keep: int) -> list[SnapshotInfo]:
    """The snapshots to delete once ``info`` is stored beside ``stored`` (newest first): all but the newest
    ``keep - 1`` others of its epoch, and every one of another epoch."""
    others = [i for i in stored if i.name != info.name]
    kept = [i for i in others if i.epoch == info.epoch][: keep - 1]
    return [i for i in others if i not in kept]


# ------------------------------------------------------------------------------------- taking, restoring
async def take_snapshot(
    store: GraphStore, snapshots: SnapshotStore, stream: str | Sequence[str], epoch: str
) -> SnapshotInfo:
    """Write a snapshot of ``store`` (on a worker thread) and put it in ``snapshots``."""
    with tempfile.TemporaryDirectory(dir=store.data_dir, prefix=".snapshot-") as tmp:
        archive = Path(tmp) / "snapshot.tar"
        sequence = await asyncio.to_thread(write_snapshot, store, archive, stream)
        info = SnapshotInfo(f"snapshot-{sequence:012d}", sequence, epoch, archive.stat().st_size)
        await snapshots.put(archive, info)
    log.info("stored snapshot %s (stream sequence %d, %d bytes)", info.name, sequence, info.size)
    return info


async def restore_newest(snapshots: SnapshotStore, data_dir: Path, epoch: str) -> SnapshotInfo | None:
    """Install the newest snapshot of the stream of ``epoch`` into ``data_dir`` (which has no store); the
    one installed, or None when there is none that can be read (the replica then replays the stream)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        stored = await snapshots.list()
    except SnapshotError as error:
        log.warning("no snapshot installed: %s", error)
        return None
    for info in stored:
        if info.epoch != epoch:
            continue
        with tempfile.TemporaryDirectory(dir=data_dir, prefix=".snapshot-") as tmp:
            archive = Path(tmp) / "snapshot.tar"
            try:
                await snapshots.get(info, archive)
                await asyncio.to_thread(install_snapshot, archive, data_dir)
            except SnapshotError as error:
                log.warning("snapshot %s not installed: %s", info.name, error)
                continue
        log.info("installed snapshot %s: the store as of stream sequence %d", info.name, info.sequence)
        return info
    return None


class Snapshotter:
    """Stores a snapshot of this replica every ``every`` seconds, once it has applied updates past the newest
    stored snapshot of its stream (so replicas that all take snapshots store few of them).

    Args:
        store: the replica's store.
        snapshots: where snapshots go.
        stream: the update source's name (its position in the store), or the names of several.
        epoch: the update source's epoch.
        applied: the last stream sequence the replica applied.
        every: seconds between looks (0: only when `snapshot` is called).
    """

    def __init__(
        self,
        store: GraphStore,
        snapshots: SnapshotStore,
        stream: str | Sequence[str],
        epoch: str,
        applied: Callable[[], int],
        every: float = 0.0,
    ) -> None:
        self.store = store
        self.snapshots = snapshots
        self.stream = stream
        self.epoch = epoch
        self.applied = applied
        self.every = every

    async def run_forever(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            try:
                await self.snapshot()
            except Exception:  # noqa: BLE001 - logged; the next period tries again
                log.exception("storing a snapshot failed; trying again in %.0f s", self.every)

    async def snapshot(self) -> SnapshotInfo | None:
        """Store a snapshot now, unless the newest stored one is as far along; the one stored, or None."""
        applied = self.applied()
        newest = next((i for i in await self.snapshots.list() if i.epoch == self.epoch), None)
        if applied == 0 or (newest is not None and newest.sequence >= applied):
            return None
        return await take_snapshot(self.store, self.snapshots, self.stream, self.epoch)


async def snapshot_data_dir(data_dir: Path, url: str, replicas: int = 1) -> SnapshotInfo:
    """Store a snapshot of a replica's data directory in the JetStream object store at ``url`` (the replica
    may be running: the copy is consistent all the same); `graphfuse snapshot`."""
    if not (data_dir / DB_FILENAME).exists():
        raise SnapshotError(f"{data_dir} has no store ({DB_FILENAME})")
    source = JetStreamSource(url, replicas=replicas)
    snapshots = JetStreamSnapshots(url, replicas=replicas)
    try:
        await source.connect()
        await snapshots.connect()
        with GraphStore(data_dir) as store:
            return await take_snapshot(store, snapshots, source.name, source.epoch)
    finally:
        await snapshots.close()
        await source.close()


async def snapshot_data_dir_s3(data_dir: Path, url: str, endpoint: str | None, topic: str) -> SnapshotInfo:
    """Store a snapshot of a Kafka replica's data directory in the S3 bucket at ``url``; `graphfuse snapshot
    --snapshot-s3`. The replica may be running."""
    from graphfuse.server.replication.kafka import partition_prefix, topic_epoch

    if not (data_dir / DB_FILENAME).exists():
        raise SnapshotError(f"{data_dir} has no store ({DB_FILENAME})")
    snapshots = S3Snapshots(url, endpoint)
    try:
        await snapshots.connect()
        with GraphStore(data_dir) as store:
            streams = sorted(store.stream_positions(partition_prefix(topic)))
            if not streams:
                raise SnapshotError(f"{data_dir} applied nothing from Kafka topic {topic!r}")
            return await take_snapshot(store, snapshots, streams, topic_epoch(topic))
    finally:
        await snapshots.close()


# ---------------------------------------------------------------------------------------- JetStream
class JetStreamSnapshots:
    """Snapshots in the JetStream object store bucket ``GRAPHFUSE_SNAPSHOTS`` (created by the first put), one
    object ``snapshot-<sequence>`` each, tagged with the headers ``Graphfuse-Sequence`` and
    ``Graphfuse-Epoch``. After a put, only the newest ``keep`` snapshots of its epoch are kept.

    Args:
        url: NATS server URL(s), comma-separated for a cluster.
        replicas: copies JetStream keeps of the bucket, when this creates it.
        keep: snapshots kept (more than one, so that a replica downloading the previous one still can).
    """

    def __init__(self, url: str, replicas: int = 1, keep: int = 2) -> None:
        self.url = url
        self.replicas = replicas
        self.keep = keep
        self._nc: Any = None
        self._js: Any = None

    async def connect(self) -> None:
        nats = import_nats()
        self._nc = await nats.connect(servers=self.url.split(","), max_reconnect_attempts=-1)
        self._js = self._nc.jetstream()

    async def _bucket(self, create: bool = False) -> Any:
        """The bucket, created when missing and ``create``; None when missing."""
        from nats.js.api import ObjectStoreConfig
        from nats.js.errors import BucketNotFoundError

        try:
            return await self._js.object_store(BUCKET)
        except BucketNotFoundError:
            if not create:
                return None
        config = ObjectStoreConfig(description="graphfuse replica snapshots", replicas=self.replicas)
        return await self._js.create_object_store(BUCKET, config=config)

    async def list(self) -> list[SnapshotInfo]:
        from nats.errors import Error as NatsError
        from nats.js.errors import NotFoundError

        try:
            bucket = await self._bucket()
            if bucket is None:
                return []
            objects = await asyncio.wait_for(bucket.list(ignore_deletes=True), LIST_SECONDS)
        except NotFoundError:  # an empty bucket
            return []
        except (NatsError, TimeoutError) as error:
            raise SnapshotError(f"listing the snapshots failed ({type(error).__name__}: {error})") from error
        infos = [info for info in map(_snapshot_info, objects) if info is not None]
        return sorted(infos, key=lambda info: info.sequence, reverse=True)

    async def put(self, archive: Path, info: SnapshotInfo) -> None:
        from nats.errors import Error as NatsError
        from nats.js.api import ObjectMeta

        headers = {SEQUENCE_HEADER: [str(info.sequence)], EPOCH_HEADER: [info.epoch]}  # as Go's nats.Header
        meta = ObjectMeta(name=info.name, description=f"stream sequence {info.sequence}", headers=headers)
        try:
            bucket = await self._bucket(create=True)
            with archive.open("rb") as file:
                await bucket.put(info.name, file, meta=meta)
            for old in superseded(await self.list(), info, self.keep):
                await bucket.delete(old.name)
        except (NatsError, TimeoutError) as error:
            raise SnapshotError(f"storing {info.name} failed ({type(error).__name__}: {error})") from error

    async def get(self, info: SnapshotInfo, archive: Path) -> None:
        from nats.errors import Error as NatsError

        try:
            bucket = await self._bucket()
            if bucket is None:
                raise SnapshotError(f"no snapshot bucket {BUCKET}")
            with archive.open("wb") as file:
                seconds = 60 + info.size / GET_BYTES_PER_SECOND  # a snapshot deleted meanwhile never ends
                await asyncio.wait_for(bucket.get(info.name, writeinto=file), seconds)
        except (NatsError, TimeoutError) as error:
            raise SnapshotError(f"reading {info.name} failed ({type(error).__name__}: {error})") from error

    async def close(self) -> None:
        if self._nc is not None and not self._nc.is_closed:
            await self._nc.close()


def _snapshot_info(entry: Any) -> SnapshotInfo | None:
    """A bucket entry as a snapshot; None for an object without our headers."""
    headers = entry.headers or {}
    sequence, epoch = (_header(headers, name) for name in (SEQUENCE_HEADER, EPOCH_HEADER))
    if not sequence.isdigit():
        return None
    return SnapshotInfo(entry.name, int(sequence), epoch, entry.size or 0)


def _header(headers: dict, name: str) -> str:
    """A header's (first) value: Go's nats.Header holds lists of strings; a plain string is read too."""
    value = headers.get(name, "")
    if isinstance(value, list):
        value = value[0] if value else ""
    return value if isinstance(value, str) else ""


# ----------------------------------------------------------------------------------------------- S3
class S3Snapshots:
    """Snapshots in an S3-compatible bucket (AWS S3, MinIO, Ceph, ...), one object
    ``<prefix>snapshot-<sequence>.tar`` each, with the sequence and the stream's epoch in its metadata
    (``graphfuse-sequence``, ``graphfuse-epoch``). Credentials come from boto3's usual chain (environment,
    profile, instance role). After a put, only the newest ``keep`` snapshots of its epoch are kept.

    Args:
        url: ``s3://BUCKET[/PREFIX]`` (the bucket is created when missing).
        endpoint: the object store's URL when it is not AWS's (``http://minio:9000``).
        keep: snapshots kept.
    """

    def __init__(self, url: str, endpoint: str | None = None, keep: int = 2) -> None:
        if not url.startswith("s3://") or not url[5:].split("/", 1)[0]:
            raise ValueError(f"Expected an s3://BUCKET[/PREFIX] URL (got {url!r})")
        bucket, _, prefix = url[5:].partition("/")
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.endpoint = endpoint
        self.keep = keep
        self._client: Any = None

    async def connect(self) -> None:
        boto3 = import_boto3()
        self._client = await asyncio.to_thread(boto3.client, "s3", endpoint_url=self.endpoint)

    async def _call(self, what: str, method: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return await asyncio.to_thread(getattr(self._client, method), **kwargs)
        except (BotoCoreError, ClientError) as error:
            raise SnapshotError(f"{what} failed ({type(error).__name__}: {error})") from error

    async def list(self) -> list[SnapshotInfo]:
        from botocore.exceptions import ClientError

        try:
            listed = await asyncio.to_thread(
                self._client.list_objects_v2, Bucket=self.bucket, Prefix=f"{self.prefix}snapshot-"
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "NoSuchBucket":
                return []
            raise SnapshotError(f"listing the snapshots failed ({error})") from error
        infos = []
        for entry in listed.get("Contents", []):
            head = await self._call(
                "reading a snapshot's metadata", "head_object", Bucket=self.bucket, Key=entry["Key"]
            )
            meta = head.get("Metadata", {})
            sequence = meta.get("graphfuse-sequence", "")
            if sequence.isdigit():
                name = entry["Key"][len(self.prefix) :].removesuffix(".tar")
                infos.append(
                    SnapshotInfo(name, int(sequence), meta.get("graphfuse-epoch", ""), entry["Size"])
                )
        return sorted(infos, key=lambda info: info.sequence, reverse=True)

    async def put(self, archive: Path, info: SnapshotInfo) -> None:
        from botocore.exceptions import ClientError

        try:
            await asyncio.to_thread(self._client.head_bucket, Bucket=self.bucket)
        except ClientError:
            await self._call(f"creating bucket {self.bucket}", "create_bucket", Bucket=self.bucket)
        metadata = {"graphfuse-sequence": str(info.sequence), "graphfuse-epoch": info.epoch}
        await self._call(
            f"storing {info.name}",
            "upload_file",
            Filename=str(archive),
            Bucket=self.bucket,
            Key=self._key(info),
            ExtraArgs={"Metadata": metadata},
        )
        for old in superseded(await self.list(), info, self.keep):
            await self._call(f"deleting {old.name}", "delete_object", Bucket=self.bucket, Key=self._key(old))

    async def get(self, info: SnapshotInfo, archive: Path) -> None:
        await self._call(
            f"reading {info.name}",
            "download_file",
            Bucket=self.bucket,
            Key=self._key(info),
            Filename=str(archive),
        )

    async def close(self) -> None:
        if self._client is not None:
            await asyncio.to_thread(self._client.close)
            self._client = None

    def _key(self, info: SnapshotInfo) -> str:
        return f"{self.prefix}{info.name}.tar"


def import_boto3() -> Any:
    """The AWS SDK; it needs the ``s3`` extra (boto3)."""
    try:
        import boto3  # noqa: PLC0415 - an optional feature
    except ModuleNotFoundError as error:
        raise RuntimeError("--snapshot-s3 needs boto3: pip install 'graphfuse[s3]'") from error
    return boto3
