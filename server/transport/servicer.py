"""gRPC servicers of graphfuse.v1: protobuf in, typed calls to the service layer, protobuf out."""

from __future__ import annotations

import importlib.metadata
import time
from collections.abc import AsyncIterator

import grpc

from graphfuse.server.core.errors import InvalidArgument
from graphfuse.server.core.service import (
    GROUP_COMMIT_RECORDS,
    AnswerResult,
    FactResult,
    GraphService,
    IngestChunk,
    LinkedEntity,
    NamedEvidence,
    RelationWords,
    Timing,
)
from graphfuse.server.record_messages import RECORD_KINDS, record_from_proto, triple_columns_from_proto
from graphfuse.server.storage.store import GraphMeta
from graphfuse.server.transport.read_ahead import arrived_together
from graphfuse.server.transport.status import status_of, streaming, unary
from graphfuse.v1 import graphfuse_pb2 as pb
from graphfuse.v1 import graphfuse_pb2_grpc as pb_grpc

API_VERSION = "graphfuse.v1"
# records of an Ingest stream read while earlier ones are stored: what the next group commit can take
INGEST_READ_AHEAD = GROUP_COMMIT_RECORDS
KIND_FACT, KIND_INFERRED = pb.ANSWER_KIND_FACT, pb.ANSWER_KIND_INFERRED


def _timing(t: Timing) -> pb.Timing:
    return pb.Timing(queue_us=t.queue_us, encode_us=t.encode_us, reason_us=t.reason_us, total_us=t.total_us)


def _since(started: float) -> pb.Timing:
    """Timing of a call that only does bookkeeping: its total, measured from ``started``."""
    return pb.Timing(total_us=int((time.perf_counter() - started) * 1e6))


