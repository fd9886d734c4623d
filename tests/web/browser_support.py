"""What the dashboard's browser tests share: Debian's Chromium driven by Playwright (never a
downloaded browser), pages that record every console error, and screenshots saved as test
artifacts under $UNDERWAY_TEST_ARTIFACTS/dashboard (default: test-artifacts/dashboard in the
repository)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

#: the browser: Debian's package (`apt-get install chromium`); .ci/run installs it
CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
#: how long the page may take to show what a test waits for (it usually takes well under 1 s)
WAIT_MS = 30_000

expect.set_options(timeout=WAIT_MS)


def artifacts() -> Path:
    where = Path(os.environ.get("UNDERWAY_TEST_ARTIFACTS") or ROOT / "test-artifacts")
    path = where / "dashboard"
    path.mkdir(parents=True, exist_ok=True)
    return path


def launch() -> Iterator[Browser]:
    """Headless Chromium for a test session; a missing browser fails, it never skips."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install it with `apt-get install -y chromium`")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@dataclass
class Tab:
    """A browser page on the dashboard at `url`, with every console error it logged."""

    context: BrowserContext
    page: Page
    url: str
    prefix: str = ""  # the test's name, in front of its screenshots' names
    errors: list[str] = field(default_factory=list)
    #: console errors a test expects (say, the stream's failed reconnects while the server
    #: is down), as patterns
    allowed: list[str] = field(default_factory=list)

    def goto(self, path: str) -> Page:
        self.page.goto(self.url + path)
        return self.page

    def unexpected_errors(self) -> list[str]:
        return [e for e in self.errors if not any(re.search(a, e) for a in self.allowed)]

    def shoot(self, name: str) -> Path:
        path = artifacts() / f"{_safe(f'{self.prefix}-{name}')}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


def open_tab(browser: Browser, url: str, prefix: str, **options: object) -> Tab:
    context = browser.new_context(base_url=url, **options)  # type: ignore[arg-type]
    page = context.new_page()
    tab = Tab(context, page, url, prefix)
    page.on("console", lambda m: tab.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: tab.errors.append(f"uncaught: {exc}"))
    return tab


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")
