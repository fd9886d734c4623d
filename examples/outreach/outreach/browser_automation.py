"""The browser automation the OAuth flow drives: a Multilogin quick profile (a browser with a
proxy and a remote debugging port) and a Selenium session attached to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx

import underway


class AutomationError(underway.UnderwayError):
    """Multilogin or Selenium refused; the attempt fails and underway retries it."""


@dataclass(frozen=True, slots=True)
class QuickProfile:
    """Multilogin's answer to starting a quick profile."""

    is_success: bool
    port: str
    id: str


class Browser:
    """A Selenium session in a running Multilogin profile."""

    def __init__(self, http: httpx.AsyncClient, profile: QuickProfile, session_id: str) -> None:
        self.http = http
        self.profile = profile
        self.session_id = session_id

    async def open(self, url: str) -> None:
        answer = await self.http.post(f"/selenium/session/{self.session_id}/url", json={"url": url})
        answer.raise_for_status()

    async def current_url(self) -> str:
        answer = await self.http.get(f"/selenium/session/{self.session_id}/url")
        answer.raise_for_status()
        return str(answer.json()["value"])


async def start_quick_profile(http: httpx.AsyncClient, proxy: str | None) -> QuickProfile:
    answer = await http.post("/multilogin/profile/quick", json={"proxy": proxy})
    answer.raise_for_status()
    body = answer.json()
    profile = QuickProfile(bool(body["IsSuccess"]), str(body["Port"]), str(body["Id"]))
    if not profile.is_success:
        raise AutomationError("Multilogin did not start a quick profile; is it running?")
    return profile


@asynccontextmanager
async def open_browser(http: httpx.AsyncClient, proxy: str | None) -> AsyncIterator[Browser]:
    """Start a profile, attach Selenium to it, and yield the browser; on the way out end the
    session and stop the profile, whatever happened inside (a profile left running costs)."""
    profile = await start_quick_profile(http, proxy)
    try:
        capabilities = {"goog:chromeOptions": {"debuggerAddress": f"127.0.0.1:{profile.port}"}}
        answer = await http.post("/selenium/session", json={"capabilities": capabilities})
        if answer.status_code != 200:
            raise AutomationError(f"Selenium could not attach to profile {profile.id}: "
                                  f"{answer.text}")  # fmt: skip
        session_id = str(answer.json()["value"]["sessionId"])
        try:
            yield Browser(http, profile, session_id)
        finally:
            await http.delete(f"/selenium/session/{session_id}")
    finally:
        await http.get(f"/multilogin/profile/stop/{profile.id}")
