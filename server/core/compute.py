"""The server's compute thread: the model and the graph work share it, and it tells how long the work queued
for it has been waiting (the queue-delay bound sheds calls by that, as Triton's queue policy and CoDel do,
not by a count of calls)."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class ComputeThread(ThreadPoolExecutor):
    """One worker thread that knows when each job still waiting for it was submitted."""

    def __init__(self) -> None:
        super().__init__(1, thread_name_prefix="graphfuse-compute")
        self._lock = threading.Lock()
        self._submitted: collections.deque[float] = collections.deque()  # of the jobs waiting, oldest first

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        def started() -> Any:
            with self._lock:
                self._submitted.popleft()  # one worker: jobs start in the order they were submitted
            return fn(*args, **kwargs)

        with self._lock:
            self._submitted.append(time.monotonic())
            try:
                return super().submit(started)
            except RuntimeError:  # shut down: nothing was queued
                self._submitted.pop()
                raise

    def queue_delay(self) -> float:
        """Seconds the oldest job still waiting has waited (0 when none waits): work submitted now waits at
        least as long behind it."""
        with self._lock:
            return time.monotonic() - self._submitted[0] if self._submitted else 0.0


class StandingQueue:
    """Whether the queues hold a standing queue rather than a burst, from looks at their delay: shedding
    starts once the delay has stayed past ``bound`` for ``interval`` seconds, and stops once it has stayed
    within it as long (CoDel's test: a burst drains within an interval, a standing queue does not).

    Args:
        bound: the queue delay, in seconds, past which work waits too long (0: never shed).
        interval: seconds the delay must stay past (or within) the bound to start (or stop) shedding.
    """

    def __init__(self, bound: float, interval: float) -> None:
        self.bound = bound
        self.interval = interval
        self.shedding = False
        self._since: float | None = None  # when the delay first crossed to the other side of the bound

    def look(self, delay: float, now: float | None = None) -> bool:
        """Note the queue ``delay`` now; whether to shed calls (shedding, and the delay past the bound)."""
        if not self.bound:
            return False
        now = time.monotonic() if now is None else now
        if (delay > self.bound) != self.shedding:  # on the other side: for long enough?
            self._since = now if self._since is None else self._since
            if now - self._since >= self.interval:
                self.shedding, self._since = not self.shedding, None
        else:
            self._since = None
        return self.shedding and delay > self.bound
