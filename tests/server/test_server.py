"""Every RPC of graphfuse.v1 over a real channel to a real server, including the error cases."""

from __future__ import annotations

import time

import grpc
import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

import graphfuse.gnn.data.graph
from graphfuse.gnn.data.graph import merge_due_at
from graphfuse.gnn.data.records import EntityRecord, RelationRecord, Retraction, TripleColumns, TripleRecord
from graphfuse.server.client import Client
from graphfuse.server.core.service import IngestChunk
from graphfuse.server.record_messages import record_to_proto
from graphfuse.v1 import graphfuse_pb2 as pb
from tests.server.conftest import RunningServer, server_config

MOVIES = [
    TripleRecord("Top Hat", "starred_actors", "Ginger Rogers"),
    TripleRecord("Top Hat", "starred_actors", "Fred Astaire"),
    TripleRecord("Top Hat", "directed_by", "Mark Sandrich"),
    TripleRecord("Swing Time", "starred_actors", "Ginger Rogers"),
    TripleRecord("Swing Time", "directed_by", "George Stevens"),
    TripleRecord("Gunga Din", "directed_by", "George Stevens"),
    TripleRecord("Gunga Din", "starred_actors", "Cary Grant"),
    EntityRecord("Ginger Rogers", "Ginger Rogers", ("Virginia McMath",)),
]


def rpc_error(call, *args, **kwargs) -> grpc.RpcError:  # noqa: ANN001
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, **kwargs)
    return caught.value


@pytest.fixture(scope="module")
def movies(running_server: RunningServer) -> str:
    with running_server.client() as client:
        acks = list(client.ingest("movies", MOVIES, chunk_size=3))
    assert [a.accepted for a in acks] == [True, True, True]
    return "movies"


def test_health_serving_and_reflection(client: Client) -> None:
    assert client.serving()
    assert client.serving("graphfuse.v1.Reasoner")
    services = set(ProtoReflectionDescriptorDatabase(client.channel).get_services())
    assert {
        "graphfuse.v1.Reasoner",
        "graphfuse.v1.Graphs",
        "graphfuse.v1.Embedder",
        "graphfuse.v1.Info",
        "grpc.health.v1.Health",
    } <= services


def test_not_ready_is_unavailable(tmp_path) -> None:  # noqa: ANN001
    server = RunningServer(server_config(tmp_path), start_service=False)
    try:
        server._run(server.app.listen())
        with server.client() as client:
            status = client.health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status
            assert status != health_pb2.HealthCheckResponse.SERVING
            error = rpc_error(client.ask, "what treats fever")
            assert error.code() == grpc.StatusCode.UNAVAILABLE
            assert "starting" in error.details()
    finally:
        server.stop()


def test_info(client: Client) -> None:
    info = client.server_info()
    assert info.model == "sentence-transformers/all-MiniLM-L6-v2"
    assert info.dimensions == 384
    assert info.device == "cpu"
    assert info.limits.max_tokens == 256
    assert "umls" in info.graphs and info.default_graph == "umls"
    assert info.api_version == "graphfuse.v1"
    assert info.timing.total_us > 0


def test_embed_and_its_errors(client: Client) -> None:
    response = client.embed(["water", "what treats a headache?"])
    assert response.dimensions == 384 and len(response.embeddings) == 2
    first = response.embeddings[0]
    assert abs(sum(v * v for v in first.values) - 1.0) < 1e-4
    assert first.tokens == 3  # [CLS] water [SEP]
    assert response.timing.total_us > 0

    long_text = "word " * 400
    error = rpc_error(client.embed, ["fine", long_text])
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "texts[1]" in error.details()
    assert client.embed([long_text], truncate=True).embeddings[0].tokens == 256
    assert rpc_error(client.embed, []).code() == grpc.StatusCode.INVALID_ARGUMENT
    error = rpc_error(client.embed, ["x"] * 1000)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "texts has 1000" in error.details()
    error = rpc_error(client.embed, ["ok", "   "])
    assert "texts[1] is empty" in error.details()


