"""SIGTERM and SIGINT for a worker running on the main thread: the first asks for a graceful
stop, the second for a hard one (the worker's `_on_signal` decides which)."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable

SIGNALS = (signal.SIGTERM, signal.SIGINT)


def install(loop: asyncio.AbstractEventLoop, handler: Callable[[signal.Signals], None]) -> None:
    """Route the stop signals to `handler` on `loop`; only the main thread may."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in SIGNALS:
        loop.add_signal_handler(sig, handler, sig)


def remove(loop: asyncio.AbstractEventLoop | None) -> None:
    if threading.current_thread() is not threading.main_thread() or loop is None:
        return
    for sig in SIGNALS:
        loop.remove_signal_handler(sig)
