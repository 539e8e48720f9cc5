from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Truncation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRUNCATION_UNSPECIFIED: _ClassVar[Truncation]
    TRUNCATION_REJECT: _ClassVar[Truncation]
    TRUNCATION_TRUNCATE: _ClassVar[Truncation]

class AnswerKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ANSWER_KIND_UNSPECIFIED: _ClassVar[AnswerKind]
    ANSWER_KIND_FACT: _ClassVar[AnswerKind]
    ANSWER_KIND_INFERRED: _ClassVar[AnswerKind]
TRUNCATION_UNSPECIFIED: Truncation
TRUNCATION_REJECT: Truncation
TRUNCATION_TRUNCATE: Truncation
ANSWER_KIND_UNSPECIFIED: AnswerKind
ANSWER_KIND_FACT: AnswerKind
ANSWER_KIND_INFERRED: AnswerKind

class Timing(_message.Message):
    __slots__ = ("queue_us", "encode_us", "reason_us", "total_us")
    QUEUE_US_FIELD_NUMBER: _ClassVar[int]
    ENCODE_US_FIELD_NUMBER: _ClassVar[int]
    REASON_US_FIELD_NUMBER: _ClassVar[int]
    TOTAL_US_FIELD_NUMBER: _ClassVar[int]
    queue_us: int
    encode_us: int
    reason_us: int
    total_us: int
    def __init__(self, queue_us: _Optional[int] = ..., encode_us: _Optional[int] = ..., reason_us: _Optional[int] = ..., total_us: _Optional[int] = ...) -> None: ...

class Region(_message.Message):
    __slots__ = ("entities", "edges")
    ENTITIES_FIELD_NUMBER: _ClassVar[int]
    EDGES_FIELD_NUMBER: _ClassVar[int]
    entities: int
    edges: int
    def __init__(self, entities: _Optional[int] = ..., edges: _Optional[int] = ...) -> None: ...

class Hop(_message.Message):
    __slots__ = ("head_id", "head_name", "relation", "tail_id", "tail_name", "reversed", "weight")
    HEAD_ID_FIELD_NUMBER: _ClassVar[int]
    HEAD_NAME_FIELD_NUMBER: _ClassVar[int]
    RELATION_FIELD_NUMBER: _ClassVar[int]
    TAIL_ID_FIELD_NUMBER: _ClassVar[int]
    TAIL_NAME_FIELD_NUMBER: _ClassVar[int]
    REVERSED_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    head_id: str
    head_name: str
    relation: str
    tail_id: str
    tail_name: str
    reversed: bool
    weight: float
    def __init__(self, head_id: _Optional[str] = ..., head_name: _Optional[str] = ..., relation: _Optional[str] = ..., tail_id: _Optional[str] = ..., tail_name: _Optional[str] = ..., reversed: _Optional[bool] = ..., weight: _Optional[float] = ...) -> None: ...

class EvidencePath(_message.Message):
    __slots__ = ("hops", "weight", "kind", "pattern")
    HOPS_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    hops: _containers.RepeatedCompositeFieldContainer[Hop]
    weight: float
    kind: AnswerKind
    pattern: str
    def __init__(self, hops: _Optional[_Iterable[_Union[Hop, _Mapping]]] = ..., weight: _Optional[float] = ..., kind: _Optional[_Union[AnswerKind, str]] = ..., pattern: _Optional[str] = ...) -> None: ...

class InfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Limits(_message.Message):
    __slots__ = ("max_texts", "max_tokens", "max_text_chars", "max_top_k", "max_hops", "max_records_per_chunk", "default_top_k", "default_hops")
    MAX_TEXTS_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_TEXT_CHARS_FIELD_NUMBER: _ClassVar[int]
    MAX_TOP_K_FIELD_NUMBER: _ClassVar[int]
    MAX_HOPS_FIELD_NUMBER: _ClassVar[int]
    MAX_RECORDS_PER_CHUNK_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_TOP_K_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_HOPS_FIELD_NUMBER: _ClassVar[int]
    max_texts: int
    max_tokens: int
    max_text_chars: int
    max_top_k: int
    max_hops: int
    max_records_per_chunk: int
    default_top_k: int
    default_hops: int
    def __init__(self, max_texts: _Optional[int] = ..., max_tokens: _Optional[int] = ..., max_text_chars: _Optional[int] = ..., max_top_k: _Optional[int] = ..., max_hops: _Optional[int] = ..., max_records_per_chunk: _Optional[int] = ..., default_top_k: _Optional[int] = ..., default_hops: _Optional[int] = ...) -> None: ...

class InfoResponse(_message.Message):
    __slots__ = ("model", "dimensions", "device", "precision", "limits", "graphs", "version", "api_version", "default_graph", "timing", "applied_sequence")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    GRAPHS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    API_VERSION_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_GRAPH_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    APPLIED_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    model: str
    dimensions: int
    device: str
    precision: str
    limits: Limits
    graphs: _containers.RepeatedScalarFieldContainer[str]
    version: str
    api_version: str
    default_graph: str
    timing: Timing
    applied_sequence: int
    def __init__(self, model: _Optional[str] = ..., dimensions: _Optional[int] = ..., device: _Optional[str] = ..., precision: _Optional[str] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., graphs: _Optional[_Iterable[str]] = ..., version: _Optional[str] = ..., api_version: _Optional[str] = ..., default_graph: _Optional[str] = ..., timing: _Optional[_Union[Timing, _Mapping]] = ..., applied_sequence: _Optional[int] = ...) -> None: ...

class EmbedRequest(_message.Message):
    __slots__ = ("texts", "truncation")
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATION_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    truncation: Truncation
    def __init__(self, texts: _Optional[_Iterable[str]] = ..., truncation: _Optional[_Union[Truncation, str]] = ...) -> None: ...

class Embedding(_message.Message):
    __slots__ = ("values", "tokens")
    VALUES_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    tokens: int
    def __init__(self, values: _Optional[_Iterable[float]] = ..., tokens: _Optional[int] = ...) -> None: ...

class EmbedResponse(_message.Message):
    __slots__ = ("embeddings", "dimensions", "model", "timing")
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    embeddings: _containers.RepeatedCompositeFieldContainer[Embedding]
    dimensions: int
    model: str
    timing: Timing
    def __init__(self, embeddings: _Optional[_Iterable[_Union[Embedding, _Mapping]]] = ..., dimensions: _Optional[int] = ..., model: _Optional[str] = ..., timing: _Optional[_Union[Timing, _Mapping]] = ...) -> None: ...

class GraphInfo(_message.Message):
    __slots__ = ("name", "description", "entities", "relations", "triples", "relation_names", "created_at", "updated_at", "timing", "reasoner", "link_predictor", "recommender", "relation_words", "names_embedded", "names_total")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ENTITIES_FIELD_NUMBER: _ClassVar[int]
    RELATIONS_FIELD_NUMBER: _ClassVar[int]
    TRIPLES_FIELD_NUMBER: _ClassVar[int]
    RELATION_NAMES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    REASONER_FIELD_NUMBER: _ClassVar[int]
    LINK_PREDICTOR_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDER_FIELD_NUMBER: _ClassVar[int]
    RELATION_WORDS_FIELD_NUMBER: _ClassVar[int]
    NAMES_EMBEDDED_FIELD_NUMBER: _ClassVar[int]
    NAMES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    entities: int
    relations: int
    triples: int
    relation_names: _containers.RepeatedScalarFieldContainer[str]
    created_at: float
    updated_at: float
    timing: Timing
    reasoner: str
    link_predictor: str
    recommender: str
    relation_words: _containers.RepeatedCompositeFieldContainer[RelationWords]
    names_embedded: int
    names_total: int
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., entities: _Optional[int] = ..., relations: _Optional[int] = ..., triples: _Optional[int] = ..., relation_names: _Optional[_Iterable[str]] = ..., created_at: _Optional[float] = ..., updated_at: _Optional[float] = ..., timing: _Optional[_Union[Timing, _Mapping]] = ..., reasoner: _Optional[str] = ..., link_predictor: _Optional[str] = ..., recommender: _Optional[str] = ..., relation_words: _Optional[_Iterable[_Union[RelationWords, _Mapping]]] = ..., names_embedded: _Optional[int] = ..., names_total: _Optional[int] = ...) -> None: ...