def test_graph_lifecycle(client: Client) -> None:
    created = client.create_graph("scratch", "a test graph")
    assert created.name == "scratch" and created.triples == 0
    assert rpc_error(client.create_graph, "scratch").code() == grpc.StatusCode.ALREADY_EXISTS
    listed = client.list_graphs()
    assert "scratch" in [g.name for g in listed.graphs] and listed.timing.total_us > 0
    error = rpc_error(client.create_graph, "bad name!")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "bad name!" in error.details()
    assert client.delete_graph("scratch").deleted
    assert not client.delete_graph("scratch").deleted
    error = rpc_error(client.graph_info, "scratch")
    assert error.code() == grpc.StatusCode.NOT_FOUND and "scratch" in error.details()


def test_ingest_acknowledges_each_chunk_and_rejects_bad_chunks_whole(client: Client, movies: str) -> None:
    info = client.graph_info(movies)
    assert (info.entities, info.relations, info.triples) == (8, 2, 7)
    assert sorted(info.relation_names) == ["directed_by", "starred_actors"]

    retried = list(client.ingest(movies, MOVIES[:3]))
    assert retried[0].accepted and retried[0].new_triples == 0  # triples are a set

    bad = pb.IngestChunk(
        graph=movies,
        chunk_id="bad",
        records=[
            record_to_proto(TripleRecord("Top Hat", "release_year", "1935")),
            pb.Record(triple=pb.Triple(head="Top Hat", relation="", tail="x")),
            pb.Record(),
        ],
    )
    good = pb.IngestChunk(
        graph=movies,
        chunk_id="good",
        records=[record_to_proto(TripleRecord("Top Hat", "release_year", "1935"))],
    )
    acks = list(client.graphs.Ingest(iter([bad, good]), timeout=30))
    assert [a.chunk_id for a in acks] == ["bad", "good"]
    assert not acks[0].accepted
    assert [e.index for e in acks[0].errors] == [2] or [e.index for e in acks[0].errors] == [1]
    assert acks[1].accepted and acks[1].new_triples == 1
    assert client.graph_info(movies).triples == 8  # the rejected chunk wrote nothing

    invalid = pb.IngestChunk(
        graph=movies,
        chunk_id="c",
        records=[
            pb.Record(triple=pb.Triple(head="a", relation="r", tail="")),
            pb.Record(triple=pb.Triple(head="a", relation="r", tail="b")),
        ],
    )
    ack = next(iter(client.graphs.Ingest(iter([invalid]), timeout=30)))
    assert not ack.accepted and ack.errors[0].index == 0 and "tail is empty" in ack.errors[0].reason
    assert client.graph_info(movies).triples == 8

    missing = pb.IngestChunk(graph="nope", records=[record_to_proto(MOVIES[0])])
    error = rpc_error(lambda: list(client.graphs.Ingest(iter([missing]), timeout=30)))
    assert error.code() == grpc.StatusCode.NOT_FOUND and "nope" in error.details()


def test_ask_one_hop_with_evidence(client: Client, movies: str) -> None:
    response = client.ask("what movies did Ginger Rogers act in", graph=movies, top_k=2, max_hops=1)
    assert [t.id for t in response.topic_entities] == ["Ginger Rogers"]
    assert {a.name for a in response.answers} == {"Top Hat", "Swing Time"}
    for answer in response.answers:
        assert 0.0 < answer.score <= 1.0 and answer.kind == pb.ANSWER_KIND_FACT and answer.hops == 1
        hop = answer.evidence[0].hops[0]
        assert (hop.head_id, hop.relation, hop.tail_id, hop.reversed) == (
            answer.entity_id,
            "starred_actors",
            "Ginger Rogers",
            True,
        )
    assert "Ginger Rogers <-starred_actors-" in response.text
    assert response.region.entities >= 3 and response.region.edges >= 2
    assert response.timing.total_us >= response.timing.encode_us > 0


def test_ask_links_aliases_and_given_topics(client: Client, movies: str) -> None:
    by_alias = client.ask("what movies did Virginia McMath act in", graph=movies, max_hops=1)
    assert by_alias.topic_entities[0].method == "alias"
    assert by_alias.answers[0].name in {"Top Hat", "Swing Time"}
    given = client.ask(
        "which films feature this actor", graph=movies, topic_entities=["Cary Grant"], max_hops=1
    )
    assert given.topic_entities[0].method == "given"
    assert given.answers[0].name == "Gunga Din"


def test_ask_demo_graph(client: Client) -> None:
    response = client.ask("What can pharmacologic substance treat?")
    assert response.topic_entities[0].id == "pharmacologic_substance"
    names = [a.name for a in response.answers]
    assert len(names) == 10
    assert response.text


