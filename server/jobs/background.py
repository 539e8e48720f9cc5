"""Background jobs of a running server: the demo graph's reasoner, and recommenders fitted and refreshed
on live interaction graphs. They run on their own thread and hand their results to the service core
through checkpoints or by swapping a graph's recommender; the core knows nothing of them."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from graphfuse.gnn.training.question_reasoner import TrainConfig
from graphfuse.server.core.service import GraphService
from graphfuse.server.core.state import GraphState
from graphfuse.server.jobs.reasoner_training import mean_hits_at_1, train_graph
from graphfuse.server.jobs.recommend_training import infer_schema, train_recommender_graph
from graphfuse.server.storage.checkpoints import checkpoint_path

log = logging.getLogger(__name__)
T = TypeVar("T")


async def on_daemon_thread(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on a new daemon thread, awaited: unlike an executor's worker, the interpreter does not
    wait for it at exit."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if done.done():  # the awaiting task was cancelled
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)

    def run() -> None:
        try:
            result, error = fn(*args), None
        except BaseException as raised:  # noqa: BLE001 - handed to the awaiting task
            result, error = None, raised
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:  # the event loop has closed: nobody waits for the result
            pass

    threading.Thread(target=run, name="graphfuse-refit", daemon=True).start()
    return await done


class BackgroundJobs:
    """The jobs a server runs beside its queries, one at a time, each on a daemon thread of its own: a fit
    still running when the server stops is abandoned rather than waited for at exit (what a job writes,
    it writes atomically, so nothing half-written is left).

    Args:
        service: the started service whose graphs the jobs read; its checkpoint watcher loads what the
            jobs write.
    """

    def __init__(self, service: GraphService) -> None:
        self.service = service
        self.config = service.config
        self._one_at_a_time = asyncio.Lock()
        self._tasks: list[asyncio.Task] = []
        self.demo_training: asyncio.Task | None = None
        self._not_interactions: dict[str, int] = {}  # graph -> edges when it was found not to be one

    def start(self) -> None:
        if self.config.recommend_refresh_seconds > 0:
            self._tasks.append(asyncio.create_task(self._refresh_recommenders()))
        if self.config.demo and self.config.train_demo:
            self.demo_training = asyncio.create_task(self._train_demo())
            self._tasks.append(self.demo_training)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()

    async def _on_refit(self, fn: Any, *args: Any) -> Any:
        async with self._one_at_a_time:
            return await on_daemon_thread(fn, *args)

    async def _refresh_recommenders(self) -> None:
        """Refit a recommender's global structures on the live graph once its interactions moved enough; the
        fit runs on the refit thread, so queries (which read each user's own interactions live) go on."""
        sizes: dict[str, int] = {}  # edges of each graph at the previous look
        while True:
            await asyncio.sleep(self.config.recommend_refresh_seconds)
            for name, state in list(self.service.graphs.items()):
                quiet, sizes[name] = sizes.get(name) == state.graph.num_edges, state.graph.num_edges
                if state.recommender is None and self.config.recommend_auto and quiet:
                    await self._fit_recommender(name, state)
                current = state.recommender
                share = self.config.recommend_refresh_share
                if current is None or not await self.service.on_compute(current.stale, state.graph, share):
                    continue
                pairs = await self.service.on_compute(current.refit, state.graph)
                try:
                    fresh = await self._on_refit(current.refitted, *pairs)
                except (ValueError, RuntimeError) as error:
                    log.error("graph %s: refreshing the recommender failed: %s", name, error)
                    continue
                if state.recommender is current:  # not replaced by a new checkpoint meanwhile
                    state.recommender = fresh
                    log.info("graph %s: %s", name, fresh.description)

    async def _fit_recommender(self, name: str, state: GraphState) -> None:
        """Fit a recommender for an interaction graph that has none, as `graphfuse train --task recommend`
        would; the checkpoint watcher then loads it. Other graphs are left alone."""
        path = checkpoint_path(self.config.data_dir, name, "recommend")
        if path.exists() or state.graph.num_edges == self._not_interactions.get(name):
            return
        try:
            await self.service.on_compute(infer_schema, state.graph)
        except ValueError:  # several relations, or no typed users and items
            self._not_interactions[name] = state.graph.num_edges
            return
        log.info("graph %s: fitting a recommender for its interactions", name)
        try:
            report = await self._on_refit(
                functools.partial(train_recommender_graph, self.config.data_dir, name)
            )
        except (ValueError, RuntimeError) as error:
            log.error("graph %s: fitting a recommender failed: %s", name, error)
            self._not_interactions[name] = state.graph.num_edges
            return
        log.info("graph %s: %s", name, report.description)

    async def _train_demo(self) -> None:
        """Train the demo graph's reasoner when it has no checkpoint and none was turned down before: on
        questions generated from the graph; the checkpoint watcher loads it. It is written only if it
        answers unseen phrasings at least as well as zero-shot, else the decision is kept beside the
        checkpoints (``<graph>.zero-shot.json``) so that a restart does not train again."""
        name, config = self.config.default_graph, self.config
        path = checkpoint_path(config.data_dir, name)
        declined = path.with_suffix(".zero-shot.json")
        if path.exists() or declined.exists():
            return
        log.info("graph %s: training a reasoner on generated questions (no checkpoint yet)", name)
        train = functools.partial(
            train_graph,
            config.data_dir,
            name,
            [],
            holdout=0.0,
            generated_per_hop=config.demo_questions,
            train_config=TrainConfig(epochs=config.demo_epochs),
            unseen_per_hop=config.demo_check_questions,
            keep_if_better=True,
        )
        try:
            report = await self._on_refit(train)
        except (ValueError, RuntimeError) as error:
            log.error("graph %s: training its reasoner failed: %s", name, error)
            return
        assert report.unseen is not None and report.unseen_zero_shot is not None
        trained, zero_shot = mean_hits_at_1(report.unseen), mean_hits_at_1(report.unseen_zero_shot)
        if not report.written:
            declined.parent.mkdir(parents=True, exist_ok=True)
            declined.write_text(json.dumps({"trained": trained, "zero_shot": zero_shot}) + "\n")
        log.info(
            "graph %s: trained in %.0f s; unseen phrasings, mean Hits@1 %.3f trained vs %.3f zero-shot: %s",
            name,
            report.seconds,
            trained,
            zero_shot,
            "using the trained reasoner" if report.written else "staying zero-shot",
        )