class RelationWords(_message.Message):
    __slots__ = ("id", "name", "inverse_name", "aliases", "description", "forward_phrases", "inverse_phrases", "forward_answers", "inverse_answers")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    INVERSE_NAME_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    FORWARD_PHRASES_FIELD_NUMBER: _ClassVar[int]
    INVERSE_PHRASES_FIELD_NUMBER: _ClassVar[int]
    FORWARD_ANSWERS_FIELD_NUMBER: _ClassVar[int]
    INVERSE_ANSWERS_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    inverse_name: str
    aliases: _containers.RepeatedScalarFieldContainer[str]
    description: str
    forward_phrases: _containers.RepeatedScalarFieldContainer[str]
    inverse_phrases: _containers.RepeatedScalarFieldContainer[str]
    forward_answers: str
    inverse_answers: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., inverse_name: _Optional[str] = ..., aliases: _Optional[_Iterable[str]] = ..., description: _Optional[str] = ..., forward_phrases: _Optional[_Iterable[str]] = ..., inverse_phrases: _Optional[_Iterable[str]] = ..., forward_answers: _Optional[str] = ..., inverse_answers: _Optional[str] = ...) -> None: ...

class CreateGraphRequest(_message.Message):
    __slots__ = ("graph", "description")
    GRAPH_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    graph: str
    description: str
    def __init__(self, graph: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class DeleteGraphRequest(_message.Message):
    __slots__ = ("graph",)
    GRAPH_FIELD_NUMBER: _ClassVar[int]
    graph: str
    def __init__(self, graph: _Optional[str] = ...) -> None: ...

class DeleteGraphResponse(_message.Message):
    __slots__ = ("deleted", "timing")
    DELETED_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    timing: Timing
    def __init__(self, deleted: _Optional[bool] = ..., timing: _Optional[_Union[Timing, _Mapping]] = ...) -> None: ...

class ListGraphsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListGraphsResponse(_message.Message):
    __slots__ = ("graphs", "timing")
    GRAPHS_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    graphs: _containers.RepeatedCompositeFieldContainer[GraphInfo]
    timing: Timing
    def __init__(self, graphs: _Optional[_Iterable[_Union[GraphInfo, _Mapping]]] = ..., timing: _Optional[_Union[Timing, _Mapping]] = ...) -> None: ...

class GetGraphInfoRequest(_message.Message):
    __slots__ = ("graph",)
    GRAPH_FIELD_NUMBER: _ClassVar[int]
    graph: str
    def __init__(self, graph: _Optional[str] = ...) -> None: ...

class Triple(_message.Message):
    __slots__ = ("head", "relation", "tail")
    HEAD_FIELD_NUMBER: _ClassVar[int]
    RELATION_FIELD_NUMBER: _ClassVar[int]
    TAIL_FIELD_NUMBER: _ClassVar[int]
    head: str
    relation: str
    tail: str
    def __init__(self, head: _Optional[str] = ..., relation: _Optional[str] = ..., tail: _Optional[str] = ...) -> None: ...

class Entity(_message.Message):
    __slots__ = ("id", "name", "aliases", "type")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    aliases: _containers.RepeatedScalarFieldContainer[str]
    type: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., aliases: _Optional[_Iterable[str]] = ..., type: _Optional[str] = ...) -> None: ...