def test_ask_on_a_capped_subgraph(client: Client, running_server: RunningServer, monkeypatch) -> None:  # noqa: ANN001
    question = "What can pharmacologic substance treat?"
    whole = client.ask(question, max_hops=1)
    config = running_server.app.service.config
    monkeypatch.setattr(config, "reason_subgraph_min_edges", 0)  # the demo graph counts as very large
    monkeypatch.setattr(config, "reason_subgraph_entities", 30)
    capped = client.ask(question, max_hops=1)
    assert 0 < capped.region.entities <= 30 < whole.region.entities  # it reasoned on the subgraph only
    assert capped.answers[0].entity_id == whole.answers[0].entity_id
    assert {a.entity_id for a in capped.answers} <= {
        a.entity_id for a in client.ask(question, max_hops=1, top_k=200).answers
    }
    assert all(a.evidence for a in capped.answers)  # evidence mapped back to the whole graph's ids


@pytest.mark.parametrize(
    ("kwargs", "code", "fragment"),
    [
        ({"question": "  "}, grpc.StatusCode.INVALID_ARGUMENT, "question is empty"),
        ({"question": "x", "graph": "nope"}, grpc.StatusCode.NOT_FOUND, "nope"),
        ({"question": "x", "top_k": 5000}, grpc.StatusCode.INVALID_ARGUMENT, "top_k"),
        ({"question": "x", "max_hops": 9}, grpc.StatusCode.INVALID_ARGUMENT, "max_hops"),
        (
            {"question": "x", "topic_entities": ["no such thing"]},
            grpc.StatusCode.NOT_FOUND,
            "topic_entities[0]",
        ),
        ({"question": "why " * 300}, grpc.StatusCode.INVALID_ARGUMENT, "limit of 256"),
    ],
)
def test_ask_errors(client: Client, kwargs: dict, code: grpc.StatusCode, fragment: str) -> None:
    error = rpc_error(client.ask, **kwargs)
    assert error.code() == code
    assert fragment in error.details()
    assert client.serving()


def test_ask_stream_answers_in_order_and_survives_a_bad_question(client: Client, movies: str) -> None:
    requests = [
        pb.AskRequest(graph=movies, question="who directed Gunga Din", request_id="a", max_hops=1),
        pb.AskRequest(graph=movies, question="", request_id="b"),
        pb.AskRequest(graph=movies, question="what movies did Cary Grant act in", request_id="c", max_hops=1),
    ]
    responses = list(client.reasoner.AskStream(iter(requests), timeout=60))
    assert [r.request_id for r in responses] == ["a", "b", "c"]
    assert responses[0].answers[0].name == "George Stevens"
    assert responses[1].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "question" in responses[1].error.message
    assert responses[2].answers[0].name == "Gunga Din"


def test_lookup(client: Client) -> None:
    response = client.lookup(head="antibiotic", relation="treats", top_k=100)
    assert response.total_facts == len(response.triples) > 0
    assert {t.relation for t in response.triples} == {"treats"}
    assert "disease or syndrome" in {t.tail_name for t in response.triples}
    assert all(t.kind == pb.ANSWER_KIND_FACT and t.score == 1.0 for t in response.triples)
    by_text = client.lookup(head="Antibiotic", relation="treat", top_k=100)
    assert by_text.resolved_relation == "treats" and by_text.total_facts == response.total_facts
    limited = client.lookup(relation="treats", top_k=3)
    assert len(limited.triples) == 3 and limited.total_facts > 3

    assert rpc_error(client.lookup).code() == grpc.StatusCode.INVALID_ARGUMENT
    error = rpc_error(client.lookup, head="zzqx unknown qqq")
    assert error.code() == grpc.StatusCode.NOT_FOUND and "head" in error.details()


def test_link(client: Client) -> None:
    candidates = client.link("antibiotic", top_k=3).candidates
    assert candidates[0].id == "antibiotic" and candidates[0].method == "exact" and candidates[0].score == 1.0
    fuzzy = client.link("antibiotics drugs", top_k=3).candidates
    assert "antibiotic" in [c.id for c in fuzzy]


