"""A critical service of the bot (its rate limiter, its OpenAI cache...) played by a small local
HTTP service: `GET /health` answers whether it is up, `GET /stats` its counters, as the seed's
components answer `get_stats()`. Tests make it fail or hang to see the tasks react."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ServiceDouble:
    """One service on 127.0.0.1 (a free port unless given). `stats` is what `/stats` answers;
    `fail()` makes both endpoints answer 503, `hang()` makes them answer only after
    `release()` (or 30 s), as a service stuck on I/O would."""

    def __init__(self, stats: dict[str, float] | None = None, port: int = 0) -> None:
        self.stats = dict(stats or {"requests": 0.0})
        self.failing = False
        self.requests: list[str] = []
        self._released = threading.Event()
        self._released.set()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> ServiceDouble:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()

    def fail(self) -> None:
        self.failing = True

    def hang(self) -> None:
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    def _answer(self, path: str) -> tuple[int, dict[str, Any]]:
        self.requests.append(path)
        self._released.wait(30)
        if self.failing:
            return 503, {"error": "unavailable"}
        if path == "/health":
            return 200, {"ok": True}
        if path == "/stats":
            return 200, self.stats
        return 404, {"error": f"no {path}"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body = service._answer(self.path)
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the caller gave up (a cancelled health check): nobody to answer

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: tests read `requests`

        return Handler