class Relation(_message.Message):
    __slots__ = ("id", "name", "inverse_name", "aliases", "description")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    INVERSE_NAME_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    inverse_name: str
    aliases: _containers.RepeatedScalarFieldContainer[str]
    description: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., inverse_name: _Optional[str] = ..., aliases: _Optional[_Iterable[str]] = ..., description: _Optional[str] = ...) -> None: ...

class Record(_message.Message):
    __slots__ = ("triple", "entity", "remove_triple", "relation")
    TRIPLE_FIELD_NUMBER: _ClassVar[int]
    ENTITY_FIELD_NUMBER: _ClassVar[int]
    REMOVE_TRIPLE_FIELD_NUMBER: _ClassVar[int]
    RELATION_FIELD_NUMBER: _ClassVar[int]
    triple: Triple
    entity: Entity
    remove_triple: Triple
    relation: Relation
    def __init__(self, triple: _Optional[_Union[Triple, _Mapping]] = ..., entity: _Optional[_Union[Entity, _Mapping]] = ..., remove_triple: _Optional[_Union[Triple, _Mapping]] = ..., relation: _Optional[_Union[Relation, _Mapping]] = ...) -> None: ...

class RecordBatch(_message.Message):
    __slots__ = ("records",)
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[Record]
    def __init__(self, records: _Optional[_Iterable[_Union[Record, _Mapping]]] = ...) -> None: ...

class TripleColumns(_message.Message):
    __slots__ = ("heads", "relations", "tails")
    HEADS_FIELD_NUMBER: _ClassVar[int]
    RELATIONS_FIELD_NUMBER: _ClassVar[int]
    TAILS_FIELD_NUMBER: _ClassVar[int]
    heads: _containers.RepeatedScalarFieldContainer[str]
    relations: _containers.RepeatedScalarFieldContainer[str]
    tails: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, heads: _Optional[_Iterable[str]] = ..., relations: _Optional[_Iterable[str]] = ..., tails: _Optional[_Iterable[str]] = ...) -> None: ...

class IngestChunk(_message.Message):
    __slots__ = ("graph", "chunk_id", "records", "triples", "create_graph", "wait_for_names")
    GRAPH_FIELD_NUMBER: _ClassVar[int]
    CHUNK_ID_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    TRIPLES_FIELD_NUMBER: _ClassVar[int]
    CREATE_GRAPH_FIELD_NUMBER: _ClassVar[int]
    WAIT_FOR_NAMES_FIELD_NUMBER: _ClassVar[int]
    graph: str
    chunk_id: str
    records: _containers.RepeatedCompositeFieldContainer[Record]
    triples: TripleColumns
    create_graph: bool
    wait_for_names: bool
    def __init__(self, graph: _Optional[str] = ..., chunk_id: _Optional[str] = ..., records: _Optional[_Iterable[_Union[Record, _Mapping]]] = ..., triples: _Optional[_Union[TripleColumns, _Mapping]] = ..., create_graph: _Optional[bool] = ..., wait_for_names: _Optional[bool] = ...) -> None: ...

