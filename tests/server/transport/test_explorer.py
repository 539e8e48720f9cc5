"""The explorer page driven in headless Chromium (Debian's `chromium`) with Playwright."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import threading
import time
from pathlib import Path

import pytest

from graphfuse.server.jobs.link_training import train_pattern_graph
from tests.server.transport.test_gateway import ADMIN, Http, served  # noqa: F401 - served is a fixture

ARTIFACTS = Path(
    os.environ.get("GRAPHFUSE_ARTIFACTS", Path(__file__).parents[3] / "build" / "test-artifacts")
)
QUESTION = "what does bacterium cause"


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Debian package 'chromium' is missing (CI installs it in .ci/run)")
        pytest.skip("needs Debian package 'chromium' (apt-get install chromium)")
    return path


@pytest.fixture()
def page(chromium: str, served):  # noqa: ANN001, ANN201, F811
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_extra_http_headers({"Authorization": f"Bearer {ADMIN}"})
        yield page, served[1]
        browser.close()


def evidence_entities(answer_response: dict) -> set[str]:
    ids = {t["id"] for t in answer_response["topicEntities"]}
    for answer in answer_response["answers"]:
        ids.add(answer["entityId"])
        for path in answer["evidence"]:
            for hop in path["hops"]:
                ids |= {hop["headId"], hop["tailId"]}
    return ids


def test_ask_draws_answers_and_their_evidence(page) -> None:  # noqa: ANN001
    page, http = page
    page.goto(f"{http.base}/")
    page.wait_for_function("document.querySelector('#graph').value === 'umls'")
    page.wait_for_function("document.querySelector('#stats').textContent.includes('6529 triples')")
    page.fill("#question", QUESTION)
    page.fill("#top-k", "5")
    page.click("#ask-form button")
    page.wait_for_selector("#answers li")
    _, expected, _ = http("POST", "/v1/ask", {"graph": "umls", "question": QUESTION, "topK": 5})

    shown = page.locator("#answers li").evaluate_all("items => items.map(i => i.dataset.entity)")
    assert shown == [a["entityId"] for a in expected["answers"]]
    assert page.inner_text("#fused") == expected["text"]
    assert "reason" in page.inner_text("#timing")
    drawn = page.evaluate("explorer.cy.nodes().map(n => n.id())")
    assert sorted(drawn) == sorted(evidence_entities(expected))  # one node per evidence entity
    assert page.evaluate("explorer.cy.nodes('.topic').map(n => n.id())") == ["bacterium"]
    assert page.evaluate("explorer.cy.edges().length") > 0

    page.wait_for_timeout(300)  # let the layout settle before the picture
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "explorer.png"))
    assert (ARTIFACTS / "explorer.png").stat().st_size > 10_000

    page.evaluate("explorer.cy.getElementById('bacterium').emit('tap')")  # click an entity
    page.wait_for_selector("#lookup-results li")
    assert "bacterium" in page.inner_text("#entity")


def look_up(page, http, head: str, relation: str, shown: str) -> None:  # noqa: ANN001
    """Send the demo graph's Lookup form and wait until ``shown`` (a selector) is in its results."""
    page.goto(f"{http.base}/")
    page.wait_for_function("document.querySelector('#graph').value === 'umls'")
    page.fill("#lookup-head", head)
    page.fill("#lookup-relation", relation)
    page.click("#lookup-form button")
    page.wait_for_selector(f"#lookup-results {shown}")


def test_lookup_form_lists_facts(page) -> None:  # noqa: ANN001
    page, http = page
    look_up(page, http, "antibiotic", "treats", "li")
    text = page.inner_text("#lookup-results")
    assert "antibiotic -treats->" in text and "fact" in text


def test_unknown_graph_shows_an_error_message(page) -> None:  # noqa: ANN001
    page, http = page
    page.goto(f"{http.base}/?graph=nope")
    page.wait_for_selector("#error:not([hidden])")
    assert "NOT_FOUND" in page.inner_text("#error") and "nope" in page.inner_text("#error")
    page.fill("#question", QUESTION)
    page.click("#ask-form button")
    page.wait_for_function("document.querySelector('#error').textContent.includes('graph')")
    assert page.locator("#answers li").count() == 0


