"""Prometheus metrics in gRPC-only mode, and request ids on calls and log lines."""

from __future__ import annotations

import json
import logging
import time
import urllib.request

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from graphfuse.gnn.data.records import TripleRecord
from graphfuse.server.transport.logs import JsonFormatter, RequestIdFilter
from graphfuse.v1 import graphfuse_pb2 as pb
from tests.server.conftest import RunningServer, server_config
from tests.server.test_server import rpc_error


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    config = server_config(tmp_path_factory.mktemp("metrics"), demo=False)
    config.metrics_port = 0
    server = RunningServer(config)
    yield server
    server.stop()


def scrape(server: RunningServer) -> dict[tuple[str, tuple], float]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{server.app.metrics_port}/metrics", timeout=10).read()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def test_calls_batches_cache_and_graphs_are_counted(observed: RunningServer) -> None:
    with observed.client() as client:
        assert all(
            a.accepted for a in client.ingest("drugs", [TripleRecord("aspirin", "treats", "headache")])
        )
        client.embed(["what treats headache"] * 3)
        client.embed(["what treats headache"])  # a cache hit
        client.ask("what does aspirin treat", graph="drugs")
        assert (
            rpc_error(client.lookup, "drugs", head="nothing like it at all").code()
            == grpc.StatusCode.NOT_FOUND
        )
    not_found = ("graphfuse_requests_total", (("code", "NOT_FOUND"), ("method", "Lookup")))
    deadline = time.monotonic() + 10
    while not_found not in (samples := scrape(observed)):  # counted just after the status is sent
        assert time.monotonic() < deadline, "the NOT_FOUND Lookup was never counted"
        time.sleep(0.01)
    assert samples[("graphfuse_requests_total", (("code", "OK"), ("method", "Embed")))] == 2
    assert samples[("graphfuse_requests_total", (("code", "NOT_FOUND"), ("method", "Lookup")))] == 1
    assert samples[("graphfuse_request_seconds_count", (("method", "Embed"),))] == 2
    assert samples[("graphfuse_stage_seconds_count", (("method", "Embed"), ("stage", "encode")))] >= 1
    batches = samples[("graphfuse_encoder_batch_texts_count", ())]
    texts = samples[("graphfuse_encoder_batch_texts_sum", ())]
    assert batches >= 1 and texts >= batches  # the average batch size is texts / batches
    assert samples[("graphfuse_encoder_batch_tokens_sum", ())] >= texts
    assert samples[("graphfuse_encoder_cache_total", (("result", "hit"),))] >= 1
    assert samples[("graphfuse_graph_size", (("graph", "drugs"), ("kind", "edges")))] == 1
    assert samples[("graphfuse_graph_size", (("graph", "drugs"), ("kind", "delta_edges")))] == 0
    assert ("graphfuse_graph_merges_total", (("graph", "drugs"),)) in samples
    assert ("graphfuse_encoder_queued_texts", ()) in samples
    for stage in ("queue", "tokenize", "forward", "pool"):
        assert samples[("graphfuse_encoder_stage_seconds_total", (("stage", stage),))] > 0
    assert samples[("graphfuse_ask_batch_items_sum", ())] == 1
    assert samples[("graphfuse_ask_compute_seconds_total", ())] > 0


def test_request_ids_are_echoed_and_generated(observed: RunningServer) -> None:
    with observed.client() as client:
        _, call = client.info.Info.with_call(
            pb.InfoRequest(),
            metadata=(("x-request-id", "trace-42"),),
        )
        assert dict(call.trailing_metadata())["x-request-id"] == "trace-42"
        _, call = client.info.Info.with_call(pb.InfoRequest())
        assert len(dict(call.trailing_metadata())["x-request-id"]) == 16


def test_json_log_lines_carry_the_request_id() -> None:
    record = logging.LogRecord("graphfuse", logging.INFO, __file__, 1, "hello %s", ("there",), None)
    RequestIdFilter().filter(record)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "hello there" and entry["request_id"] == "-" and entry["level"] == "INFO"
