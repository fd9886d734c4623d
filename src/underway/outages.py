"""Store errors in the log during an outage: one line every few seconds, not one per call.

When the store goes away (a restart, a read-only primary, a full disk), every loop of a worker
fails at once and again at each retry: claims, heartbeats, the registry beat, outcome writes,
progress reports, the scheduler. Logged one by one that is several lines a second per worker,
the same sentence each time, and the lines that matter scroll away. So a record whose
arguments hold a `StoreError` is logged at once if no such record was for `every` seconds, and
otherwise dropped and counted; the next one logged says how many were dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from .errors import StoreError

#: the loggers of the loops that call the store over and over
LOGGERS = ("underway.worker", "underway.scheduler", "underway.callbacks")


class StoreErrorThrottle(logging.Filter):
    """Lets through at most one record about a `StoreError` every `every` seconds."""

    def __init__(self, every: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.every = every
        self.clock = clock
        self._last = float("-inf")
        self._dropped = 0
        self._lock = threading.Lock()  # records come from the loop and from store threads

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else (record.args,)
        if not any(isinstance(arg, StoreError) for arg in args):
            return True
        with self._lock:
            now = self.clock()
            if now - self._last < self.every:
                self._dropped += 1
                return False
            dropped, self._dropped, self._last = self._dropped, 0, now
        if dropped:  # the suffix holds no "%": the record's own formatting is unchanged
            record.msg = (
                f"{record.msg} (and {dropped} more store errors since the last one logged, not "
                "logged)"
            )
        return True


THROTTLE = StoreErrorThrottle()


def quiet_store_errors() -> None:
    """Install the throttle on the store-calling loops' loggers (once; safe to call again)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if THROTTLE not in logger.filters:
            logger.addFilter(THROTTLE)
