"""Notice the SQLite file being replaced or deleted under a running process.

Our connections keep reading and writing the file they opened (its inode), so after a restore
from a backup or a `rm` they would work on in a file nobody else sees, and jobs written to the
new one would never run here. So the store refuses every call once that happened, saying so.
"""

from __future__ import annotations

import os
import time

from ...errors import StoreError

#: how often the store looks at its file: one stat call
FILE_CHECK_SECONDS = 1.0


class FileWatch:
    """The (device, inode) of the file first opened at `path`, and whether it still is."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._identity: tuple[int, int] | None = None
        self._replaced: str | None = None
        self._next_check = 0.0

    def check(self, force: bool = False) -> None:
        """Raise StoreError once the file at the path is another one, or gone; looks at most
        every FILE_CHECK_SECONDS unless `force`d (a new connection just opened the path)."""
        now = time.monotonic()
        if self._replaced is None and (force or now >= self._next_check):
            self._next_check = now + FILE_CHECK_SECONDS
            if self.path != ":memory:":
                self._look()
        if self._replaced is not None:
            raise StoreError(self._replaced)

    def _look(self) -> None:
        try:
            st = os.stat(self.path)
            identity: tuple[int, int] | None = (st.st_dev, st.st_ino)
        except FileNotFoundError:
            identity = None
        if self._identity is None and identity is not None:
            self._identity = identity
        elif identity != self._identity:
            self._replaced = (
                f"{self.path} was {'deleted' if identity is None else 'replaced'} while this "
                "process had it open: it still sees the old file, and jobs written to a new one "
                "would never be seen here; restart this process"
            )
