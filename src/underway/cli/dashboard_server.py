"""The dashboard served in the background of a command that runs something else (the demo's
tour): uvicorn on a thread, on a free loopback port, without keys (loopback only, so only this
machine's users reach it)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from ..app import App

#: how long the server may take to start before the command goes on without it
START_SECONDS = 10.0


@contextmanager
def dashboard_in_background(app: App) -> Iterator[str | None]:
    """Serve `app`'s dashboard (and API) on 127.0.0.1 while the block runs; yields its
    address, or None when the web extra is not installed or it could not start."""
    try:
        import uvicorn

        from ..web import create_api
    except ImportError:
        yield None
        return
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        create_api(app, insecure_no_auth=True), log_level="error", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="underway-dashboard", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + START_SECONDS
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/" if server.started else None
    finally:
        server.should_exit = True
        thread.join(START_SECONDS)
        sock.close()
