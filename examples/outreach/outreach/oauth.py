"""The OAuth task: sign a Google Workspace account in through a Multilogin browser and
authorize the outreach tool, reporting each step as the job's status message.

Its scope (one per run, `deps=`): an HTTP client, the browser (a Multilogin profile with a
Selenium session, stopped when the run ends, however it ends) and a database connection.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx

import underway

from .browser_automation import Browser, open_browser
from .database import Connection, Database

TASK = "outreach.oauth"
#: where Google sends the browser after consent; nothing listens there, the URL carries the code
REDIRECT_URI = "http://localhost/oauth/done"


class SignInFailed(underway.PermanentError):
    """Google refused the account's sign-in, or the tool has no such account: trying again
    would not help."""


def declare(app: underway.App, database: Database, services_url: str) -> underway.Task[..., Any]:
    """Register the OAuth task on `app`."""

    async def http(ctx: underway.Context) -> AsyncIterator[httpx.AsyncClient]:
        async with httpx.AsyncClient(base_url=services_url, timeout=10) as client:
            yield client

    async def browser(ctx: underway.Context) -> AsyncIterator[Browser]:
        async with (
            httpx.AsyncClient(base_url=services_url, timeout=10) as client,
            open_browser(client, ctx.job.args.get("proxy")) as opened,
        ):
            yield opened

    def db() -> Connection:
        return database.connect()  # a Connection closes itself at the end of the scope

    @app.task(name=TASK, max_attempts=3, deps={"http": http, "browser": browser, "db": db})
    async def authorize(
        ctx: underway.Context,
        email: str,
        client_id: str = "outreach",
        scopes: list[str] | None = None,
        proxy: str | None = None,
        user_id: int | None = None,
    ) -> dict[str, Any]:
        """Steps 1 and 2 (profile, Selenium) are the `browser` scope; 3 to 5 run here. The
        password is read from the tool's table, never passed as an argument: a job's arguments
        are shown over the HTTP API and sent in its callback. `proxy` is for the browser."""
        page: Browser = ctx.deps.browser
        password = _password(ctx.deps.db, email)
        ctx.report_progress(0.25, f"browser ready (profile {page.profile.id}); signing in")
        signin = urlencode({"email": email, "password": password})
        await page.open(f"{services_url}/google/signin?{signin}")
        landed = await page.current_url()
        if "error=" in landed:
            raise SignInFailed(f"Google refused the sign-in of {email}: {_query(landed)['error']}")
        ctx.report_progress(0.5, f"signed in as {email}; asking for consent")
        consent = {"client_id": client_id, "redirect_uri": REDIRECT_URI,
                   "scope": " ".join(scopes or ["gmail.send"])}  # fmt: skip
        await page.open(f"{services_url}/google/oauth/authorize?{urlencode(consent)}")
        code = _query(await page.current_url())["code"]
        ctx.report_progress(0.75, "consent given; exchanging the code for tokens")
        answer = await ctx.deps.http.post("/google/oauth/token",
                                          json={"code": code, "client_id": client_id})  # fmt: skip
        answer.raise_for_status()
        _keep_refresh_token(ctx.deps.db, email, user_id, answer.json()["refresh_token"])
        ctx.report_progress(1.0, f"authorized {email}")
        return {"email": email, "user_id": user_id, "scopes": consent["scope"].split()}

    return authorize


def _password(conn: Connection, email: str) -> str:
    row = conn.row("SELECT password FROM workspace_accounts WHERE email = ?", (email,))
    if row is None:
        raise SignInFailed(f"no workspace account {email} in this tool; add it first")
    return str(row[0])


def add_workspace_account(conn: Connection, email: str, password: str) -> None:
    """Keep (or replace) the credentials of a Google Workspace account the tool signs in to."""
    with conn.transaction():
        conn.execute(
            "INSERT INTO workspace_accounts (email, password) VALUES (?, ?) "
            "ON CONFLICT (email) DO UPDATE SET password = excluded.password",
            (email, password),
        )


def _keep_refresh_token(conn: Connection, email: str, user_id: int | None, token: str) -> None:
    # The token stays in the tool's own table, like the password: a job's result is shown over
    # the HTTP API and sent in the callback.
    with conn.transaction():
        conn.execute(
            "INSERT INTO google_accounts (email, user_id, refresh_token, authorized_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (email) DO UPDATE SET user_id = excluded.user_id, "
            "refresh_token = excluded.refresh_token, authorized_at = excluded.authorized_at",
            (email, user_id, token, time.time()),
        )


def _query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))