def test_paths_read_in_walking_order_and_edges_keep_the_fact_direction(page) -> None:  # noqa: ANN001
    page, http = page
    page.goto(f"{http.base}/")
    page.wait_for_function("document.querySelector('#graph').value === 'umls'")
    path = {
        "weight": 0.5,
        "hops": [
            {
                "headId": "a",
                "headName": "A",
                "relation": "r",
                "tailId": "b",
                "tailName": "B",
                "reversed": False,
            },
            {
                "headId": "c",
                "headName": "C",
                "relation": "s",
                "tailId": "b",
                "tailName": "B",
                "reversed": True,
            },
        ],
    }
    assert page.evaluate("path => pathText(path)", path) == "A -r-> B <-s- C"
    response = {
        "topicEntities": [{"id": "a", "name": "A"}],
        "answers": [{"entityId": "c", "name": "C", "evidence": [path]}],
    }
    edges = page.evaluate(
        "r => evidenceElements(r).filter(e => e.data.source).map(e => [e.data.source, e.data.target])",
        response,
    )
    assert edges == [["a", "b"], ["c", "b"]]


def test_graph_view_lists_each_relations_words(page) -> None:  # noqa: ANN001
    page, http = page
    chunk = {
        "createGraph": True,
        "records": [
            {"relation": {"id": "CtD", "name": "treats", "inverseName": "treated by", "aliases": ["cures"]}},
            {"triple": {"head": "aspirin", "relation": "CtD", "tail": "headache"}},
            {"triple": {"head": "aspirin", "relation": "rel_12", "tail": "pain"}},
        ],
    }
    assert http("POST", "/v1/graphs/words/ingest", chunk)[1]["accepted"]
    page.goto(f"{http.base}/?graph=words")
    page.wait_for_selector("#relations li", state="attached")  # in a closed <details> until clicked
    shown = page.locator("#relations li").evaluate_all("items => items.map(i => i.dataset.relation)")
    assert shown == ["CtD", "rel_12"]
    page.click("#relations-box summary")
    given = page.inner_text("#relations li[data-relation='CtD']")
    assert 'name "treats"' in given and 'inverse "treated by"' in given and 'aliases "cures"' in given
    assert "head \u2192 tail: " in given and "treated by" in given.split("tail \u2192 head: ")[1]
    assert "no words given" in page.inner_text("#relations li[data-relation='rel_12']")


def test_graph_view_shows_names_still_being_embedded(page, served) -> None:  # noqa: ANN001, F811
    page, http = page
    registry = served[0].app.service.registry
    release = threading.Event()
    embed = registry._embed_names

    async def held(texts: list[str], piece: int = 0):  # noqa: ANN202
        if asyncio.current_task() is registry._name_embedder:  # the background pass only
            while not release.is_set():
                await asyncio.sleep(0.01)
        return await embed(texts, piece)

    registry._embed_names = held
    try:
        triples = [{"triple": {"head": f"drug {i}", "relation": "treats", "tail": "pain"}} for i in range(3)]
        assert http("POST", "/v1/graphs/pending/ingest", {"createGraph": True, "records": triples})[1][
            "accepted"
        ]
        page.goto(f"{http.base}/?graph=pending")
        page.wait_for_selector("#names", state="visible")
        assert page.eval_on_selector("#names", "bar => [bar.value, bar.max]") == [0, 4]
        release.set()
        page.wait_for_selector("#names", state="hidden", timeout=10_000)  # refreshed until every name is in
    finally:
        release.set()
        registry._embed_names = embed


def test_inferred_triples_show_their_evidence_by_pattern(page, served) -> None:  # noqa: ANN001, F811
    page, http = page
    train_pattern_graph(served[0].app.config.data_dir, "umls", ["treats"])
    deadline = time.monotonic() + 30
    while not http("GET", "/v1/graphs/umls")[1].get("linkPredictor", "").startswith("PathPatternPredictor"):
        assert time.monotonic() < deadline, "the server never picked up the path-pattern predictor"
        time.sleep(0.2)
    look_up(page, http, "antibiotic", "treats", ".pattern")
    pattern = page.inner_text("#lookup-results .pattern")  # the first inferred triple's strongest pattern
    assert re.fullmatch(r"\S+( (-[^>]+->|<-.+-) \S+)+ \(\d+% of the evidence\)", pattern), pattern
