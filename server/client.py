"""Python clients of the public API: `Client` (blocking) and `AsyncClient` (asyncio); the CLI uses `Client`.

Both take one target or several: with several, calls are spread round-robin over them (gRPC's
``round_robin`` policy). Idempotent calls (Ask, Lookup, Link, Embed, Info, ListGraphs, GetGraphInfo) are
retried by gRPC itself on UNAVAILABLE, RESOURCE_EXHAUSTED and CANCELLED (a server shutting down cancels
the calls still running when its grace period ends), with exponential backoff, through the channel's
service config; a stopped server is skipped. Results are the generated message types.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from itertools import islice
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from graphfuse.gnn.data.records import Record, TripleColumns, TripleRecord
from graphfuse.server.record_messages import record_to_proto, triple_columns_to_proto
from graphfuse.v1 import graphfuse_pb2 as pb
from graphfuse.v1 import graphfuse_pb2_grpc as pb_grpc


class _CallDetails(grpc.ClientCallDetails):
    def __init__(self, details: grpc.ClientCallDetails, metadata: list[tuple[str, str]]) -> None:
        self.method = details.method
        self.timeout = details.timeout
        self.metadata = metadata
        self.credentials = details.credentials
        self.wait_for_ready = details.wait_for_ready
        self.compression = details.compression


class _BearerToken(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Sends ``authorization: Bearer <token>`` with every call (over TLS or plaintext loopback alike)."""

    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        return _CallDetails(details, [*(details.metadata or ()), self._header])

    def intercept_unary_unary(self, continuation, details, request):  # noqa: ANN001, ANN201
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):  # noqa: ANN001, ANN201
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation, details, requests):  # noqa: ANN001, ANN201
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation, details, requests):  # noqa: ANN001, ANN201
        return continuation(self._details(details), requests)


RETRIED = {
    "graphfuse.v1.Reasoner": ("Ask", "Lookup", "Link"),
    "graphfuse.v1.Embedder": ("Embed",),
    "graphfuse.v1.Info": ("Info",),
    "graphfuse.v1.Graphs": ("ListGraphs", "GetGraphInfo"),
}


def service_config(attempts: int = 4) -> str:
    """Round-robin over every address, and retries of the idempotent calls (``attempts`` in all)."""
    config: dict[str, Any] = {"loadBalancingConfig": [{"round_robin": {}}]}
    if attempts > 1:
        config["methodConfig"] = [
            {
                "name": [{"service": s, "method": m} for s, methods in RETRIED.items() for m in methods],
                "retryPolicy": {
                    "maxAttempts": min(attempts, 5),  # gRPC caps attempts at 5
                    "initialBackoff": "0.1s",
                    "maxBackoff": "2s",
                    "backoffMultiplier": 2,
                    # the server never answers CANCELLED itself: it comes from a shutdown's end of grace
                    "retryableStatusCodes": ["UNAVAILABLE", "RESOURCE_EXHAUSTED", "CANCELLED"],
                },
            }
        ]
    return json.dumps(config)


def channel_target(targets: str | Sequence[str]) -> str:
    """One gRPC target for ``host:port`` targets (a list, or one string with commas): several become an
    ``ipv4:``/``ipv6:`` address list, their host names resolved now."""
    if isinstance(targets, str):
        targets = [t.strip() for t in targets.split(",") if t.strip()]
    if not targets:
        raise ValueError("give at least one target (host:port)")
    if len(targets) == 1:
        return targets[0]
    addresses: list[tuple[int, str]] = []
    for target in targets:
        host, _, port = target.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"target {target!r} is not host:port")
        family, *_, sockaddr = socket.getaddrinfo(host.strip("[]"), int(port), type=socket.SOCK_STREAM)[0]
        ip = sockaddr[0]
        addresses.append((family, f"[{ip}]:{port}" if family == socket.AF_INET6 else f"{ip}:{port}"))
    if len({family for family, _ in addresses}) > 1:
        raise ValueError("targets mix IPv4 and IPv6 addresses; give one family")
    scheme = "ipv6" if addresses[0][0] == socket.AF_INET6 else "ipv4"
    return f"{scheme}:" + ",".join(address for _, address in addresses)


def _channel_args(
    tls: bool,
    tls_ca: bytes | None,
    tls_cert: bytes | None,
    tls_key: bytes | None,
    tls_server_name: str | None,
    retries: int,
) -> tuple[grpc.ChannelCredentials | None, list[tuple[str, Any]]]:
    options: list[tuple[str, Any]] = [
        ("grpc.service_config", service_config(retries)),
        ("grpc.enable_retries", 1 if retries > 1 else 0),
    ]
    if tls_server_name:
        options.append(("grpc.ssl_target_name_override", tls_server_name))
    if tls or tls_ca is not None or tls_cert is not None:
        return grpc.ssl_channel_credentials(tls_ca, tls_key, tls_cert), options
    return None, options


