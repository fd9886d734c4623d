"""What the backend's HTTP API does that the background work builds on: users and listeners,
starting and hanging up calls, presence heartbeats. Async like the rest of the service API."""

from __future__ import annotations

import asyncio
import time

from .calls import clear_cache, end_call, load_call
from .config import current


def _now(now: float | None) -> int:
    return int(time.time() if now is None else now)


async def add_user(
    name: str,
    coins: int,
    listener: bool = False,
    share_percent: int = 60,
    seen: float | None = None,
) -> int:
    """A new user (a listener earns `share_percent` of what their calls charge); their id."""

    def add() -> int:
        with current().db.transaction() as tx:
            row = tx.one(
                "INSERT INTO users (name, coins, is_listener) VALUES (?, ?, ?) RETURNING id",
                (name, coins, int(listener)),
            )
            assert row is not None
            user_id = int(row[0])
            if listener:
                tx.execute(
                    "INSERT INTO listeners (user_id, share_percent) VALUES (?, ?)",
                    (user_id, share_percent),
                )
            tx.execute(
                "INSERT INTO presence (user_id, status, last_seen) VALUES (?, 'online', ?)",
                (user_id, _now(seen)),
            )
            return user_id

    return await asyncio.to_thread(add)


async def start_call(
    user_id: int, listener_id: int, rate: int, max_minutes: int = 60, at: float | None = None
) -> int:
    """Start a call charging `rate` coins a minute, expiring after `max_minutes`; its id.
    Both sides are busy until it ends."""
    started = _now(at)

    def start() -> int:
        with current().db.transaction() as tx:
            row = tx.one(
                "INSERT INTO calls (user_id, listener_id, rate, started_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?) RETURNING id",
                (user_id, listener_id, rate, started, started + max_minutes * 60),
            )
            assert row is not None
            call_id = int(row[0])
            tx.execute(
                "UPDATE presence SET status = 'busy', busy_until = ?, last_seen = ? "
                "WHERE user_id IN (?, ?)",
                (started + max_minutes * 60, started, user_id, listener_id),
            )
            return call_id

    call_id = await asyncio.to_thread(start)
    cache = current().cache
    if cache is not None:
        value = {"user_id": user_id, "listener_id": listener_id, "rate": rate}
        await asyncio.to_thread(cache.put, f"call:{call_id}", value)
    return call_id


async def hang_up(call_id: int, at: float | None = None) -> None:
    """End a call: its whole minutes are charged, its listener settled."""
    moment = _now(at)

    services = current()

    def end() -> None:
        with services.db.transaction() as tx:
            call = load_call(tx, call_id)
            if call is not None:
                end_call(tx, call, moment, "hung_up")
            clear_cache(services, tx)

    await asyncio.to_thread(end)


async def see_user(user_id: int, at: float | None = None) -> None:
    """A presence heartbeat: the user is online (or stays busy) as of `at`."""

    def see() -> None:
        with current().db.transaction() as tx:
            tx.execute(
                "UPDATE presence SET last_seen = ?, status = CASE WHEN status = 'offline' "
                "THEN 'online' ELSE status END WHERE user_id = ?",
                (_now(at), user_id),
            )

    await asyncio.to_thread(see)
