"""Per-minute coin deduction for ongoing calls, exact: with several workers, a worker killed
mid-run, a retried run or a catch-up after downtime, no call is charged twice for one minute,
no minute is skipped, and no balance goes negative.

- Each run charges every call for *every* uncharged minute up to its minute (not just that
  one), so a run after downtime catches up and a skipped slot skips nothing.
- A minute is charged at most once: `call_minutes` is keyed by (call, minute).
- On PostgreSQL, run as an underway job, the whole run and the job's completion commit in one
  transaction (`ctx.complete_in`): a worker killed mid-run leaves nothing, and the rescued run
  does it all. On SQLite each call is charged in a transaction of its own, and a rerun skips
  the minutes the (call, minute) key already holds.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import underway

from .calls import MINUTE, Call, Charged, charge_call, clear_cache, end_call, load_call
from .config import Services, current
from .db import Tx


@dataclass
class MinuteRun:
    """What one run did, returned as the job's result."""

    minute: int
    calls: int = 0
    minutes_charged: int = 0
    coins: int = 0
    ended: list[int] = field(default_factory=list)

    def add(self, call_id: int, charged: Charged) -> None:
        self.calls += 1
        self.minutes_charged += charged.minutes
        self.coins += charged.coins
        if charged.ended:
            self.ended.append(call_id)


def minute_of(moment: float) -> int:
    """The whole minute `moment` falls in (Unix seconds, a multiple of 60)."""
    return int(moment) // MINUTE * MINUTE


def ongoing_calls(tx: Tx, through: int) -> list[int]:
    rows = tx.all(
        "SELECT id FROM calls WHERE status = 'ongoing' AND started_at <= ? ORDER BY id",
        (through,),
    )
    return [row[0] for row in rows]


def charge_minute(
    services: Services,
    minute: int,
    ctx: underway.Context | None = None,
    pause: float = 0.0,
) -> MinuteRun:
    """Charge every ongoing call through `minute`. Given the running job's `ctx` on
    PostgreSQL, the job completes in the same transaction as the charges. `pause` (seconds
    after each call) makes a run long enough to watch, or to kill mid-way."""
    run = MinuteRun(minute)
    if services.db.is_postgres:
        with services.db.transaction() as tx:
            calls = ongoing_calls(tx, minute)
            for i, call_id in enumerate(calls):
                _charge_one(tx, call_id, minute, run)
                _step(ctx, i + 1, len(calls), pause)
            clear_cache(services, tx)  # a cache that fails rolls the run back: it is retried
            if ctx is not None:
                ctx.complete_in(tx.conn, result=asdict(run))
        return run
    with services.db.transaction() as tx:
        calls = ongoing_calls(tx, minute)
    for i, call_id in enumerate(calls):
        with services.db.transaction() as tx:  # one call at a time: the key keeps it exact
            _charge_one(tx, call_id, minute, run)
        _step(ctx, i + 1, len(calls), pause)
    with services.db.transaction() as tx:
        clear_cache(services, tx)
    return run


def _charge_one(tx: Tx, call_id: int, minute: int, run: MinuteRun) -> None:
    call = load_call(tx, call_id)  # locked: concurrent runs take turns on each call
    if call is not None:
        run.add(call_id, charge_call(tx, call, minute))


def _step(ctx: underway.Context | None, done: int, total: int, pause: float) -> None:
    if ctx is not None:
        ctx.report_progress(done / total, f"charged {done} of {total} calls")
    if pause:
        time.sleep(pause)


# --- the service API --------------------------------------------------------------------------


async def deduct_per_minute_coins(minute: float | None = None) -> dict[str, Any]:
    """Charge every ongoing call for its minutes up to `minute` (default: now); ends the
    calls whose users run out of coins and settles their listeners. Safe to run twice, or
    concurrently: a minute is charged once."""
    mark = minute_of(time.time() if minute is None else minute)
    run = await asyncio.to_thread(charge_minute, current(), mark)
    return asdict(run)


async def process_call_coin_deduction(conn: Tx, call: Call, minute: float | None = None) -> None:
    """Charge one call, in the caller's open transaction `conn`, up to `minute` (now)."""
    charge_call(conn, call, minute_of(time.time() if minute is None else minute))


async def end_call_due_to_insufficient_coins(conn: Tx, call: Call, current_balance: int) -> None:
    """End `call` now because its user has `current_balance` coins, fewer than a minute's
    rate, and settle the listener, in the caller's open transaction `conn`."""
    if current_balance >= call.rate:
        raise ValueError(f"{current_balance} coins pay for a minute at {call.rate}: not ending")
    end_call(conn, call, minute_of(time.time()), "insufficient_coins")
