"""A thin synchronous client over the public API; the CLI talks to the server only through it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import islice

import grpc
from graphfuse.v1 import graphfuse_pb2 as pb
from graphfuse.v1 import graphfuse_pb2_grpc as pb_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gnn.records import EntityRecord, TripleRecord


def to_proto(record: EntityRecord | TripleRecord) -> pb.Record:
    if isinstance(record, TripleRecord):
        return pb.Record(triple=pb.Triple(head=record.head, relation=record.relation, tail=record.tail))
    return pb.Record(entity=pb.Entity(id=record.id, name=record.name or "", aliases=list(record.aliases)))


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


class Client:
    """Stubs of every graphfuse.v1 service on one channel.

    Args:
        target: ``host:port`` of the server.
        timeout: default deadline of each call, in seconds.
        token: bearer token sent with every call.
        tls_ca: PEM bytes of the CA that signed the server certificate; set (or ``tls=True`` for the
            system roots) to connect over TLS.
        tls_cert, tls_key: PEM bytes of a client certificate, for servers that require one.
        tls_server_name: the name to check the server certificate against, when it differs from the host.
    """

    def __init__(
        self,
        target: str = "localhost:50051",
        timeout: float = 30.0,
        *,
        token: str | None = None,
        tls: bool = False,
        tls_ca: bytes | None = None,
        tls_cert: bytes | None = None,
        tls_key: bytes | None = None,
        tls_server_name: str | None = None,
    ) -> None:
        self.target = target
        self.timeout = timeout
        if tls or tls_ca is not None or tls_cert is not None:
            credentials = grpc.ssl_channel_credentials(tls_ca, tls_key, tls_cert)
            options = [("grpc.ssl_target_name_override", tls_server_name)] if tls_server_name else []
            channel = grpc.secure_channel(target, credentials, options=options)
        else:
            channel = grpc.insecure_channel(target)
        self.channel = grpc.intercept_channel(channel, _BearerToken(token)) if token else channel
        self._raw_channel = channel
        self.info = pb_grpc.InfoStub(self.channel)
        self.embedder = pb_grpc.EmbedderStub(self.channel)
        self.graphs = pb_grpc.GraphsStub(self.channel)
        self.reasoner = pb_grpc.ReasonerStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)

    def close(self) -> None:
        self._raw_channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def serving(self, service: str = "") -> bool:
        response = self.health.Check(health_pb2.HealthCheckRequest(service=service), timeout=self.timeout)
        return response.status == health_pb2.HealthCheckResponse.SERVING

    def ask(
        self,
        question: str,
        graph: str = "",
        top_k: int = 0,
        max_hops: int = 0,
        topic_entities: Sequence[str] = (),
        truncate: bool = False,
    ) -> pb.AskResponse:
        request = pb.AskRequest(
            graph=graph,
            question=question,
            top_k=top_k,
            max_hops=max_hops,
            topic_entities=list(topic_entities),
            truncation=pb.TRUNCATION_TRUNCATE if truncate else pb.TRUNCATION_REJECT,
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

    def ingest(
        self,
        graph: str,
        records: Iterable[EntityRecord | TripleRecord],
        chunk_size: int = 1000,
        create_graph: bool = True,
    ) -> Iterator[pb.IngestAck]:
        """Stream ``records`` in chunks; yields each chunk's acknowledgement as it arrives."""

        def chunks() -> Iterator[pb.IngestChunk]:
            it = iter(records)
            number = 0
            while batch := list(islice(it, chunk_size)):
                yield pb.IngestChunk(
                    graph=graph,
                    chunk_id=str(number),
                    records=[to_proto(r) for r in batch],
                    create_graph=create_graph,
                )
                number += 1

        yield from self.graphs.Ingest(chunks())
