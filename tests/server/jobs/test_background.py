"""Background jobs run on daemon threads: results and errors reach the awaiting task, and a job still
running never holds the process at exit."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import pytest

from graphfuse.server.jobs.background import on_daemon_thread


async def test_a_job_runs_on_a_daemon_thread_and_returns_its_result() -> None:
    def job(a: int, b: int) -> tuple[int, bool]:
        return a + b, threading.current_thread().daemon

    assert await on_daemon_thread(job, 2, 3) == (5, True)


async def test_a_jobs_error_reaches_the_awaiting_task() -> None:
    def job() -> None:
        raise ValueError("bad fit")

    with pytest.raises(ValueError, match="bad fit"):
        await on_daemon_thread(job)


def test_a_job_still_running_does_not_hold_the_process_at_exit() -> None:
    script = textwrap.dedent(
        """
        import asyncio, time
        from graphfuse.server.jobs.background import on_daemon_thread

        async def main():
            job = asyncio.ensure_future(on_daemon_thread(time.sleep, 120))
            await asyncio.sleep(0.2)
            job.cancel()

        asyncio.run(main())
        print("stopped", flush=True)
        """
    )
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "stopped"
    assert time.monotonic() - started < 60  # the two-minute job was not waited for
