"""Hostile input against every RPC: malformed and extreme requests, and raw bytes that are not protobuf.

Every answer must be a success or a documented status with a message; never INTERNAL or UNKNOWN, and the
server must still be serving at the end. `tests/server/test_fuzz.py` runs a few hundred cases; this runs as
many as asked against a fresh server.

Usage: python -m tests.helpers.fuzz [--examples 10000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphfuse.server.client import Client
from graphfuse.v1 import graphfuse_pb2 as pb

DOCUMENTED = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
}
PROTECTED_GRAPHS = {"umls"}  # never deleted by the fuzzer (other checks read it)
METHODS = {
    "/graphfuse.v1.Info/Info": False,
    "/graphfuse.v1.Embedder/Embed": False,
    "/graphfuse.v1.Graphs/CreateGraph": False,
    "/graphfuse.v1.Graphs/DeleteGraph": False,
    "/graphfuse.v1.Graphs/ListGraphs": False,
    "/graphfuse.v1.Graphs/GetGraphInfo": False,
    "/graphfuse.v1.Graphs/Ingest": True,  # streaming in
    "/graphfuse.v1.Reasoner/Ask": False,
    "/graphfuse.v1.Reasoner/AskStream": True,
    "/graphfuse.v1.Reasoner/Lookup": False,
    "/graphfuse.v1.Reasoner/Link": False,
}

texts = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=300),
    st.sampled_from(
        ["", " ", "\t\n", "umls", "aspirin", "[antibiotic]", "what treats [antibiotic]?", "\x00", "🧬" * 50]
    ),
    st.integers(8000, 10000).map(lambda n: "x" * n),  # around the character limit
    st.integers(100, 400).map(lambda n: "word " * n),  # over the token limit
)
graph_names = st.one_of(
    st.sampled_from(["", "umls", "fuzz", "nope", "a" * 64, "a" * 65, "../etc", "-x"]), texts
)
uint32 = st.one_of(st.sampled_from([0, 1, 3, 1000, 1001, 2**31, 2**32 - 1]), st.integers(0, 2**32 - 1))
floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32), st.sampled_from([0.0, 1.0, -1.0, 1.5])
)
enums = st.integers(0, 7)  # proto3 enums are open: unknown values arrive as numbers

records = st.one_of(
    st.builds(lambda h, r, t: pb.Record(triple=pb.Triple(head=h, relation=r, tail=t)), texts, texts, texts),
    st.builds(
        lambda i, n, a: pb.Record(entity=pb.Entity(id=i, name=n, aliases=a)),
        texts,
        texts,
        st.lists(texts, max_size=3),
    ),
    st.builds(
        lambda i, n, v, a, d: pb.Record(
            relation=pb.Relation(id=i, name=n, inverse_name=v, aliases=a, description=d)
        ),
        texts,
        texts,
        texts,
        st.lists(texts, max_size=3),
        texts,
    ),
    st.just(pb.Record()),  # an empty record
)
requests = st.one_of(
    st.builds(lambda: ("Info", pb.InfoRequest())),
    st.builds(
        lambda t, e: ("Embed", pb.EmbedRequest(texts=t, truncation=e)), st.lists(texts, max_size=4), enums
    ),
    st.builds(
        lambda g, d: ("CreateGraph", pb.CreateGraphRequest(graph=g, description=d)), graph_names, texts
    ),
    st.builds(
        lambda g: ("DeleteGraph", pb.DeleteGraphRequest(graph=g)),
        graph_names.filter(lambda g: g not in PROTECTED_GRAPHS),
    ),
    st.builds(lambda: ("ListGraphs", pb.ListGraphsRequest())),
    st.builds(lambda g: ("GetGraphInfo", pb.GetGraphInfoRequest(graph=g)), graph_names),
    st.builds(
        lambda g, q, t, k, h, e: (
            "Ask",
            pb.AskRequest(graph=g, question=q, topic_entities=t, top_k=k, max_hops=h, truncation=e),
        ),
        graph_names,
        texts,
        st.lists(texts, max_size=3),
        uint32,
        uint32,
        enums,
    ),
    st.builds(
        lambda g, h, r, t, k, x, f, m: (
            "Lookup",
            pb.LookupRequest(
                graph=g, head=h, relation=r, tail=t, top_k=k, exclude_facts=x, facts_only=f, min_score=m
            ),
        ),
        graph_names,
        texts,
        texts,
        texts,
        uint32,
        st.booleans(),
        st.booleans(),
        floats,
    ),
    st.builds(
        lambda g, t, k, e: ("Link", pb.LinkRequest(graph=g, text=t, top_k=k, truncation=e)),
        graph_names,
        texts,
        uint32,
        enums,
    ),
    st.builds(
        lambda chunks: ("Ingest", chunks),
        st.lists(
            st.builds(
                lambda g, c, r, create: pb.IngestChunk(graph=g, chunk_id=c, records=r, create_graph=create),
                graph_names.filter(lambda g: g not in PROTECTED_GRAPHS),
                texts,
                st.lists(records, max_size=5),
                st.booleans(),
            ),
            max_size=3,
        ),
    ),
    st.builds(
        lambda asks: ("AskStream", asks),
        st.lists(st.builds(lambda q, k: pb.AskRequest(question=q, top_k=k), texts, uint32), max_size=3),
    ),
)
raw = st.tuples(st.sampled_from(sorted(METHODS)), st.binary(max_size=200))


def call(client: Client, name: str, request: object) -> None:
    """One call; raises grpc.RpcError on a non-OK status, consumes streams whole."""
    stubs = {
        "Info": client.info.Info,
        "Embed": client.embedder.Embed,
        "CreateGraph": client.graphs.CreateGraph,
        "DeleteGraph": client.graphs.DeleteGraph,
        "ListGraphs": client.graphs.ListGraphs,
        "GetGraphInfo": client.graphs.GetGraphInfo,
        "Ask": client.reasoner.Ask,
        "Lookup": client.reasoner.Lookup,
        "Link": client.reasoner.Link,
    }
    if name == "Ingest":
        for _ in client.graphs.Ingest(iter(request), timeout=60):  # type: ignore[call-overload]
            pass
    elif name == "AskStream":
        for response in client.reasoner.AskStream(iter(request), timeout=60):  # type: ignore[call-overload]
            if response.HasField("error"):
                check_status(grpc.StatusCode(_code(response.error.code)), response.error.message)
    else:
        stubs[name](request, timeout=60)


def _code(value: int) -> tuple:
    return next(c.value for c in grpc.StatusCode if c.value[0] == value)


def call_raw(client: Client, method: str, payload: bytes) -> None:
    if METHODS[method]:
        stream = client.channel.stream_stream(method, request_serializer=None, response_deserializer=None)
        for _ in stream(iter([payload]), timeout=60):
            pass
    else:
        client.channel.unary_unary(method, request_serializer=None, response_deserializer=None)(
            payload, timeout=60
        )


def check_status(code: grpc.StatusCode, details: str | None) -> None:
    assert code in DOCUMENTED, f"undocumented status {code.name}: {details}"
    assert details, f"{code.name} without a message"
    assert not details.startswith("Stream removed"), f"the transport failed, not the server: {details[:200]}"


def fuzz(
    target: str, examples: int, derandomize: bool = False, on_result: Callable[[str], None] | None = None
) -> None:
    """Send ``examples`` requests and ``examples // 4`` raw payloads; AssertionError on a bad answer."""
    with Client(target, timeout=60) as client:
        config = settings(
            max_examples=examples,
            deadline=None,
            derandomize=derandomize,
            suppress_health_check=list(HealthCheck),
            database=None,
        )

        def answer(send: Callable[[], None]) -> None:
            try:
                send()
                result = "OK"
            except grpc.RpcError as error:
                check_status(error.code(), error.details())
                result = error.code().name
            if on_result:
                on_result(result)

        @config
        @given(requests)
        def structured(item: tuple[str, object]) -> None:
            answer(lambda: call(client, *item))

        @settings(config, max_examples=max(1, examples // 4))
        @given(raw)
        def unparsable(item: tuple[str, bytes]) -> None:
            answer(lambda: call_raw(client, *item))

        structured()
        unparsable()
        assert client.serving(), "the server stopped serving"


def main() -> None:
    from bench.umls_qa import start_server, stop_server

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--examples", type=int, default=10_000)
    args = parser.parse_args()
    counts: Counter[str] = Counter()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        process, target, _ = start_server(Path(tmp))
        try:
            fuzz(target, args.examples, on_result=lambda code: counts.update([code]))
            alive = process.poll() is None
        finally:
            stop_server(process)
    print(f"# graphfuse fuzzing: {sum(counts.values())} requests in {time.perf_counter() - started:.0f} s")
    print(
        f"# server alive at the end: {alive}; INTERNAL or UNKNOWN answers: 0 (any would have failed the run)"
    )
    print()
    print("| status | requests |")
    print("|---|---:|")
    for code, n in counts.most_common():
        print(f"| {code} | {n} |")


if __name__ == "__main__":
    main()
