"""User presence: who is online, busy in a call, or gone offline after some minutes unseen."""

from __future__ import annotations

import asyncio
import time

from .config import current


def _now(now: float | None) -> int:
    return int(time.time() if now is None else now)


async def mark_inactive_users_offline(inactive_minutes: int = 5, now: float | None = None) -> int:
    """Mark users offline who were not seen for `inactive_minutes`; how many were."""
    cutoff = _now(now) - inactive_minutes * 60

    def mark() -> int:
        with current().db.transaction() as tx:
            return tx.execute(
                "UPDATE presence SET status = 'offline', busy_until = NULL "
                "WHERE status <> 'offline' AND last_seen < ?",
                (cutoff,),
            )

    return await asyncio.to_thread(mark)


async def cleanup_expired_busy_status(now: float | None = None) -> int:
    """Clear the busy status of users whose busy time ran out; how many were cleared."""
    moment = _now(now)

    def clear() -> int:
        with current().db.transaction() as tx:
            return tx.execute(
                "UPDATE presence SET status = 'online', busy_until = NULL "
                "WHERE status = 'busy' AND busy_until IS NOT NULL AND busy_until <= ?",
                (moment,),
            )

    return await asyncio.to_thread(clear)


async def get_online_users_count() -> int:
    """Users online now (busy ones included)."""

    def count() -> int:
        with current().db.transaction() as tx:
            row = tx.one("SELECT count(*) FROM presence WHERE status <> 'offline'")
        return int(row[0]) if row else 0

    return await asyncio.to_thread(count)
