"""Tasks and schedules of F20 (clock skew). A skewed worker's own clock cannot tell when its
job really started, so `clocked` asks the database's clock as its body begins and writes it
into the ledger's `start` line (`db=<epoch>`): the scenario compares it with the job's due
time, which the database's clock set too."""

from __future__ import annotations

import os
import time
from typing import Any

import psycopg
from ledger import LEDGER_VAR, Event, write

import underway
from underway.stores.postgres.store import _split_url

#: the schedules the skewed workers fire: (name, every seconds or cron)
EVERY = {"skew every 1 s": 1.0, "skew every 3 s": 3.0}
CRON = {"skew minutely": "* * * * *"}


def database_now() -> float:
    conninfo, _ = _split_url(os.environ["UNDERWAY_DATABASE_URL"])
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
        row = conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()
    assert row is not None
    return float(row[0])


def clocked(ctx: underway.Context, seconds: float = 0.0) -> dict[str, Any]:
    """Reads the database's clock, then works `seconds` (looking for a stop), then its effect."""
    ledger, probe, attempt = os.environ[LEDGER_VAR], str(ctx.job.id), ctx.job.attempt
    write(ledger, Event.START, probe, attempt, f"db={database_now():.6f}")
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if ctx.wait_cancelled(min(0.05, left)):
            write(ledger, Event.STOPPED, probe, attempt, ctx.cancel_reason or "")
            return {"stopped": ctx.cancel_reason}
    write(ledger, Event.EFFECT, probe, attempt)
    write(ledger, Event.END, probe, attempt)
    return {"attempt": attempt}


def schedule(app: underway.App) -> None:
    """The schedules every F20 worker declares (each worker runs a scheduler)."""
    tick = app.task(name="faults.skew_tick")(_tick)
    for name, every in EVERY.items():
        app.schedule(tick, every=every, name=name)
    for name, cron in CRON.items():
        app.schedule(tick, cron=cron, name=name)


def _tick() -> None:
    pass


TASKS: list[tuple[Any, dict[str, Any]]] = [(clocked, {"max_attempts": 3})]
