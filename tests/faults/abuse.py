"""What the abuse scenarios (A..) share: the HTTP API of a test App served by uvicorn on a
loopback port (the web tests' `Served` and `webapp.declare`), raw HTTP for requests httpx
will not send, and verdict rows for scenarios that judge requests rather than jobs."""

from __future__ import annotations

import contextlib
import select
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WEB = HERE.parent / "web"
if str(WEB) not in sys.path:
    sys.path.insert(0, str(WEB))

import httpx  # noqa: E402
from verdict import Verdict  # noqa: E402
from web_support import Served, Web, free_port  # noqa: E402, F401 (free_port: for A09)
from webapp import declare  # noqa: E402

import underway  # noqa: E402
from underway.web import create_api  # noqa: E402

#: the XSS corpus of A06: each must reach the page as text, never as markup
XSS = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "'><svg/onload=alert(1)>",
    "javascript:alert(1)",
    "</pre><script>alert(document.cookie)</script>",
    "{{7*7}}<iframe srcdoc='<script>alert(1)</script>'>",
)


@contextlib.contextmanager
def served(
    make_app: Callable[..., underway.App],
    extra: Callable[[underway.App], None] | None = None,
    **settings: Any,
) -> Iterator[Web]:
    """The web tests' App (and `extra`'s tasks on it), migrated, served, with an admin key."""
    app = declare(make_app(**settings))
    if extra is not None:
        extra(app)
    app.migrate()
    server = Served(create_api(app))
    _, admin = app.create_key(name="admin")
    web = Web(app, server.url, admin, {}, served=server)
    try:
        yield web
    finally:
        for client in web.clients:
            client.close()
        server.stop()


def abuse_verdict(name: str, store: str, jobs: int, faults: list[str]) -> Verdict:
    """A verdict row for a scenario judged by its own checks (`require`): no job is lost,
    duplicated or unexpected unless a check puts it there."""
    return Verdict(name, store, jobs, faults, set(), set(), set(), set(), set(), {})


def client(web: Web, key: str | None = None, **kwargs: Any) -> httpx.Client:
    """An httpx client of `web` (closed with it), with `key` as a bearer token and any other
    headers, cookies or options in `kwargs`."""
    headers = {**({"Authorization": f"Bearer {key}"} if key else {}), **kwargs.pop("headers", {})}
    made = httpx.Client(base_url=web.url, headers=headers, **({"timeout": 30} | kwargs))
    web.clients.append(made)
    return made


def row_count(web: Web) -> int:
    return len(web.app.list_jobs(limit=1000).jobs)


def raw_request(
    port: int, head: str, body_chunks: Iterator[bytes], timeout: float = 20.0
) -> tuple[int | None, int, float]:
    """Send `head` (the request line and headers) and then the body's chunks one by one on
    a socket, until the server answers or closes. Returns the answer's status (None: none
    came), the body bytes sent before it came, and the seconds it took."""
    started = time.monotonic()
    sent = 0
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head.encode())
        for chunk in body_chunks:
            if select.select([sock], [], [], 0)[0]:
                answer = _read_some(sock)
                break
            if time.monotonic() - started > timeout:
                break
            try:
                sock.sendall(chunk)
            except OSError:
                break  # the server answered and closed
            sent += len(chunk)
        sock.settimeout(max(0.1, timeout - (time.monotonic() - started)))
        with contextlib.suppress(OSError):
            while b"\r\n" not in answer and (more := sock.recv(65536)):
                answer += more
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else None
    return status, sent, time.monotonic() - started


def _read_some(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""
