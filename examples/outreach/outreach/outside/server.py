"""A small HTTP server on loopback that plays outside services: it routes JSON requests to
handlers, records every request, and can hold or fail requests on cue so that tests can stop
the outreach tool at a chosen point."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass(frozen=True, slots=True)
class Request:
    """One request as a handler sees it (and as the log keeps it)."""

    method: str
    path: str
    #: the path with its query string, as sent
    target: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]
    raw: bytes
    #: the parts of the path the route's pattern captured
    params: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: Any = None


Handler = Callable[[Request], Response]


@dataclass
class _Cue:
    """Requests whose path (with its query) starts with `prefix` wait for `released` (a hold)
    or get `status` for the next `times` requests (a failure)."""

    prefix: str
    released: threading.Event = field(default_factory=threading.Event)
    waiting: int = 0
    status: int = 0
    times: int = 0


class Server:
    """Routes by method and a path pattern; `start()` listens on 127.0.0.1 on `port` (0: a
    free one)."""

    def __init__(self, port: int = 0) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._lock = threading.Lock()
        self._log: list[Request] = []
        self._holds: list[_Cue] = []
        self._failures: list[_Cue] = []
        self._http: ThreadingHTTPServer | None = None
        self.port = port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        """Send `method` requests whose whole path matches `pattern` to `handler`."""
        self._routes.append((method, re.compile(pattern), handler))

    # --- cues -----------------------------------------------------------------------------------

    def hold(self, prefix: str) -> None:
        """Keep requests to paths under `prefix` waiting until `release(prefix)`."""
        with self._lock:
            self._holds.append(_Cue(prefix))

    def release(self, prefix: str) -> None:
        with self._lock:
            for cue in [c for c in self._holds if c.prefix == prefix]:
                cue.released.set()
                self._holds.remove(cue)

    def waiting(self, prefix: str) -> int:
        """How many requests under `prefix` are held now."""
        with self._lock:
            return sum(c.waiting for c in self._holds if c.prefix == prefix)

    def fail(self, prefix: str, status: int, times: int = 1) -> None:
        """Answer the next `times` requests under `prefix` with `status` instead."""
        with self._lock:
            self._failures.append(_Cue(prefix, status=status, times=times))

    # --- the log --------------------------------------------------------------------------------

    def requests(self, prefix: str = "", method: str | None = None) -> list[Request]:
        """The requests received so far whose path (with its query) starts with `prefix`
        (and of `method`), oldest first."""
        with self._lock:
            return [
                r for r in self._log
                if r.target.startswith(prefix) and (method is None or r.method == method)
            ]  # fmt: skip

    # --- running --------------------------------------------------------------------------------

    def start(self) -> None:
        server = self

        class Handle(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server._serve(self)

            do_POST = do_DELETE = do_GET

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", self.port), Handle)
        self._http.daemon_threads = True
        self.port = self._http.server_address[1]
        threading.Thread(target=self._http.serve_forever, daemon=True).start()

    def stop(self) -> None:
        with self._lock:
            for cue in self._holds:
                cue.released.set()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    def _serve(self, http: BaseHTTPRequestHandler) -> None:
        raw = http.rfile.read(int(http.headers.get("content-length") or 0))
        parts = urlsplit(http.path)
        request = Request(
            http.command, parts.path, http.path, dict(parse_qsl(parts.query)),
            json.loads(raw) if raw else None, {k.lower(): v for k, v in http.headers.items()}, raw,
        )  # fmt: skip
        with self._lock:
            self._log.append(request)
        self._wait_if_held(request.target)
        response = self._failure(request.target) or self._dispatch(request)
        body = b"" if response.body is None else json.dumps(response.body).encode()
        try:
            http.send_response(response.status)
            http.send_header("content-type", "application/json")
            http.send_header("content-length", str(len(body)))
            http.end_headers()
            http.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the caller went away while held (a worker killed mid-request)

    def _wait_if_held(self, path: str) -> None:
        with self._lock:
            cue = next((c for c in self._holds if path.startswith(c.prefix)), None)
            if cue is None:
                return
            cue.waiting += 1
        cue.released.wait()
        with self._lock:
            cue.waiting -= 1

    def _failure(self, path: str) -> Response | None:
        with self._lock:
            cue = next((c for c in self._failures if path.startswith(c.prefix)), None)
            if cue is None:
                return None
            cue.times -= 1
            if cue.times <= 0:
                self._failures.remove(cue)
        return Response(cue.status, {"error": "scripted failure"})

    def _dispatch(self, request: Request) -> Response:
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(request.path)
            if method == request.method and match:
                params = Request(**{**_fields(request), "params": match.groups()})
                return handler(params)
        return Response(404, {"error": f"no route for {request.method} {request.path}"})


def _fields(request: Request) -> dict[str, Any]:
    return {name: getattr(request, name) for name in Request.__slots__}
