"""PostgreSQL behind PgBouncer (or another pooler) in transaction mode: each transaction may
get another server session, so nothing may outlive one. The URL says so
(`?pooler=transaction`); the store then uses no LISTEN and no prepared statements, and learns
of new work by reading the change feed's newest row (docs/guide.md, PostgreSQL)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ...errors import ConfigurationError

#: without notices: how often a busy worker asks about cancel requests, a watcher reads the
#: feed, and an idle worker looks whether something was written
CANCEL_CHECK_SECONDS = 0.25
FEED_CHECK_SECONDS = 0.05
WAKE_CHECK_SECONDS = 0.05


def pooler(url: str) -> str | None:
    """The URL's `pooler` parameter: "transaction" for a pooler's transaction mode;
    "session" and none change nothing."""
    query = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    mode = next((v for k, v in query if k == "pooler"), None)
    if mode not in (None, "session", "transaction"):
        raise ConfigurationError(
            f"pooler={mode!r} in the PostgreSQL URL: use pooler=transaction behind "
            "PgBouncer's pool_mode = transaction, pooler=session (or none) otherwise"
        )
    return mode


class NewestChange:
    """`wait_for_change` without notices: whether the feed's newest row changed (every
    enqueue and every finish writes one), read every WAKE_CHECK_SECONDS with one index probe.
    The reading is kept per thread, so no write between two calls is missed."""

    def __init__(self, read: Callable[[], Sequence[Sequence[Any]]]) -> None:
        self._read = read
        self._seen = threading.local()

    def moved(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            rows = self._read()
            newest = str(rows[0][0]) if rows else ""
            seen = getattr(self._seen, "newest", None)
            self._seen.newest = newest
            if seen is not None and newest != seen:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(WAKE_CHECK_SECONDS, remaining))
