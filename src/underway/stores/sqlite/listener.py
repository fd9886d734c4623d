"""Change notices on SQLite, which has no LISTEN: the file's data version, read on a
connection of the listener's own (docs/decisions/0005-wakeups-and-batching.md)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable


class DataVersionListener:
    """`wait` returns None as soon as another connection committed to the file (something
    changed: look), or [] when nothing did within `timeout`."""

    def __init__(
        self, connect: Callable[[], sqlite3.Connection], statement: str, every: float
    ) -> None:
        self._conn = connect()
        self._statement = statement
        self.every = every
        self._version = self._read()

    def _read(self) -> int:
        version: int = self._conn.execute(self._statement).fetchone()[0]
        return version

    def wait(self, timeout: float) -> list[str] | None:
        deadline = time.monotonic() + timeout
        while True:
            version = self._read()
            if version != self._version:
                self._version = version
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            time.sleep(min(self.every, remaining))

    def close(self) -> None:
        self._conn.close()