class _AsyncBearerToken:
    """``authorization: Bearer <token>`` on calls of an asyncio channel (one subclass per call kind: an
    asyncio channel files each interceptor under the first kind it implements)."""

    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        return details._replace(metadata=grpc.aio.Metadata(*(details.metadata or ()), self._header))

    @staticmethod
    def every_kind(token: str) -> list[grpc.aio.ClientInterceptor]:
        return [kind(token) for kind in (_UnaryUnary, _UnaryStream, _StreamUnary, _StreamStream)]


class _UnaryUnary(_AsyncBearerToken, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation, details, request):  # noqa: ANN001, ANN201
        return await continuation(self._details(details), request)


class _UnaryStream(_AsyncBearerToken, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation, details, request):  # noqa: ANN001, ANN201
        return await continuation(self._details(details), request)


class _StreamUnary(_AsyncBearerToken, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation, details, requests):  # noqa: ANN001, ANN201
        return await continuation(self._details(details), requests)


class _StreamStream(_AsyncBearerToken, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation, details, requests):  # noqa: ANN001, ANN201
        return await continuation(self._details(details), requests)


def _chunks(
    graph: str, records: Iterable[Record], chunk_size: int, create_graph: bool, wait_for_names: bool
) -> Iterator[pb.IngestChunk]:
    """The chunks of ``records``, each one's trailing triples sent as columns (no message per triple)."""
    it = iter(records)
    number = 0
    while batch := list(islice(it, chunk_size)):
        first = len(batch)
        while first and type(batch[first - 1]) is TripleRecord:
            first -= 1
        triples = TripleColumns.of(batch[first:]) if first < len(batch) else None  # type: ignore[arg-type]
        yield pb.IngestChunk(
            graph=graph,
            chunk_id=str(number),
            records=[record_to_proto(r) for r in batch[:first]],
            triples=triple_columns_to_proto(triples) if triples is not None else None,
            create_graph=create_graph,
            wait_for_names=wait_for_names,
        )
        number += 1


CLIENT_ARGS = """
    Args:
        target: ``host:port`` of the server, or several (a list, or one string with commas) to spread
            calls over round-robin.
        timeout: default deadline of each call, in seconds.
        token: bearer token sent with every call.
        tls_ca: PEM bytes of the CA that signed the server certificate; set (or ``tls=True`` for the
            system roots) to connect over TLS.
        tls_cert, tls_key: PEM bytes of a client certificate, for servers that require one.
        tls_server_name: the name to check the server certificate against, when it differs from the host.
        retries: attempts of an idempotent call on UNAVAILABLE, RESOURCE_EXHAUSTED or CANCELLED (1 = no
            retry, at most 5).
"""


class _Calls:
    """The calls both clients make: each returns the stub's result, i.e. the response message on
    `Client` and an awaitable of it on `AsyncClient`."""

    timeout: float
    info: pb_grpc.InfoStub
    embedder: pb_grpc.EmbedderStub
    graphs: pb_grpc.GraphsStub
    reasoner: pb_grpc.ReasonerStub

    def __init__(
        self,
        target: str | Sequence[str] = "localhost:50051",
        timeout: float = 30.0,
        *,
        token: str | None = None,
        tls: bool = False,
        tls_ca: bytes | None = None,
        tls_cert: bytes | None = None,
        tls_key: bytes | None = None,
        tls_server_name: str | None = None,
        retries: int = 4,
    ) -> None:
        self.target = channel_target(target)
        self.timeout = timeout
        credentials, options = _channel_args(tls, tls_ca, tls_cert, tls_key, tls_server_name, retries)
        self._stubs(self._open(credentials, options, token))

    def _open(self, credentials: grpc.ChannelCredentials | None, options: list, token: str | None) -> Any:
        """The channel the calls go over (a blocking or an asyncio one)."""
        raise NotImplementedError

    def _stubs(self, channel: Any) -> None:
        self.info = pb_grpc.InfoStub(channel)
        self.embedder = pb_grpc.EmbedderStub(channel)
        self.graphs = pb_grpc.GraphsStub(channel)
        self.reasoner = pb_grpc.ReasonerStub(channel)
        self.health = health_pb2_grpc.HealthStub(channel)

    def ask(
        self,
        question: str,
        graph: str = "",
        top_k: int = 0,
        max_hops: int = 0,
        topic_entities: Sequence[str] = (),
        truncate: bool = False,
        min_sequence: int = 0,
    ) -> pb.AskResponse:
        request = pb.AskRequest(
            graph=graph,
            question=question,
            top_k=top_k,
            max_hops=max_hops,
            topic_entities=list(topic_entities),
            truncation=pb.TRUNCATION_TRUNCATE if truncate else pb.TRUNCATION_REJECT,
            min_sequence=min_sequence,
        )
        return self.reasoner.Ask(request, timeout=self.timeout)

    def lookup(
        self,
        graph: str = "",
        head: str = "",
        relation: str = "",
        tail: str = "",
        top_k: int = 0,
        *,
        exclude_facts: bool = False,
        facts_only: bool = False,
        min_score: float = 0.0,
        no_evidence: bool = False,
        min_sequence: int = 0,
    ) -> pb.LookupResponse:
        request = pb.LookupRequest(
            graph=graph,
            head=head,
            relation=relation,
            tail=tail,
            top_k=top_k,
            exclude_facts=exclude_facts,
            facts_only=facts_only,
            min_score=min_score,
            no_evidence=no_evidence,
            min_sequence=min_sequence,
        )
        return self.reasoner.Lookup(request, timeout=self.timeout)

    def link(self, text: str, graph: str = "", top_k: int = 0) -> pb.LinkResponse:
        return self.reasoner.Link(pb.LinkRequest(graph=graph, text=text, top_k=top_k), timeout=self.timeout)

    def embed(self, texts: Sequence[str], truncate: bool = False) -> pb.EmbedResponse:
        truncation = pb.TRUNCATION_TRUNCATE if truncate else pb.TRUNCATION_REJECT
        return self.embedder.Embed(
            pb.EmbedRequest(texts=list(texts), truncation=truncation), timeout=self.timeout
        )

    def server_info(self) -> pb.InfoResponse:
        return self.info.Info(pb.InfoRequest(), timeout=self.timeout)

    def list_graphs(self) -> pb.ListGraphsResponse:
        return self.graphs.ListGraphs(pb.ListGraphsRequest(), timeout=self.timeout)

    def graph_info(self, graph: str) -> pb.GraphInfo:
        return self.graphs.GetGraphInfo(pb.GetGraphInfoRequest(graph=graph), timeout=self.timeout)

    def create_graph(self, graph: str, description: str = "") -> pb.GraphInfo:
        return self.graphs.CreateGraph(
            pb.CreateGraphRequest(graph=graph, description=description), timeout=self.timeout
        )

    def delete_graph(self, graph: str) -> pb.DeleteGraphResponse:
        return self.graphs.DeleteGraph(pb.DeleteGraphRequest(graph=graph), timeout=self.timeout)


