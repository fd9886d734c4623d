"""Daily badges for listeners, from yesterday's minutes in calls."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

from .config import current

log = logging.getLogger("voice_calls.badges")

#: the least minutes yesterday for each badge, best first; everyone else gets "basic"
THRESHOLDS = (("gold", 60), ("silver", 30), ("bronze", 10))


def badge_for(minutes: int) -> str:
    return next((name for name, least in THRESHOLDS if minutes >= least), "basic")


async def assign_daily_badges(now: float | None = None) -> dict[str, int]:
    """Assign today's badge to every listener from yesterday's charged minutes (UTC days).
    Running it again the same day reassigns the same badges. Returns the statistics:
    total_listeners, basic/bronze/silver/gold_assigned, errors."""
    today = datetime.fromtimestamp(time.time() if now is None else now, UTC).date()
    start = datetime(today.year, today.month, today.day, tzinfo=UTC) - timedelta(days=1)
    since, until = int(start.timestamp()), int(start.timestamp()) + 86400

    def assign() -> dict[str, int]:
        stats = {"total_listeners": 0, "basic_assigned": 0, "bronze_assigned": 0,
                 "silver_assigned": 0, "gold_assigned": 0, "errors": 0}  # fmt: skip
        db = current().db
        with db.transaction() as tx:
            rows = tx.all(
                "SELECT l.user_id, (SELECT count(*) FROM call_minutes m JOIN calls c "
                "ON c.id = m.call_id WHERE c.listener_id = l.user_id AND m.minute >= ? "
                "AND m.minute < ?) FROM listeners l ORDER BY l.user_id",
                (since, until),
            )
        for listener_id, minutes in rows:
            badge = badge_for(int(minutes))
            stats["total_listeners"] += 1
            try:
                with db.transaction() as tx:  # one listener's failure spoils no other's
                    tx.execute(
                        "INSERT INTO badges (listener_id, day, badge) VALUES (?, ?, ?) "
                        "ON CONFLICT (listener_id, day) DO UPDATE SET badge = excluded.badge",
                        (listener_id, today.isoformat(), badge),
                    )
            except Exception:
                log.exception("assigning listener %s a badge failed", listener_id)
                stats["errors"] += 1
                continue
            stats[f"{badge}_assigned"] += 1
        return stats

    return await asyncio.to_thread(assign)
