"""Concurrent questions on one graph are answered by one batched reasoner call; each caller gets its own."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from graphfuse.encoder import DeadlineExpired
from graphfuse.gnn.inference.reasoner import Question, Reasoning
from graphfuse.server.core.errors import ResourceExhausted
from graphfuse.server.core.reason_batcher import ReasonBatcher


class RecordingReasoner:
    def __init__(self, fail: bool = False) -> None:
        self.batch_sizes: list[int] = []
        self.fail = fail

    def reason(self, graph, relation_vectors, questions):  # noqa: ANN001, ANN201
        if self.fail:
            raise RuntimeError("reasoner broke")
        self.batch_sizes.append(len(questions))
        return [Reasoning([], touched_entities=int(q.vector[0])) for q in questions]


class FakeState:
    def __init__(self, reasoner: RecordingReasoner) -> None:
        self.reasoner = reasoner
        self.graph = None
        self.relation_vectors = None


def ask(state: FakeState, questions: list[Question]) -> list[Reasoning]:
    return state.reasoner.reason(state.graph, state.relation_vectors, questions)


def question(tag: int) -> Question:
    return Question(torch.tensor([float(tag)]), ((0, 1.0),), 5, 2)


@pytest.fixture()
def executor():  # noqa: ANN201
    with ThreadPoolExecutor(1) as pool:
        yield pool


async def test_concurrent_questions_share_one_call_and_keep_their_own_results(executor) -> None:  # noqa: ANN001
    batcher = ReasonBatcher(executor, ask, max_wait_ms=20)
    await batcher.start()
    first, second = RecordingReasoner(), RecordingReasoner()
    a, b = FakeState(first), FakeState(second)
    try:
        results = await asyncio.gather(*(batcher.submit(a if i % 2 else b, question(i)) for i in range(10)))
        assert [r.touched_entities for r in results] == list(range(10))
        assert first.batch_sizes == [5] and second.batch_sizes == [5]  # one call per graph
        assert (batcher.batches, batcher.items) == (2, 10)
    finally:
        await batcher.close()


async def test_a_failing_batch_fails_only_its_callers(executor) -> None:  # noqa: ANN001
    batcher = ReasonBatcher(executor, ask, max_wait_ms=20)
    await batcher.start()
    broken, fine = FakeState(RecordingReasoner(fail=True)), FakeState(RecordingReasoner())
    try:
        outcomes = await asyncio.gather(
            batcher.submit(broken, question(1)), batcher.submit(fine, question(2)), return_exceptions=True
        )
        assert isinstance(outcomes[0], RuntimeError) and outcomes[1].touched_entities == 2
    finally:
        await batcher.close()


async def test_a_full_queue_is_resource_exhausted(executor) -> None:  # noqa: ANN001
    batcher = ReasonBatcher(executor, ask, max_wait_ms=50, max_queued=2)
    await batcher.start()
    state = FakeState(RecordingReasoner())
    try:
        outcomes = await asyncio.gather(
            *(batcher.submit(state, question(i)) for i in range(5)), return_exceptions=True
        )
        rejected = [o for o in outcomes if isinstance(o, ResourceExhausted)]
        assert rejected and "queue is full" in str(rejected[0])
        assert sum(isinstance(o, Reasoning) for o in outcomes) == 5 - len(rejected)
    finally:
        await batcher.close()


async def test_questions_past_their_deadline_are_dropped_before_reasoning(executor) -> None:  # noqa: ANN001
    batcher = ReasonBatcher(executor, ask, max_wait_ms=20)
    await batcher.start()
    reasoner = RecordingReasoner()
    state = FakeState(reasoner)
    try:
        late = batcher.submit(state, question(1), deadline=time.monotonic() - 1)
        on_time = batcher.submit(state, question(2), deadline=time.monotonic() + 60)
        results = await asyncio.gather(late, on_time, return_exceptions=True)
        assert isinstance(results[0], DeadlineExpired)
        assert results[1].touched_entities == 2
        assert reasoner.batch_sizes == [1]  # the late question cost no reasoning
    finally:
        await batcher.close()


async def test_items_queued_past_the_queue_delay_bound_are_refused(executor) -> None:  # noqa: ANN001
    batcher = ReasonBatcher(executor, ask, max_wait_ms=1, max_batch=1)
    await batcher.start()
    state = FakeState(RecordingReasoner())
    busy = executor.submit(time.sleep, 0.2)  # the compute thread is busy: the first window waits behind it
    try:
        outcomes = await asyncio.gather(
            *(batcher.submit(state, question(i), max_queue_delay=0.05) for i in range(3)),
            batcher.submit(state, question(3)),  # no bound: answered however long it waits
            return_exceptions=True,
        )
        refused = [o for o in outcomes if isinstance(o, ResourceExhausted)]
        assert refused and "max_queue_ms" in str(refused[0]) and isinstance(outcomes[3], Reasoning)
        assert batcher.queue_delay() == 0.0
    finally:
        busy.result()
        await batcher.close()
