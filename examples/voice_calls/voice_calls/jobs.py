"""The voice-call backend's background work on underway: its schedules and tasks.

    app = make_app()            # VOICE_CALLS_DATABASE_URL, or a SQLite file
    app.run_worker()            # or: python -m voice_calls worker

underway's tables live in the same database as the example's own (on PostgreSQL that is what
lets the per-minute charge and its job's completion share one transaction).
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import asdict
from typing import Any

import underway

from . import badges, calls, presence
from .coin_deduction import charge_minute, minute_of
from .config import configure, current

#: seconds to pause after each call charged: a run long enough to watch or kill (demos, tests)
PAUSE_VAR = "VOICE_CALLS_PAUSE_PER_CALL"


def make_app(database_url: str | None = None, **settings: Any) -> underway.App:
    """The app on the example's database (configured with `configure` if given a URL)."""
    services = configure(database_url) if database_url else current()
    app = underway.App(services.db.url, **settings)

    @app.periodic(cron="* * * * *", catch_up="latest", name="voice_calls.deduct_per_minute_coins")
    def deduct_per_minute_coins(ctx: underway.Context) -> dict[str, Any]:
        """Charge every ongoing call through this slot's minute (a triggered run: now's)."""
        minute = minute_of(ctx.slot.timestamp() if ctx.slot else time.time())
        pause = float(os.environ.get(PAUSE_VAR) or 0)
        return asdict(charge_minute(current(), minute, ctx, pause))

    @app.periodic(every=60, name="voice_calls.cleanup_expired_calls")
    async def cleanup_expired_calls() -> None:
        await calls.cleanup_expired_calls()

    @app.periodic(every=60, name="voice_calls.presence_cleanup")
    async def presence_cleanup(inactive_minutes: int = 5) -> dict[str, int]:
        offline, unbusy = await asyncio.gather(
            presence.mark_inactive_users_offline(inactive_minutes),
            presence.cleanup_expired_busy_status(),
        )
        return {"marked_offline": offline, "busy_cleared": unbusy}

    @app.periodic(cron="5 0 * * *", name="voice_calls.assign_daily_badges")
    async def assign_daily_badges() -> dict[str, int]:
        return await badges.assign_daily_badges()

    return app
