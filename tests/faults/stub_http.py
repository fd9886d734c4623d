"""A local HTTP service for the retry scenarios: it answers 503 for `outage` seconds from its
first request, then 200, and records every request (its job, attempt, times, status) and the
most requests it ever held at once."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Request:
    job: str
    attempt: int
    at: float
    ended: float
    status: int


class Stub:
    """`with Stub(outage=5.0, retry_after=None) as stub:` serves on 127.0.0.1 at `stub.url`."""

    def __init__(self, outage: float, retry_after: int | None = None, work: float = 0.005):
        self.outage = outage
        self.retry_after = retry_after
        self.work = work  # each request takes this long, so overlapping requests are seen
        self.requests: list[Request] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.first_at: float | None = None
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/call"

    def __enter__(self) -> Stub:
        self._thread.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, query: str) -> tuple[int, float]:
        at = time.time()
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            if self.first_at is None:
                self.first_at = at
            failing = at < self.first_at + self.outage
        time.sleep(self.work)
        args = parse_qs(query)
        status = 503 if failing else 200
        with self._lock:
            self.in_flight -= 1
            job, attempt = args.get("job", [""])[0], int(args.get("attempt", ["0"])[0])
            self.requests.append(Request(job, attempt, at, time.time(), status))
        return status, at

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self  # the handler class is built per stub, to reach it

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, _ = stub._answer(urlsplit(self.path).query)
                self.send_response(status)
                if status == 503 and stub.retry_after is not None:
                    self.send_header("Retry-After", str(stub.retry_after))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass  # thousands of requests: the records above are the log

        return Handler
