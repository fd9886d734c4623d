"""A scheduler's beat in the store: each running scheduler says every BEAT_SECONDS that it is
alive for LEASE_SECONDS more, so a listing can tell "no scheduler alive" apart from "ok"
without guessing from late slots."""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid

from .errors import StoreError
from .stores import Store

log = logging.getLogger("underway.scheduler")

#: how often a scheduler writes its beat (seconds of its own monotonic clock)
BEAT_SECONDS = 5.0
#: how long one beat counts: a scheduler silent for longer is taken for gone
LEASE_SECONDS = 30.0


class Liveness:
    """One scheduler's beats. `beat()` writes at most every BEAT_SECONDS; `forget()` at stop."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._last: float | None = None

    def beat(self) -> None:
        now = time.monotonic()
        if self._last is None or now - self._last >= BEAT_SECONDS:
            self.store.beat_scheduler(self.id, LEASE_SECONDS)
            self._last = now

    def forget(self) -> None:
        """Say this scheduler stopped (a failing store only logs it: the beat expires)."""
        if self._last is None:
            return
        try:
            self.store.forget_scheduler(self.id)
        except StoreError as exc:
            log.warning("scheduler %s could not say it stopped: %s", self.id, exc)
        self._last = None