class RecordError(_message.Message):
    __slots__ = ("index", "reason")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    index: int
    reason: str
    def __init__(self, index: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class IngestAck(_message.Message):
    __slots__ = ("chunk_id", "accepted", "records", "new_triples", "new_entities", "errors", "timing", "removed_triples", "stream_sequence", "names_pending")
    CHUNK_ID_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    NEW_TRIPLES_FIELD_NUMBER: _ClassVar[int]
    NEW_ENTITIES_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    REMOVED_TRIPLES_FIELD_NUMBER: _ClassVar[int]
    STREAM_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    NAMES_PENDING_FIELD_NUMBER: _ClassVar[int]
    chunk_id: str
    accepted: bool
    records: int
    new_triples: int
    new_entities: int
    errors: _containers.RepeatedCompositeFieldContainer[RecordError]
    timing: Timing
    removed_triples: int
    stream_sequence: int
    names_pending: int
    def __init__(self, chunk_id: _Optional[str] = ..., accepted: _Optional[bool] = ..., records: _Optional[int] = ..., new_triples: _Optional[int] = ..., new_entities: _Optional[int] = ..., errors: _Optional[_Iterable[_Union[RecordError, _Mapping]]] = ..., timing: _Optional[_Union[Timing, _Mapping]] = ..., removed_triples: _Optional[int] = ..., stream_sequence: _Optional[int] = ..., names_pending: _Optional[int] = ...) -> None: ...

class AskRequest(_message.Message):
    __slots__ = ("graph", "question", "topic_entities", "top_k", "max_hops", "truncation", "request_id", "min_sequence")
    GRAPH_FIELD_NUMBER: _ClassVar[int]
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    TOPIC_ENTITIES_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    MAX_HOPS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MIN_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    graph: str
    question: str
    topic_entities: _containers.RepeatedScalarFieldContainer[str]
    top_k: int
    max_hops: int
    truncation: Truncation
    request_id: str
    min_sequence: int
    def __init__(self, graph: _Optional[str] = ..., question: _Optional[str] = ..., topic_entities: _Optional[_Iterable[str]] = ..., top_k: _Optional[int] = ..., max_hops: _Optional[int] = ..., truncation: _Optional[_Union[Truncation, str]] = ..., request_id: _Optional[str] = ..., min_sequence: _Optional[int] = ...) -> None: ...

class LinkedEntity(_message.Message):
    __slots__ = ("id", "name", "score", "mention", "method")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    MENTION_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    score: float
    mention: str
    method: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., score: _Optional[float] = ..., mention: _Optional[str] = ..., method: _Optional[str] = ...) -> None: ...

class Answer(_message.Message):
    __slots__ = ("entity_id", "name", "score", "kind", "hops", "evidence")
    ENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    HOPS_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    entity_id: str
    name: str
    score: float
    kind: AnswerKind
    hops: int
    evidence: _containers.RepeatedCompositeFieldContainer[EvidencePath]
    def __init__(self, entity_id: _Optional[str] = ..., name: _Optional[str] = ..., score: _Optional[float] = ..., kind: _Optional[_Union[AnswerKind, str]] = ..., hops: _Optional[int] = ..., evidence: _Optional[_Iterable[_Union[EvidencePath, _Mapping]]] = ...) -> None: ...

