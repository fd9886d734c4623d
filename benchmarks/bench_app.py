"""The app every workload uses: one no-op async task under a fixed name, so the benchmark
process and its worker subprocesses agree on it whatever module they import it from."""

from __future__ import annotations

from typing import Any

import underway

NOOP_TASK = "bench.noop"


def make_app(url: str, **settings: Any) -> tuple[underway.App, underway.Task[[], Any]]:
    """A fresh App on `url` with the no-op task registered; the store is not opened yet."""
    app = underway.App(url, **settings)

    async def noop() -> None:
        return None

    task: underway.Task[[], Any] = app.task(name=NOOP_TASK)(noop)
    return app, task


REPORT_TASK = "bench.report"


def add_reporter(app: underway.App) -> underway.Task[[int, float], Any]:
    """A task that reports `steps` times, `pause` seconds apart; each status message is the
    wall-clock time it was sent, so a watcher on the same machine can tell how long it took
    to reach it."""
    import time

    def report(ctx: underway.Context, steps: int, pause: float) -> None:
        for _ in range(steps):
            ctx.report_status(f"{time.time():.6f}")
            time.sleep(pause)

    task: underway.Task[[int, float], Any] = app.task(name=REPORT_TASK)(report)
    return task


WAITER_TASK = "bench.wait_cancel"


def add_waiter(app: underway.App) -> underway.Task[[str], Any]:
    """A task that waits to be cancelled and appends the wall-clock time it saw the cancel
    to the file `record`, so the benchmark can tell how long a cancel took to reach it."""
    import os
    import time

    def wait_cancel(ctx: underway.Context, record: str) -> None:
        ctx.report_status("waiting")
        if ctx.wait_cancelled(60):
            seen = f"{ctx.job.id} {time.time():.6f}\n"
            fd = os.open(record, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, seen.encode())
            finally:
                os.close(fd)

    task: underway.Task[[str], Any] = app.task(name=WAITER_TASK)(wait_cancel)
    return task