def test_triples_sent_as_columns_are_checked_after_the_records_and_stored(client: Client) -> None:
    entity = record_to_proto(EntityRecord("Holiday Inn", "Holiday Inn"))

    def chunk(chunk_id: str, heads: list[str], relations: list[str], tails: list[str]) -> pb.IngestChunk:
        columns = pb.TripleColumns(heads=heads, relations=relations, tails=tails)
        return pb.IngestChunk(
            graph="holidays", chunk_id=chunk_id, records=[entity], triples=columns, create_graph=True
        )

    holiday = ["Holiday Inn", "Holiday Inn"]
    acks = list(
        client.graphs.Ingest(
            iter(
                [
                    chunk("bad", holiday, ["directed_by", "directed_by"], ["Mark Sandrich", "x\ty"]),
                    chunk("uneven", holiday, ["directed_by"], ["Mark Sandrich", "Fred Astaire"]),
                    chunk(
                        "good", holiday, ["directed_by", "starred_actors"], ["Mark Sandrich", "Fred Astaire"]
                    ),
                ]
            ),
            timeout=30,
        )
    )
    assert [(a.chunk_id, a.accepted, a.records) for a in acks] == [
        ("bad", False, 3),
        ("uneven", False, 3),
        ("good", True, 3),
    ]
    assert [e.index for e in acks[0].errors] == [2] and "tail" in acks[0].errors[0].reason
    assert [e.reason for e in acks[1].errors] == [
        "chunk triples: heads, relations and tails are of different lengths (2, 1, 2)"
    ]
    assert acks[2].new_triples == 2 and acks[2].new_entities == 3
    assert client.graph_info("holidays").triples == 2
    answer = client.ask("who directed Holiday Inn", graph="holidays", max_hops=1).answers[0]
    assert answer.name == "Mark Sandrich"


def test_ingested_names_and_unmatched_texts_share_the_encoder_batcher(
    running_server: RunningServer, client: Client
) -> None:
    stats = running_server.app.service.batcher.stats
    names = [f"batched compound {i}" for i in range(5)]
    before = stats.misses
    acks = client.ingest(
        "batched", [TripleRecord(n, "inhibits", "batched enzyme") for n in names], wait_for_names=True
    )
    assert all(a.accepted for a in acks)
    # 6 entity names, the relation's phrase each way and what its answers are each way, none cached before
    assert stats.misses - before == len(names) + 5

    before = stats.misses
    assert client.lookup("batched", head="batched compound 3", relation="inhibits").total_facts == 1
    assert stats.misses == before  # matched by id: no embedding needed
    paraphrased = client.lookup("batched", head="compound number 3 (batched)", relation="inhibitors of")
    assert stats.misses - before == 2  # both texts embedded through the batcher, in one call
    assert paraphrased.resolved_relation == "inhibits" and paraphrased.total_facts >= 1
    before = stats.misses
    assert client.link("the enzyme that was batched", graph="batched", top_k=2).candidates
    assert stats.misses - before == 1


def test_restart_keeps_ingested_graph(tmp_path) -> None:  # noqa: ANN001
    relations = [
        RelationRecord("directed_by", inverse_name="directed", aliases=("director",)),
        RelationRecord("release_year", "released in", description="the year a film came out"),  # no triples
    ]
    first = RunningServer(server_config(tmp_path, demo=False))
    try:
        with first.client() as client:
            assert all(a.accepted for a in client.ingest("kept", [*relations, *MOVIES]))
            words = list(client.graph_info("kept").relation_words)
        assert len(first.app.service.encoder.cache) > 1  # names were encoded on the first start
    finally:
        first.stop()
    second = RunningServer(server_config(tmp_path, demo=False))
    try:
        encoder = second.app.service.encoder
        assert encoder is not None and encoder.cache is not None
        assert len(encoder.cache) == 1  # only the warm-up text: every name vector came from the store
        with second.client() as client:
            info = client.graph_info("kept")
            assert (info.entities, info.relations, info.triples) == (8, 3, 7)
            assert list(info.relation_words) == words  # the relations' words, as they were served
            assert [(w.id, w.name, w.inverse_name, list(w.aliases)) for w in words] == [
                ("directed_by", "", "directed", ["director"]),
                ("release_year", "released in", "", []),
                ("starred_actors", "", "", []),
            ]
            answer = client.ask("who directed Top Hat", graph="kept", max_hops=1).answers[0]
            assert answer.name == "Mark Sandrich"
            assert [g.name for g in client.list_graphs().graphs] == ["kept"]
    finally:
        second.stop()


