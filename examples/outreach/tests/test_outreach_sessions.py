"""Session cleanup, every hour: expired refresh tokens and sessions idle for over 30 days go,
the others stay."""

from __future__ import annotations

import time

from outreach.config import DAY

from outreach import Outreach
from underway import testing


def add_session(outreach: Outreach, sid: str, expires_in: float, idle_for: float) -> None:
    now = time.time()
    with outreach.database.connect() as conn, conn.transaction():
        conn.execute(
            "INSERT INTO sessions (id, user_id, refresh_token_expiry_time, last_accessed_at) "
            "VALUES (?, 1, ?, ?)",
            (sid, now + expires_in, now - idle_for),
        )


def session_ids(outreach: Outreach) -> list[str]:
    with outreach.database.connect() as conn:
        return [row[0] for row in conn.rows("SELECT id FROM sessions ORDER BY id")]


def test_cleanup_deletes_expired_and_idle_sessions_and_keeps_the_rest(outreach: Outreach) -> None:
    add_session(outreach, "expired", expires_in=-60, idle_for=60)
    add_session(outreach, "idle-31-days", expires_in=DAY, idle_for=31 * DAY)
    add_session(outreach, "idle-29-days", expires_in=DAY, idle_for=29 * DAY)
    add_session(outreach, "fresh", expires_in=14 * DAY, idle_for=60)

    job = outreach.cleanup_sessions.enqueue()
    testing.drain(outreach.app)

    assert outreach.app.get_job(job.id).result == {"deleted": 2}  # type: ignore[union-attr]
    assert session_ids(outreach) == ["fresh", "idle-29-days"]


def test_cleanup_runs_every_hour(outreach: Outreach) -> None:
    clock = testing.Clock()
    scheduler = testing.scheduler(outreach.app, clock=clock)
    fired = [job.task for job in scheduler.tick()]
    assert fired.count("outreach.cleanup_sessions") == 1  # at once, then hourly
    testing.drain(outreach.app)  # a slot due while its run is unfinished is skipped
    clock.advance(59 * 60)
    assert "outreach.cleanup_sessions" not in [job.task for job in scheduler.tick()]
    clock.advance(60)
    assert [job.task for job in scheduler.tick()].count("outreach.cleanup_sessions") == 1