class Client(_Calls):
    __doc__ = "Every graphfuse.v1 service on one blocking channel.\n" + CLIENT_ARGS

    def _open(self, credentials: grpc.ChannelCredentials | None, options: list, token: str | None) -> Any:
        if credentials is not None:
            channel = grpc.secure_channel(self.target, credentials, options=options)
        else:
            channel = grpc.insecure_channel(self.target, options=options)
        self._raw_channel = channel
        self.channel = grpc.intercept_channel(channel, _BearerToken(token)) if token else channel
        return self.channel

    def close(self) -> None:
        self._raw_channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def serving(self, service: str = "") -> bool:
        response = self.health.Check(health_pb2.HealthCheckRequest(service=service), timeout=self.timeout)
        return response.status == health_pb2.HealthCheckResponse.SERVING

    def ingest(
        self,
        graph: str,
        records: Iterable[Record],
        chunk_size: int = 5000,
        create_graph: bool = True,
        wait_for_names: bool = False,
    ) -> Iterator[pb.IngestAck]:
        """Stream ``records`` in chunks; yields each chunk's acknowledgement as it arrives (with
        ``wait_for_names``, once the graph's new names have vectors too)."""
        yield from self.graphs.Ingest(_chunks(graph, records, chunk_size, create_graph, wait_for_names))


class AsyncClient(_Calls):
    __doc__ = (
        "Every graphfuse.v1 service on one asyncio channel: the same calls as `Client`, awaited "
        "(``await client.ask(...)``).\n" + CLIENT_ARGS
    )

    def _open(self, credentials: grpc.ChannelCredentials | None, options: list, token: str | None) -> Any:
        interceptors = _AsyncBearerToken.every_kind(token) if token else None
        if credentials is not None:
            self.channel = grpc.aio.secure_channel(
                self.target, credentials, options=options, interceptors=interceptors
            )
        else:
            self.channel = grpc.aio.insecure_channel(self.target, options=options, interceptors=interceptors)
        return self.channel

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def serving(self, service: str = "") -> bool:
        request = health_pb2.HealthCheckRequest(service=service)
        response = await self.health.Check(request, timeout=self.timeout)
        return response.status == health_pb2.HealthCheckResponse.SERVING

    async def ingest(
        self,
        graph: str,
        records: Iterable[Record],
        chunk_size: int = 5000,
        create_graph: bool = True,
        wait_for_names: bool = False,
    ) -> AsyncIterator[pb.IngestAck]:
        """Stream ``records`` in chunks; yields each chunk's acknowledgement as it arrives (with
        ``wait_for_names``, once the graph's new names have vectors too)."""
        async for ack in self.graphs.Ingest(
            _chunks(graph, records, chunk_size, create_graph, wait_for_names)
        ):
            yield ack