class Status(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class AskResponse(_message.Message):
    __slots__ = ("answers", "text", "topic_entities", "question_tokens", "region", "timing", "request_id", "error")
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TOPIC_ENTITIES_FIELD_NUMBER: _ClassVar[int]
    QUESTION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    answers: _containers.RepeatedCompositeFieldContainer[Answer]
    text: str
    topic_entities: _containers.RepeatedCompositeFieldContainer[LinkedEntity]
    question_tokens: int
    region: Region
    timing: Timing
    request_id: str
    error: Status
    def __init__(self, answers: _Optional[_Iterable[_Union[Answer, _Mapping]]] = ..., text: _Optional[str] = ..., topic_entities: _Optional[_Iterable[_Union[LinkedEntity, _Mapping]]] = ..., question_tokens: _Optional[int] = ..., region: _Optional[_Union[Region, _Mapping]] = ..., timing: _Optional[_Union[Timing, _Mapping]] = ..., request_id: _Optional[str] = ..., error: _Optional[_Union[Status, _Mapping]] = ...) -> None: ...

class LookupRequest(_message.Message):
    __slots__ = ("graph", "head", "relation", "tail", "top_k", "exclude_facts", "facts_only", "min_score", "no_evidence", "min_sequence")
    GRAPH_FIELD_NUMBER: _ClassVar[int]
    HEAD_FIELD_NUMBER: _ClassVar[int]
    RELATION_FIELD_NUMBER: _ClassVar[int]
    TAIL_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_FACTS_FIELD_NUMBER: _ClassVar[int]
    FACTS_ONLY_FIELD_NUMBER: _ClassVar[int]
    MIN_SCORE_FIELD_NUMBER: _ClassVar[int]
    NO_EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    MIN_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    graph: str
    head: str
    relation: str
    tail: str
    top_k: int
    exclude_facts: bool
    facts_only: bool
    min_score: float
    no_evidence: bool
    min_sequence: int
    def __init__(self, graph: _Optional[str] = ..., head: _Optional[str] = ..., relation: _Optional[str] = ..., tail: _Optional[str] = ..., top_k: _Optional[int] = ..., exclude_facts: _Optional[bool] = ..., facts_only: _Optional[bool] = ..., min_score: _Optional[float] = ..., no_evidence: _Optional[bool] = ..., min_sequence: _Optional[int] = ...) -> None: ...

class ScoredTriple(_message.Message):
    __slots__ = ("head_id", "head_name", "relation", "tail_id", "tail_name", "score", "kind", "evidence")
    HEAD_ID_FIELD_NUMBER: _ClassVar[int]
    HEAD_NAME_FIELD_NUMBER: _ClassVar[int]
    RELATION_FIELD_NUMBER: _ClassVar[int]
    TAIL_ID_FIELD_NUMBER: _ClassVar[int]
    TAIL_NAME_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    head_id: str
    head_name: str
    relation: str
    tail_id: str
    tail_name: str
    score: float
    kind: AnswerKind
    evidence: _containers.RepeatedCompositeFieldContainer[EvidencePath]
    def __init__(self, head_id: _Optional[str] = ..., head_name: _Optional[str] = ..., relation: _Optional[str] = ..., tail_id: _Optional[str] = ..., tail_name: _Optional[str] = ..., score: _Optional[float] = ..., kind: _Optional[_Union[AnswerKind, str]] = ..., evidence: _Optional[_Iterable[_Union[EvidencePath, _Mapping]]] = ...) -> None: ...

class LookupResponse(_message.Message):
    __slots__ = ("triples", "total_facts", "resolved", "resolved_relation", "region", "timing", "link_predictor")
    TRIPLES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FACTS_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_RELATION_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    LINK_PREDICTOR_FIELD_NUMBER: _ClassVar[int]
    triples: _containers.RepeatedCompositeFieldContainer[ScoredTriple]
    total_facts: int
    resolved: _containers.RepeatedCompositeFieldContainer[LinkedEntity]
    resolved_relation: str
    region: Region
    timing: Timing
    link_predictor: str
    def __init__(self, triples: _Optional[_Iterable[_Union[ScoredTriple, _Mapping]]] = ..., total_facts: _Optional[int] = ..., resolved: _Optional[_Iterable[_Union[LinkedEntity, _Mapping]]] = ..., resolved_relation: _Optional[str] = ..., region: _Optional[_Union[Region, _Mapping]] = ..., timing: _Optional[_Union[Timing, _Mapping]] = ..., link_predictor: _Optional[str] = ...) -> None: ...

class LinkRequest(_message.Message):
    __slots__ = ("graph", "text", "top_k", "truncation")
    GRAPH_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    TRUNCATION_FIELD_NUMBER: _ClassVar[int]
    graph: str
    text: str
    top_k: int
    truncation: Truncation
    def __init__(self, graph: _Optional[str] = ..., text: _Optional[str] = ..., top_k: _Optional[int] = ..., truncation: _Optional[_Union[Truncation, str]] = ...) -> None: ...

class LinkResponse(_message.Message):
    __slots__ = ("candidates", "timing")
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    candidates: _containers.RepeatedCompositeFieldContainer[LinkedEntity]
    timing: Timing
    def __init__(self, candidates: _Optional[_Iterable[_Union[LinkedEntity, _Mapping]]] = ..., timing: _Optional[_Union[Timing, _Mapping]] = ...) -> None: ...
