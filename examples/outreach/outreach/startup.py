"""The work the seed starts at boot without waiting for it (`_ = Task.Run(...)`): make sure
the default administrator exists and that Multilogin answers. Here it is a job enqueued when a
worker starts: the worker takes other jobs meanwhile, and a slow Multilogin delays nothing."""

from __future__ import annotations

import time
from typing import Any

import httpx

import underway

from .database import Connection

TASK = "outreach.initialize"
#: one initialization pending at a time, however many workers boot together
KEY = "outreach:initialize"


def ensure_admin(conn: Connection, email: str) -> bool:
    """Create the default administrator unless one exists; True if it was created now."""
    with conn.transaction():
        return (
            conn.execute(
                "INSERT INTO admins (email, created_at) VALUES (?, ?) "
                "ON CONFLICT (email) DO NOTHING",
                (email, time.time()),
            )
            == 1
        )


def declare(app: underway.App, deps: dict[str, Any], admin_email: str) -> underway.Task[..., Any]:
    @app.task(name=TASK, deps=deps)
    def initialize(ctx: underway.Context) -> dict[str, Any]:
        created = ensure_admin(ctx.deps.db, admin_email)
        answer: httpx.Response = ctx.deps.http.get("/multilogin/status")
        answer.raise_for_status()
        return {"admin_created": created, "multilogin_running": bool(answer.json()["running"])}

    return initialize
