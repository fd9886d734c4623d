"""What the example's tests share: a population of calls on the fake clock, and reading back
what each call was charged."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime

from voice_calls.config import Services

from voice_calls import accounts

#: the fake clock's start; every call starts here, half a minute before the 12:01 mark
START = datetime(2031, 5, 4, 12, 0, 30, tzinfo=UTC)
RATE = 3


@dataclass(frozen=True)
class Caller:
    user_id: int
    listener_id: int
    call_id: int
    coins: int


def population(count: int, coins: int = 1000, poor: int = 0) -> list[Caller]:
    """`count` callers in calls started at START, each with `coins`; the last `poor` of them
    with only enough for two minutes (and one coin over)."""

    async def make() -> list[Caller]:
        out = []
        for i in range(count):
            own = 2 * RATE + 1 if i >= count - poor else coins
            user = await accounts.add_user(f"caller{i}", own, seen=START.timestamp())
            listener = await accounts.add_user(f"listener{i}", 0, listener=True)
            call = await accounts.start_call(
                user, listener, rate=RATE, max_minutes=120, at=START.timestamp()
            )
            out.append(Caller(user, listener, call, own))
        return out

    return asyncio.run(make())


def minutes_charged(services: Services) -> dict[int, list[int]]:
    """Each call's charged minute marks, in order (a duplicate would show twice)."""
    with services.db.transaction() as tx:
        rows = tx.all("SELECT call_id, minute FROM call_minutes ORDER BY call_id, minute")
    out: dict[int, list[int]] = {}
    for call_id, minute in rows:
        out.setdefault(call_id, []).append(minute)
    return out


def marks(*minutes: int) -> list[int]:
    """The minute marks 12:MM of START's day, as Unix seconds."""
    return [int(START.replace(minute=m, second=0).timestamp()) for m in minutes]


def balance(services: Services, user_id: int) -> int:
    with services.db.transaction() as tx:
        row = tx.one("SELECT coins FROM users WHERE id = ?", (user_id,))
    assert row is not None
    return int(row[0])


def call_state(services: Services, call_id: int) -> tuple[str, str | None, int | None, int]:
    with services.db.transaction() as tx:
        row = tx.one(
            "SELECT status, end_reason, ended_at, settled FROM calls WHERE id = ?", (call_id,)
        )
    assert row is not None
    return row[0], row[1], row[2], row[3]


def assert_exact(services: Services, callers: list[Caller], through: int) -> None:
    """Every call charged each minute mark 12:01..12:`through` once, balances to match, and
    none below zero; a poor caller's call ended at 12:03, unable to pay, its listener paid."""
    charged = minutes_charged(services)
    for c in callers:
        if c.coins < 3 * RATE:
            assert charged[c.call_id] == marks(1, 2), c
            assert call_state(services, c.call_id) == ("ended", "insufficient_coins",
                                                       marks(3)[0], 1)  # fmt: skip
            assert balance(services, c.user_id) == c.coins - 2 * RATE
            assert balance(services, c.listener_id) == 2 * RATE * 60 // 100
        else:
            assert charged[c.call_id] == marks(*range(1, through + 1)), c
            assert balance(services, c.user_id) == c.coins - through * RATE
            assert call_state(services, c.call_id)[0] == "ongoing"
        assert balance(services, c.user_id) >= 0