def _deadline(context: grpc.aio.ServicerContext) -> float | None:
    """The client's deadline as a ``time.monotonic()`` time, or None when it set none."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


def _truncate(value: int) -> bool:
    if value not in pb.Truncation.values():
        raise InvalidArgument(f"truncation {value} is not a Truncation value")
    return value == pb.TRUNCATION_TRUNCATE


def _graph_info(
    meta: GraphMeta, relations: list[str] | None = None, timing: pb.Timing | None = None
) -> pb.GraphInfo:
    return pb.GraphInfo(
        name=meta.name,
        description=meta.description,
        entities=meta.entities,
        relations=meta.relations,
        triples=meta.triples,
        relation_names=relations or [],
        created_at=meta.created_at,
        updated_at=meta.updated_at,
        timing=timing,
    )


def _relation_words(w: RelationWords) -> pb.RelationWords:
    record, phrases = w.record, w.phrases
    return pb.RelationWords(
        id=record.id,
        name=record.name or "",
        inverse_name=record.inverse_name or "",
        aliases=record.aliases,
        description=record.description or "",
        forward_phrases=phrases.forward,
        inverse_phrases=phrases.inverse,
        forward_answers=phrases.forward_answers,
        inverse_answers=phrases.inverse_answers,
    )


def _linked(e: LinkedEntity) -> pb.LinkedEntity:
    return pb.LinkedEntity(id=e.id, name=e.name, score=e.score, mention=e.mention, method=e.method)


def _evidence(e: NamedEvidence) -> pb.EvidencePath:
    return pb.EvidencePath(
        hops=[
            pb.Hop(
                head_id=h.head_id,
                head_name=h.head_name,
                relation=h.relation,
                tail_id=h.tail_id,
                tail_name=h.tail_name,
                reversed=h.reversed,
                weight=h.weight,
            )
            for h in e.hops
        ],
        weight=e.weight,
        kind=KIND_INFERRED if e.inferred else KIND_FACT,
        pattern=e.pattern,
    )


def _answer(a: AnswerResult) -> pb.Answer:
    return pb.Answer(
        entity_id=a.entity_id,
        name=a.name,
        score=a.score,
        kind=KIND_INFERRED if a.inferred else KIND_FACT,
        hops=a.hops,
        evidence=[_evidence(e) for e in a.evidence],
    )


def _fact(f: FactResult) -> pb.ScoredTriple:
    return pb.ScoredTriple(
        head_id=f.head_id,
        head_name=f.head_name,
        relation=f.relation,
        tail_id=f.tail_id,
        tail_name=f.tail_name,
        score=f.score,
        kind=KIND_INFERRED if f.inferred else KIND_FACT,
        evidence=[_evidence(e) for e in f.evidence],
    )


class InfoServicer(pb_grpc.InfoServicer):
    def __init__(self, service: GraphService) -> None:
        self.service = service

    @unary
    async def Info(self, request: pb.InfoRequest, context: grpc.aio.ServicerContext) -> pb.InfoResponse:
        started = time.perf_counter()
        info = self.service.info()
        limits = self.service.limits
        return pb.InfoResponse(
            model=info.model,
            dimensions=info.dimensions,
            device=info.device,
            precision=info.precision,
            limits=pb.Limits(
                max_texts=limits.max_texts,
                max_tokens=info.max_tokens,
                max_text_chars=limits.max_text_chars,
                max_top_k=limits.max_top_k,
                max_hops=limits.max_hops,
                max_records_per_chunk=limits.max_records_per_chunk,
                default_top_k=limits.default_top_k,
                default_hops=limits.default_hops,
            ),
            graphs=info.graphs,
            version=importlib.metadata.version("graphfuse"),
            api_version=API_VERSION,
            default_graph=self.service.config.default_graph,
            timing=_since(started),
            applied_sequence=info.applied_sequence,
        )


class EmbedderServicer(pb_grpc.EmbedderServicer):
    def __init__(self, service: GraphService) -> None:
        self.service = service

    @unary
    async def Embed(self, request: pb.EmbedRequest, context: grpc.aio.ServicerContext) -> pb.EmbedResponse:
        result = await self.service.embed(
            list(request.texts), _truncate(request.truncation), _deadline(context)
        )
        return pb.EmbedResponse(
            embeddings=[
                pb.Embedding(values=v, tokens=t)
                for v, t in zip(result.vectors.tolist(), result.tokens, strict=True)
            ],
            dimensions=int(result.vectors.shape[1]),
            model=self.service.info().model,
            timing=_timing(result.timing),
        )


class GraphsServicer(pb_grpc.GraphsServicer):
    def __init__(self, service: GraphService) -> None:
        self.service = service

    @unary
    async def CreateGraph(
        self, request: pb.CreateGraphRequest, context: grpc.aio.ServicerContext
    ) -> pb.GraphInfo:
        started = time.perf_counter()
        meta = await self.service.create_graph(request.graph, request.description)
        return _graph_info(meta, timing=_since(started))

    @unary
    async def DeleteGraph(
        self, request: pb.DeleteGraphRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteGraphResponse:
        started = time.perf_counter()
        deleted = await self.service.delete_graph(request.graph)
        return pb.DeleteGraphResponse(deleted=deleted, timing=_since(started))

    @unary
    async def ListGraphs(
        self, request: pb.ListGraphsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListGraphsResponse:
        started = time.perf_counter()
        graphs = [_graph_info(m) for m in await self.service.list_graphs()]
        return pb.ListGraphsResponse(graphs=graphs, timing=_since(started))

    @unary
    async def GetGraphInfo(
        self, request: pb.GetGraphInfoRequest, context: grpc.aio.ServicerContext
    ) -> pb.GraphInfo:
        started = time.perf_counter()
        details = await self.service.graph_info(request.graph)
        info = _graph_info(details.meta, details.relations, _since(started))
        info.reasoner = details.models.reasoner
        info.link_predictor = details.models.link_predictor
        info.recommender = details.models.recommender
        info.names_embedded = details.names_embedded
        info.names_total = details.names_total
        info.relation_words.extend(_relation_words(w) for w in details.relation_words)
        return info

    @streaming
    async def Ingest(
        self, request_iterator: AsyncIterator[pb.IngestChunk], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.IngestAck]:
        loaded: set[str] = set()
        async for received in arrived_together(request_iterator, INGEST_READ_AHEAD, _records_in):
            deadline = _deadline(context)
            decoded: list[tuple[pb.IngestChunk, IngestChunk]] = []  # decoded, not yet answered
            for message in received:
                chunk = _ingest_chunk(message)
                if isinstance(chunk, IngestChunk):
                    decoded.append((message, chunk))
                    continue
                async for ack in self._ingest(decoded, deadline, loaded):
                    yield ack
                decoded = []
                yield chunk  # the acknowledgement that rejects it
            async for ack in self._ingest(decoded, deadline, loaded):
                yield ack
        for graph in sorted(loaded):
            await self.service.finish_ingest(graph)

    async def _ingest(
        self, decoded: list[tuple[pb.IngestChunk, IngestChunk]], deadline: float | None, loaded: set[str]
    ) -> AsyncIterator[pb.IngestAck]:
        """The acknowledgements of decoded chunks, in order: the service stores those that arrived together
        in one transaction where it can."""
        if not decoded:
            return
        answered = 0
        async for result in self.service.ingest_chunks([chunk for _, chunk in decoded], deadline):
            message = decoded[answered][0]
            answered += 1
            if result.accepted:
                loaded.add(message.graph)
            yield pb.IngestAck(
                chunk_id=message.chunk_id,
                accepted=result.accepted,
                records=result.records,
                new_triples=result.new_triples,
                new_entities=result.new_entities,
                removed_triples=result.removed_triples,
                stream_sequence=result.stream_sequence,
                names_pending=result.names_pending,
                errors=[pb.RecordError(index=i, reason=reason) for i, reason in result.errors],
                timing=_timing(result.timing),
            )


def _records_in(message: pb.IngestChunk) -> int:
    """What a chunk weighs while read ahead: its records and triples (an empty chunk as one)."""
    return max(1, len(message.records) + len(message.triples.heads))


def _ingest_chunk(message: pb.IngestChunk) -> IngestChunk | pb.IngestAck:
    """A chunk as the service takes it, or the acknowledgement that rejects it when it does not decode."""
    records = [record_from_proto(r) for r in message.records]
    errors = [(i, f"record is empty: set {RECORD_KINDS}") for i, r in enumerate(records) if r is None]
    triples, problem = triple_columns_from_proto(message.triples)
    if problem:
        errors.append((len(records), f"chunk triples: {problem}"))
    if not errors:
        return IngestChunk(message.graph, records, triples, message.create_graph, message.wait_for_names)  # type: ignore[arg-type]
    return pb.IngestAck(
        chunk_id=message.chunk_id,
        accepted=False,
        records=len(records) + len(message.triples.heads),
        errors=[pb.RecordError(index=i, reason=reason) for i, reason in errors],
    )


class ReasonerServicer(pb_grpc.ReasonerServicer):
    def __init__(self, service: GraphService) -> None:
        self.service = service

    async def _ask(self, request: pb.AskRequest, context: grpc.aio.ServicerContext) -> pb.AskResponse:
        result = await self.service.ask(
            request.graph,
            request.question,
            list(request.topic_entities),
            request.top_k,
            request.max_hops,
            _truncate(request.truncation),
            _deadline(context),
            request.min_sequence,
        )
        return pb.AskResponse(
            answers=[_answer(a) for a in result.answers],
            text=result.text,
            topic_entities=[_linked(e) for e in result.topic_entities],
            question_tokens=result.question_tokens,
            region=pb.Region(entities=result.region_entities, edges=result.region_edges),
            timing=_timing(result.timing),
            request_id=request.request_id,
        )

    @unary
    async def Ask(self, request: pb.AskRequest, context: grpc.aio.ServicerContext) -> pb.AskResponse:
        return await self._ask(request, context)

    async def AskStream(
        self, request_iterator: AsyncIterator[pb.AskRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.AskResponse]:
        """One response per question, in order; a failed question answers with its status and the
        stream goes on."""
        async for request in request_iterator:
            try:
                yield await self._ask(request, context)
            except Exception as error:  # noqa: BLE001 - reported in the response, per question
                code, message = status_of(error)
                yield pb.AskResponse(
                    request_id=request.request_id,
                    error=pb.Status(code=code.value[0], message=message),
                )

    @unary
    async def Lookup(self, request: pb.LookupRequest, context: grpc.aio.ServicerContext) -> pb.LookupResponse:
        result = await self.service.lookup(
            request.graph,
            request.head,
            request.relation,
            request.tail,
            request.top_k,
            exclude_facts=request.exclude_facts,
            facts_only=request.facts_only,
            min_score=request.min_score,
            evidence=not request.no_evidence,
            deadline=_deadline(context),
            min_sequence=request.min_sequence,
        )
        return pb.LookupResponse(
            triples=[_fact(f) for f in result.triples],
            link_predictor=result.link_predictor,
            total_facts=result.total_facts,
            resolved=[_linked(e) for e in result.resolved],
            resolved_relation=result.resolved_relation,
            region=pb.Region(entities=result.region_entities, edges=result.region_edges),
            timing=_timing(result.timing),
        )

    @unary
    async def Link(self, request: pb.LinkRequest, context: grpc.aio.ServicerContext) -> pb.LinkResponse:
        candidates, timing = await self.service.link(
            request.graph, request.text, request.top_k, _truncate(request.truncation)
        )
        return pb.LinkResponse(candidates=[_linked(c) for c in candidates], timing=_timing(timing))
