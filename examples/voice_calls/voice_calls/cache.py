"""The live-call cache (Redis in the original backend), played by a small local HTTP service:
`CacheService` serves it, `Cache` talks to it over real HTTP.

The cache only mirrors the database for fast reads (a call's state while it runs); the database
stays the truth, so a cache write that is lost in a crash is harmless: the next run, or the
cleanup of expired calls, puts it right.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class CacheUnavailable(ConnectionError):
    """The cache service did not answer, or answered with an error."""


class Cache:
    """A client of the cache service at `url` (`http://127.0.0.1:PORT`)."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def put(self, key: str, value: Any) -> None:
        self._send("PUT", key, json.dumps(value).encode())

    def get(self, key: str) -> Any:
        body = self._send("GET", key)
        return None if body is None else json.loads(body)

    def delete(self, key: str) -> None:
        self._send("DELETE", key)

    def _send(self, method: str, key: str, body: bytes | None = None) -> bytes | None:
        request = urllib.request.Request(f"{self.url}/{key}", data=body, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                data: bytes = response.read()
                return data
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise CacheUnavailable(f"the cache answered {exc.code} to {method} {key}") from None
        except OSError as exc:
            raise CacheUnavailable(f"the cache at {self.url} is unreachable: {exc}") from None


class CacheService:
    """The cache itself: keys to JSON values in memory, over HTTP (PUT, GET, DELETE /<key>).
    `fail_next(n)` makes the next `n` requests answer 503, as a cache outage would."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.values: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []
        self._failures = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> CacheService:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail_next(self, count: int) -> None:
        with self._lock:
            self._failures = count

    def _answer(self, method: str, key: str, body: bytes) -> tuple[int, bytes]:
        with self._lock:
            self.requests.append((method, key))
            if self._failures > 0:
                self._failures -= 1
                return 503, b""
            if method == "PUT":
                self.values[key] = body
                return 204, b""
            if method == "DELETE":
                self.values.pop(key, None)
                return 204, b""
            value = self.values.get(key)
            return (404, b"") if value is None else (200, value)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, data = service._answer(self.command, self.path.lstrip("/"), body)
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: tests read `requests` instead

        return Handler
