"""Notices that come on a clock, for a store that cannot be told what changed: SQLite's
cancel checks, and PostgreSQL behind a transaction-mode pooler, where LISTEN cannot work."""

from __future__ import annotations

import time


class Ticker:
    """Notices that come every `every` seconds whatever happened ("look"): the worker then
    reads its running jobs' cancel requests, a watcher the feed."""

    def __init__(self, every: float) -> None:
        self.every = every

    def wait(self, timeout: float) -> list[str] | None:
        time.sleep(min(self.every, timeout))
        return None

    def close(self) -> None:
        pass