def test_a_restart_reads_the_layouts_the_previous_start_built(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    first = RunningServer(server_config(tmp_path, demo=False))
    try:
        with first.client() as client:
            assert all(a.accepted for a in client.ingest("kept", MOVIES))
    finally:
        first.stop()
    built = []  # edges of every transition build (the warm-up builds a graph of its own)
    build = graphfuse.gnn.data.graph.build_transitions
    monkeypatch.setattr(
        "graphfuse.gnn.data.graph.build_transitions",
        lambda *edges: built.append(edges[0].numel()) or build(*edges),
    )
    answers = []
    for _ in range(3):  # built from the store's edges and kept, then read back twice
        server = RunningServer(server_config(tmp_path, demo=False))
        try:
            with server.client() as client:
                answer = client.ask("who starred in Top Hat", graph="kept", max_hops=1)
                answers.append([(a.entity_id, round(a.score, 6)) for a in answer.answers])
        finally:
            server.stop()
    assert built.count(sum(isinstance(r, TripleRecord) for r in MOVIES)) == 1  # the triples, sorted once
    assert answers[0] == answers[1] == answers[2] and answers[0]


def test_encoder_overload_is_resource_exhausted_and_the_server_recovers(tmp_path) -> None:  # noqa: ANN001
    config = server_config(tmp_path, demo=False)
    config.limits.max_queued_texts = 8
    config.limits.max_queue_ms = 0  # the count bound alone
    config.batch_wait_ms = 50.0
    server = RunningServer(config)
    try:
        with server.client() as client:
            texts = [f"text number {i} about graphs" for i in range(6)]
            futures = [
                client.embedder.Embed.future(pb.EmbedRequest(texts=[f"{t} {j}" for t in texts]), timeout=60)
                for j in range(12)
            ]
            codes = []
            for future in futures:
                try:
                    future.result()
                    codes.append(grpc.StatusCode.OK)
                except grpc.RpcError as error:
                    codes.append(error.code())
                    assert "queue is full" in error.details()
            assert grpc.StatusCode.OK in codes and grpc.StatusCode.RESOURCE_EXHAUSTED in codes
            assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
            assert len(client.embed(texts).embeddings) == 6  # accepted again once the queue drained
    finally:
        server.stop()


def test_expired_deadline_is_deadline_exceeded(client: Client) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        client.embedder.Embed(pb.EmbedRequest(texts=["a text that never reaches the model"]), timeout=0.0001)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert client.serving()


def test_error_messages_never_echo_a_huge_input_whole(client) -> None:  # noqa: ANN001
    error = rpc_error(client.lookup, "", head="zq" * 4000)  # 8000 characters, under the text limit
    assert error.code() == grpc.StatusCode.NOT_FOUND  # not a client-side RESOURCE_EXHAUSTED on a huge header
    assert error.details().startswith("head ") and len(error.details()) <= 1024


def test_chunks_received_together_are_stored_together_and_answered_in_order(
    running_server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = running_server.app.service
    store = service.registry.store
    stored_together: list[int] = []
    write_chunks = store.write_chunks

    def counted(graph, chunks, position=None):  # noqa: ANN001, ANN202
        stored_together.append(len(chunks))
        return write_chunks(graph, chunks, position)

    monkeypatch.setattr(store, "write_chunks", counted)
    fact = TripleRecord("aspirin", "treats", "headache")
    chunks = [
        IngestChunk("grouped", [fact], create=True),
        IngestChunk("grouped", [fact, TripleRecord("aspirin", "treats", "fever")]),  # one repeat, one new
        IngestChunk("grouped", [TripleRecord("aspirin", "", "pain")]),  # invalid: changes nothing
        IngestChunk("grouped", [], TripleColumns(["ibuprofen"], ["treats"], ["pain"])),
        IngestChunk("grouped", [Retraction("aspirin", "treats", "fever")]),  # checked after the chunks before
        IngestChunk("grouped", [TripleRecord("ibuprofen", "treats", "fever")]),
    ]

    async def answer() -> list:
        return [result async for result in service.ingest_chunks(chunks)]

    results = running_server._run(answer())
    assert [r.accepted for r in results] == [True, True, False, True, True, True]
    assert [r.new_triples for r in results] == [1, 1, 0, 1, 0, 1]
    assert [r.new_entities for r in results] == [2, 1, 0, 2, 0, 0]
    assert results[2].errors[0][0] == 0 and results[4].removed_triples == 1
    assert stored_together == [2, 1, 1, 1]  # a rejected chunk and a retraction end a group
    with running_server.client() as client:
        assert client.graph_info("grouped").triples == 3
        facts = client.lookup("grouped", head="aspirin", relation="treats")
        assert [t.tail_id for t in facts.triples] == ["headache"]


def test_ingest_retracts_facts_end_to_end(client: Client) -> None:
    facts = [TripleRecord("drug_x", "treats", "cough"), TripleRecord("drug_x", "treats", "fever")]
    assert all(a.accepted for a in client.ingest("retract", facts))
    assert client.lookup("retract", head="drug_x", relation="treats").total_facts == 2

    (ack,) = client.ingest("retract", [Retraction("drug_x", "treats", "cough")])
    assert ack.accepted and ack.removed_triples == 1
    after = client.lookup("retract", head="drug_x", relation="treats")
    assert [t.tail_id for t in after.triples] == ["fever"]
    assert client.graph_info("retract").triples == 1
    answer = client.ask("what does drug_x treat", graph="retract", top_k=5)
    assert "cough" not in [a.entity_id for a in answer.answers]

    (ack,) = client.ingest(
        "retract", [Retraction("drug_x", "cures", "fever"), Retraction("nobody", "treats", "x")]
    )
    assert not ack.accepted
    assert [e.index for e in ack.errors] == [0, 1]
    assert "relation 'cures'" in ack.errors[0].reason and "head 'nobody'" in ack.errors[1].reason
    assert client.graph_info("retract").triples == 1  # the rejected chunk changed nothing


def test_updates_are_answered_from_the_delta_then_merged_in_the_background(
    client: Client, running_server: RunningServer
) -> None:
    chain = [TripleRecord(f"step {i}", "leads_to", f"step {i + 1}") for i in range(50)]
    assert all(a.accepted for a in client.ingest("growing", chain))
    question = "what does step 3 lead to"
    assert "step 4" in [a.entity_id for a in client.ask(question, graph="growing", max_hops=1).answers]
    graph = running_server.app.service.graphs["growing"].graph
    merges = graph.merges

    assert all(a.accepted for a in client.ingest("growing", [TripleRecord("step 3", "leads_to", "exit")]))
    assert all(a.accepted for a in client.ingest("growing", [Retraction("step 3", "leads_to", "step 4")]))
    answers = [a.entity_id for a in client.ask(question, graph="growing", max_hops=1).answers]
    assert "exit" in answers and "step 4" not in answers
    assert graph.merges == merges and graph.delta_size == 2  # read beside the merged matrices, no rebuild

    due = merge_due_at(graph.num_edges)
    assert all(
        a.accepted
        for a in client.ingest("growing", [TripleRecord("hub", "links", f"leaf {i}") for i in range(due)])
    )
    for _ in range(100):  # the merge runs on its own thread after the ingest is acknowledged
        if graph.merges > merges:
            break
        time.sleep(0.05)
    assert graph.merges > merges and graph.delta_size == 0
    answers = [a.entity_id for a in client.ask(question, graph="growing", max_hops=1).answers]
    assert "exit" in answers and "step 4" not in answers


def test_relation_records_give_relations_their_words(client: Client, running_server: RunningServer) -> None:
    records = [
        RelationRecord("CtD", "treats", "treated by", ("cures",), "a compound treats a disease"),
        RelationRecord("CpD", "palliates"),
        TripleRecord("aspirin", "CtD", "headache"),
        TripleRecord("aspirin", "CpD", "fever"),
        RelationRecord("CtD", aliases=("is a therapy for",)),  # words add up; None keeps the others
    ]
    (ack,) = client.ingest("terse", records)
    assert ack.accepted and (ack.new_triples, ack.new_entities) == (2, 3)
    info = client.graph_info("terse")
    assert info.relations == 2 and list(info.relation_names) == ["CpD", "CtD"]
    assert [w.id for w in info.relation_words] == ["CpD", "CtD"]
    treats = info.relation_words[1]
    assert (treats.name, treats.inverse_name, treats.description) == (
        "treats",
        "treated by",
        "a compound treats a disease",
    )
    assert list(treats.aliases) == ["cures", "is a therapy for"]
    graph = running_server.app.service.graphs["terse"].graph
    phrases = graph.relation_phrases(graph.relation_index["CtD"])  # what the server matches questions with
    assert (tuple(treats.forward_phrases), tuple(treats.inverse_phrases)) == (
        phrases.forward,
        phrases.inverse,
    )
    assert (treats.forward_answers, treats.inverse_answers) == (
        phrases.forward_answers,
        phrases.inverse_answers,
    )
    assert "treats" in treats.forward_phrases[0] and "treated by" in treats.inverse_phrases[0]
    assert (info.relation_words[0].name, info.relation_words[0].aliases) == ("palliates", [])
    assert client.lookup("terse", head="aspirin", relation="treats").resolved_relation == "CtD"
    assert client.lookup("terse", head="aspirin", relation="Cures").resolved_relation == "CtD"  # an alias
    assert client.lookup("terse", head="aspirin", relation="used as therapy for").resolved_relation == "CtD"
    answer = client.ask("what is aspirin a therapy for", graph="terse", max_hops=1).answers[0]
    assert answer.entity_id == "headache"  # matched by the alias, not by the terse id
    assert client.graph_info("terse").relation_words == info.relation_words  # read again: the same
    assert all(a.accepted for a in client.ingest("terse", [RelationRecord("CpD", aliases=("eases",))]))
    assert list(client.graph_info("terse").relation_words[0].aliases) == ["eases"]  # a write shows at once


def test_invalid_relation_records_are_refused_naming_the_field(client: Client) -> None:
    assert all(a.accepted for a in client.ingest("terse_bad", [TripleRecord("a", "P27", "b")]))
    chunk = pb.IngestChunk(
        graph="terse_bad",
        chunk_id="bad",
        records=[
            pb.Record(relation=pb.Relation(id="P27", name=" citizen of")),
            pb.Record(relation=pb.Relation(name="citizen of")),
            pb.Record(relation=pb.Relation(id="P27", aliases=["nationality", "x" * 2000])),
            pb.Record(relation=pb.Relation(id="P27", description="a\ttab")),
            pb.Record(relation=pb.Relation(id="P27", name="country of citizenship")),  # valid
        ],
    )
    (ack,) = client.graphs.Ingest(iter([chunk]), timeout=30)
    assert not ack.accepted
    assert [(e.index, e.reason) for e in ack.errors] == [
        (0, "relation name ' citizen of' has leading or trailing whitespace"),
        (1, "relation id is empty"),
        (2, "relation alias is 2000 characters long (at most 1024)"),
        (3, "relation description 'a\\ttab' contains a tab, newline or NUL character"),
    ]
    (words,) = client.graph_info("terse_bad").relation_words
    assert (words.name, list(words.aliases)) == ("", [])  # the rejected chunk wrote nothing
    empty = pb.IngestChunk(graph="terse_bad", records=[pb.Record()])
    (ack,) = client.graphs.Ingest(iter([empty]), timeout=30)
    assert not ack.accepted and "set triple, remove_triple, entity or relation" in ack.errors[0].reason


def test_each_mention_is_tried_as_the_topic(client: Client) -> None:
    """WordNet-like graphs name common words too: "kind" is an entity, yet the question is about succubus."""
    records = [
        TripleRecord("succubus", "_hypernym", "demon"),
        TripleRecord("kind", "_hypernym", "category"),
        TripleRecord("kind", "_derivationally_related_form", "kindly"),
    ]
    assert all(a.accepted for a in client.ingest("words", records))
    response = client.ask("What is succubus a kind of?", graph="words", max_hops=1)
    assert [t.id for t in response.topic_entities] == ["succubus"]  # the reading that fits best
    assert response.answers[0].entity_id == "demon"


def test_a_mention_naming_many_entities_weighs_each_of_them_less(client: Client) -> None:
    """ "give" names four senses, each with a broader term; "mart" one: the question is about mart."""
    senses = [EntityRecord(f"give.{i}", "give") for i in range(4)]
    records = [*senses, *(TripleRecord(f"give.{i}", "_hypernym", f"transfer.{i}") for i in range(4))]
    records += [TripleRecord("mart", "_hypernym", "sales outlet")]
    assert all(a.accepted for a in client.ingest("senses", records))
    response = client.ask("Give the broader term for mart.", graph="senses", max_hops=1)
    assert [t.id for t in response.topic_entities] == ["mart"]
    assert response.answers[0].entity_id == "sales outlet"
