"""One listener per app for all its watchers: a thread that waits for the store's change
notices and wakes every watcher of this process, so a hundred live streams cost one
connection and one thread, not a hundred (docs/decisions/0011-change-feed.md)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from .stores import Store
from .stores.messages import Listener

log = logging.getLogger("underway")

#: how long the listener waits for a notice before it looks whether anyone still listens
LISTEN_SLICE = 0.25


class Feed:
    """Wakes subscribers when the store's feed may have new changes: only ever a hint, each
    watcher reads the feed itself. The thread runs while anyone subscribes."""

    def __init__(self, store: Callable[[], Store]) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._wakes: tuple[Callable[[], None], ...] = ()
        self._thread: threading.Thread | None = None

    def subscribe(self, wake: Callable[[], None]) -> Callable[[], None]:
        """Call `wake()` (from the feed's thread; it must be quick and thread-safe) whenever
        the feed may have changed; returns a function that unsubscribes."""
        with self._lock:
            self._wakes = (*self._wakes, wake)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="underway-feed", daemon=True)
                self._thread.start()

        def unsubscribe() -> None:
            with self._lock:
                self._wakes = tuple(w for w in self._wakes if w is not wake)

        return unsubscribe

    def close(self) -> None:
        """Wake and drop every subscriber; the thread ends within its slice."""
        with self._lock:
            wakes, self._wakes = self._wakes, ()
        for wake in wakes:
            wake()

    def _run(self) -> None:
        listener: Listener | None = None
        try:
            while self._listening():
                if listener is None:
                    listener = self._open()
                    self._wake_all()  # notices may have been missed meanwhile
                    if listener is None:
                        continue
                if listener.wait(LISTEN_SLICE) != []:
                    self._wake_all()
        finally:
            if listener is not None:
                listener.close()

    def _listening(self) -> bool:
        with self._lock:
            if not self._wakes:
                self._thread = None  # the next subscriber starts a new thread
                return False
            return True

    def _open(self) -> Listener | None:
        try:
            return self._store().listen("changes")
        except Exception as exc:
            log.warning("cannot listen for changes (%s); watchers poll until it can", exc)
            time.sleep(1.0)
            return None

    def _wake_all(self) -> None:
        for wake in self._wakes:  # a tuple: subscribing meanwhile is safe
            try:
                wake()
            except Exception:
                log.exception("waking a watcher failed")
