"""The HTTP/JSON gateway against a real server: every route, and each error mapping."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode, checks

from graphfuse.server.client import Client
from tests.server.conftest import RunningServer, server_config

ADMIN, READER = "admin-secret-token", "reader-secret-token"


class Http:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def __call__(
        self, method: str, path: str, body: Any = None, token: str | None = ADMIN, **headers: str
    ) -> tuple[int, Any, dict[str, str]]:
        data = body if isinstance(body, bytes) else None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        for name, value in headers.items():
            request.add_header(name.replace("_", "-"), value)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, raw, got = response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as error:
            status, raw, got = error.code, error.read(), dict(error.headers)
        content_type = got.get("Content-Type", "")
        return status, json.loads(raw) if "json" in content_type else raw.decode(), got


def tokens_file(folder: Path) -> Path:
    path = folder / "tokens.json"
    entries = [
        {"name": "admin", "token": ADMIN, "write": ["*"]},
        {"name": "reader", "token": READER, "read": ["umls"]},
    ]
    path.write_text(json.dumps({"tokens": entries}))
    return path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, Http]]:
    folder = tmp_path_factory.mktemp("gateway")
    config = server_config(folder / "data")
    config.http_port = 0
    config.tokens_file = tokens_file(folder)
    config.limits.max_queued_texts = 64
    server = RunningServer(config)
    assert server.app.http_port
    yield server, Http(server.app.http_port)
    server.stop()


@pytest.fixture()
def http(served: tuple[RunningServer, Http]) -> Http:
    return served[1]


def test_ask_returns_the_grpc_answer_as_canonical_json(http: Http) -> None:
    status, body, headers = http("POST", "/v1/ask", {"question": "what does bacterium cause", "topK": 3})
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert len(body["answers"]) == 3
    first = body["answers"][0]
    assert first["kind"] in ("ANSWER_KIND_FACT", "ANSWER_KIND_INFERRED") and 0 <= first["score"] <= 1
    assert first["evidence"][0]["hops"][0]["headId"] == "bacterium"
    assert body["topicEntities"][0]["id"] == "bacterium" and body["text"]
    assert int(body["timing"]["totalUs"]) > 0  # uint64 travels as a string in the JSON mapping
    proto_names = http("POST", "/v1/ask", {"question": "what does bacterium cause", "top_k": 1})[1]
    assert len(proto_names["answers"]) == 1  # the proto field names are accepted too


def test_lookup_link_embed_graphs_and_info(http: Http) -> None:
    status, body, _ = http("POST", "/v1/lookup", {"head": "antibiotic", "relation": "treats", "topK": 100})
    assert status == 200 and body["resolvedRelation"] == "treats"
    assert int(body["totalFacts"]) == len(body["triples"]) > 0
    status, body, _ = http("POST", "/v1/link", {"text": "antibiotic", "topK": 2})
    assert status == 200 and body["candidates"][0]["id"] == "antibiotic"
    status, body, _ = http("POST", "/v1/embed", {"texts": ["a graph", "another one"]})
    assert status == 200 and body["dimensions"] == 384 and len(body["embeddings"][1]["values"]) == 384
    status, body, _ = http("GET", "/v1/graphs")
    assert status == 200 and [g["name"] for g in body["graphs"]] == ["umls"]
    status, body, _ = http("GET", "/v1/graphs/umls")
    assert status == 200 and body["triples"] == "6529" and "treats" in body["relationNames"]
    status, body, _ = http("GET", "/v1/info")
    assert status == 200 and body["apiVersion"] == "graphfuse.v1" and body["defaultGraph"] == "umls"


def test_json_ingest_takes_relation_records_and_graph_info_shows_their_words(
    served: tuple[RunningServer, Http],
) -> None:
    server, http = served
    chunk = {
        "createGraph": True,
        "chunkId": "c1",
        "records": [
            {
                "relation": {
                    "id": "CtD",
                    "name": "treats",
                    "inverseName": "treated by",
                    "aliases": ["cures"],
                    "description": "a compound treats a disease",
                }
            },
            {"triple": {"head": "aspirin", "relation": "CtD", "tail": "headache"}},
            {"relation": {"id": "CtD", "aliases": ["is a therapy for"]}},
        ],
    }
    try:
        status, ack, _ = http("POST", "/v1/graphs/terse/ingest", chunk)
        assert status == 200 and ack["accepted"] and ack["chunkId"] == "c1"
        assert (ack["records"], ack["newTriples"]) == (3, 1)
        status, info, _ = http("GET", "/v1/graphs/terse")
        assert status == 200 and info["relationNames"] == ["CtD"]
        (words,) = info["relationWords"]
        assert {k: words[k] for k in ("id", "name", "inverseName", "aliases", "description")} == {
            "id": "CtD",
            "name": "treats",
            "inverseName": "treated by",
            "aliases": ["cures", "is a therapy for"],
            "description": "a compound treats a disease",
        }
        assert "treats" in words["forwardPhrases"][0] and "treated by" in words["inversePhrases"][0]
        bad = {"records": [{"relation": {"id": "CtD", "name": ""}}, {"relation": {"name": "x"}}, {}]}
        status, ack, _ = http("POST", "/v1/graphs/terse/ingest", bad)
        assert status == 200 and not ack["accepted"]  # refused records are answered in the ack, per record
        assert [e.get("index", 0) for e in ack["errors"]] == [2]  # an empty record is refused first
        bad["records"].pop()
        status, ack, _ = http("POST", "/v1/graphs/terse/ingest", bad)
        assert [(e.get("index", 0), e["reason"]) for e in ack["errors"]] == [(1, "relation id is empty")]
        status, body, _ = http("POST", "/v1/graphs/terse/ingest", {"records": [{"relation": {"nmae": "x"}}]})
        assert (status, body["status"]) == (400, "INVALID_ARGUMENT") and "nmae" in body["message"]
        status, body, _ = http("POST", "/v1/graphs/terse/ingest", chunk, token=READER)
        assert (status, body["status"]) == (403, "PERMISSION_DENIED")
    finally:
        with Client(server.target, token=ADMIN) as client:
            client.delete_graph("terse")


def test_health_openapi_and_the_explorer_page(http: Http) -> None:
    assert http("GET", "/healthz", token=None)[:2] == (200, {"status": "alive"})
    assert http("GET", "/readyz", token=None)[:2] == (200, {"status": "SERVING"})
    status, document, _ = http("GET", "/openapi.json", token=None)
    assert status == 200 and document["openapi"].startswith("3.")
    ask = document["paths"]["/v1/ask"]["post"]
    assert ask["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/graphfuse.v1.AskRequest"
    }
    request_schema = document["components"]["schemas"]["graphfuse.v1.AskRequest"]
    assert request_schema["properties"]["topK"]["type"] == "integer"
    timing = document["components"]["schemas"]["graphfuse.v1.Timing"]
    assert timing["properties"]["totalUs"]["type"] == "string"  # uint64 as a decimal string
    assert {"400", "401", "403", "404", "429", "503", "504"} <= set(ask["responses"])
    ingest = document["paths"]["/v1/graphs/{graph}/ingest"]["post"]
    assert ingest["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/graphfuse.v1.IngestAck"
    }
    relation = document["components"]["schemas"]["graphfuse.v1.Relation"]
    assert set(relation["properties"]) == {"id", "name", "inverseName", "aliases", "description"}
    assert "relationWords" in document["components"]["schemas"]["graphfuse.v1.GraphInfo"]["properties"]
    status, page, headers = http("GET", "/", token=None)
    assert status == 200 and "graphfuse explorer" in page and headers["Content-Type"].startswith("text/html")
    status, script, _ = http("GET", "/static/vendor/cytoscape-3.34.4.min.js", token=None)
    assert status == 200 and "cytoscape" in script[:2000].lower()


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code", "fragment"),
    [
        ("POST", "/v1/ask", {"question": ""}, 400, "INVALID_ARGUMENT", "question is empty"),
        ("POST", "/v1/ask", {"questio": "x"}, 400, "INVALID_ARGUMENT", "no field named"),
        ("POST", "/v1/ask", b"{not json", 400, "INVALID_ARGUMENT", "not a JSON graphfuse.v1.AskRequest"),
        ("POST", "/v1/ask", {"question": "x", "topK": 5000}, 400, "INVALID_ARGUMENT", "top_k"),
        ("POST", "/v1/ask", {"graph": "nope", "question": "x"}, 404, "NOT_FOUND", "graph 'nope'"),
        ("GET", "/v1/graphs/nope", None, 404, "NOT_FOUND", "nope"),
        ("POST", "/v1/lookup", {"head": "zzqx unknown qqq"}, 404, "NOT_FOUND", "head"),
        ("GET", "/v1/nothing", None, 404, "NOT_FOUND", "/v1/nothing"),
        ("GET", "/v1/ask", None, 405, "UNIMPLEMENTED", "GET /v1/ask"),
    ],
)
def test_errors_are_json_statuses(
    http: Http, method: str, path: str, body: Any, status: int, code: str, fragment: str
) -> None:
    got_status, got, _ = http(method, path, body)
    assert got_status == status
    assert got["status"] == code and fragment in got["message"]
    assert set(got) == {"code", "status", "message"}


def test_tokens_apply_as_over_grpc(http: Http) -> None:
    status, body, _ = http("POST", "/v1/ask", {"question": "what treats fever"}, token=None)
    assert (status, body["status"]) == (401, "UNAUTHENTICATED") and "bearer" in body["message"]
    status, body, _ = http("POST", "/v1/ask", {"question": "what treats fever"}, token="wrong")
    assert (status, body["status"]) == (401, "UNAUTHENTICATED")
    status, _, _ = http("POST", "/v1/ask", {"question": "what treats fever"}, token=READER)
    assert status == 200
    status, body, _ = http("POST", "/v1/ask", {"graph": "other", "question": "x"}, token=READER)
    assert (status, body["status"]) == (403, "PERMISSION_DENIED")


def test_overload_is_429_and_deadlines_504(http: Http) -> None:
    texts = [f"overload text {i}" for i in range(65)]  # more than the 64 texts the queue may hold
    status, body, _ = http("POST", "/v1/embed", {"texts": texts})
    assert (status, body["status"]) == (429, "RESOURCE_EXHAUSTED")
    status, body, _ = http("POST", "/v1/ask", {"question": "what does bacterium cause"}, grpc_timeout="1n")
    assert (status, body["status"]) == (504, "DEADLINE_EXCEEDED")
    status, body, _ = http("POST", "/v1/ask", {"question": "x"}, grpc_timeout="soon")
    assert (status, body["status"]) == (400, "INVALID_ARGUMENT") and "grpc-timeout" in body["message"]


def test_request_ids_and_metrics_are_shared_with_grpc(served: tuple[RunningServer, Http]) -> None:
    server, http = served
    registry = server.app.metrics.registry
    labels = {"method": "Ask", "code": "NOT_FOUND"}
    before = registry.get_sample_value("graphfuse_requests_total", labels) or 0
    status, _, headers = http("POST", "/v1/ask", {"graph": "nope", "question": "x"}, x_request_id="trace-7")
    assert status == 404 and headers["x-request-id"] == "trace-7"
    assert registry.get_sample_value("graphfuse_requests_total", labels) == before + 1


def test_not_ready_is_503(tmp_path: Path) -> None:
    config = server_config(tmp_path)
    config.http_port = 0
    server = RunningServer(config, start_service=False)
    try:
        server._run(server.app.listen())
        http = Http(server.app.http_port)
        assert http("GET", "/readyz")[:2] == (503, {"status": "NOT_SERVING"})
        status, body, _ = http("POST", "/v1/ask", {"question": "what treats fever"})
        assert (status, body["status"]) == (503, "UNAVAILABLE") and "starting" in body["message"]
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------- contract
CONTRACT_CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_route_keeps_its_openapi_contract(http: Http, mode: GenerationMode) -> None:
    """Bodies generated from /openapi.json (valid ones, then invalid ones), on every route: never a 5xx,
    and every response matches the published schema."""
    schema = schemathesis.openapi.from_url(f"{http.base}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/ask", "/v1/lookup", "/v1/embed", "/v1/graphs/{graph}"}
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=12,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def call(case: schemathesis.Case) -> None:
            # a generated deadline such as "0H" rightly ends in 504: deadlines are tested on their own above
            case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "grpc-timeout"}
            response = case.call(headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60)
            case.validate_response(response, checks=CONTRACT_CHECKS)

        call()
