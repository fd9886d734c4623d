"""The app that the process tests run in real worker processes.

Run a worker with `python -m procapp [--concurrency N] [--burst]`. The database URL and the
settings come from `UNDERWAY_*` variables; every task appends one line per event to the file
named by `PROCAPP_RECORD_FILE`:

    <event> <job id> <pid> <attempt> [<detail>]

Each line is written with a single `os.write` on an `O_APPEND` descriptor, so lines written
by several processes at once never interleave.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import underway

RECORD_FILE_VAR = "PROCAPP_RECORD_FILE"


def mark(ctx: underway.Context, event: str, detail: str = "") -> None:
    """Append one event line for the running job to the record file."""
    path = os.environ[RECORD_FILE_VAR]
    line = f"{event} {ctx.job.id} {os.getpid()} {ctx.job.attempt} {detail}".rstrip() + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def record(ctx: underway.Context, n: int, sleep: float = 0.0) -> int:
    """Records its run; with `sleep`, takes that long first (a job with some work in it)."""
    if sleep:
        time.sleep(sleep)
    mark(ctx, "done", str(n))
    return n


def gated(ctx: underway.Context, n: int, gate: str) -> int:
    """Starts, then waits until the file `gate` exists before it finishes."""
    mark(ctx, "start", str(n))
    while not os.path.exists(gate):
        if ctx.wait_cancelled(0.05):
            mark(ctx, "stopped", ctx.cancel_reason or "")
            return -1
    mark(ctx, "done", str(n))
    return n


def long_sync(ctx: underway.Context, seconds: float, fast_file: str = "") -> str:
    """Runs `seconds` in steps, checking for cancellation; at once if `fast_file` exists."""
    if fast_file and os.path.exists(fast_file):
        mark(ctx, "quick")
        return "quick"
    mark(ctx, "start")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ctx.cancelled or ctx.wait_cancelled(0.05):
            mark(ctx, "stopped", ctx.cancel_reason or "")
            return "stopped"
    mark(ctx, "end")
    return "done"


async def long_async(ctx: underway.Context, seconds: float, fast_file: str = "") -> str:
    """The async twin of long_sync: sleeps in steps until done or cancelled."""
    if fast_file and os.path.exists(fast_file):
        mark(ctx, "quick")
        return "quick"
    mark(ctx, "start")
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    except asyncio.CancelledError:
        mark(ctx, "cancelled", ctx.cancel_reason or "")
        raise
    mark(ctx, "end")
    return "done"


def steps(ctx: underway.Context, n: int, pause: float = 0.15) -> int:
    """Reports progress in `n` steps, `pause` seconds apart, each with a status message and a
    payload: what a watcher in another process must see, every one, in order."""
    mark(ctx, "start")
    for i in range(1, n + 1):
        time.sleep(pause)
        ctx.set_payload({"step": i})
        ctx.report_progress(i / n, f"step {i} of {n}")
    mark(ctx, "end")
    return n


def pay(ctx: underway.Context, amount: int, commit_gate: str, return_gate: str) -> str:
    """Charges `amount` into the `payments` table and completes the job in the same
    transaction (PostgreSQL only). It waits for the file `commit_gate` before the commit and
    for `return_gate` after it, so a test can kill the worker on either side of the commit."""
    import psycopg
    from psycopg import sql

    from underway.stores.postgres.store import _split_url

    conninfo, schema = _split_url(os.environ["UNDERWAY_DATABASE_URL"])
    insert = sql.SQL("INSERT INTO {}.payments (job_id, attempt, amount) VALUES (%s, %s, %s)")
    with psycopg.connect(conninfo) as conn:
        with conn.transaction():
            conn.execute(
                insert.format(sql.Identifier(schema or "")), (ctx.job.id, ctx.job.attempt, amount)
            )
            mark(ctx, "charged", str(amount))
            while not os.path.exists(commit_gate):
                ctx.wait_cancelled(0.05)
            ctx.complete_in(conn, result={"paid": amount})
        mark(ctx, "committed", str(amount))
    while not os.path.exists(return_gate):
        ctx.wait_cancelled(0.05)
    return "the worker's own result: never written"


TASKS: dict[str, Callable[..., Any]] = {
    "pay": pay,
    "steps": steps,
    "record": record,
    "gated": gated,
    "long_sync": long_sync,
    "long_async": long_async,
}


def make_app(url: str | None = None, **settings: Any) -> underway.App:
    """The app with its tasks; names are fixed so any process that builds it agrees on them."""
    app = underway.App(url, **settings)
    for name, fn in TASKS.items():
        app.task(name=name)(fn)
    return app


app = make_app()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="procapp")
    parser.add_argument("--concurrency", type=int, default=None)
    parser.add_argument("--burst", action="store_true")
    options = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s pid={os.getpid()} %(levelname)s %(name)s: %(message)s",
    )
    faulthandler.register(signal.SIGUSR1)  # the tests dump our stacks before giving up on us
    app.run_worker(concurrency=options.concurrency, burst=options.burst)


if __name__ == "__main__":
    main()
