"""Session cleanup, every hour: sessions whose refresh token expired, or idle for 30 days."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import underway

from .config import DAY
from .database import Connection

TASK = "outreach.cleanup_sessions"
#: a session not used for this long is gone, even with a valid refresh token
IDLE_LIMIT = 30 * DAY


def delete_expired_sessions(conn: Connection, now: float) -> int:
    """Delete the expired and the idle sessions; returns how many went."""
    with conn.transaction():
        return conn.execute(
            "DELETE FROM sessions WHERE refresh_token_expiry_time < ? OR last_accessed_at < ?",
            (now, now - IDLE_LIMIT),
        )


def declare(app: underway.App, deps: dict[str, Any]) -> underway.Task[..., Any]:
    @app.periodic(every=timedelta(hours=1), name=TASK, overlap="skip", deps=deps)
    def cleanup_sessions(ctx: underway.Context) -> dict[str, int]:
        return {"deleted": delete_expired_sessions(ctx.deps.db, time.time())}

    return cleanup_sessions
