"""A real HTTP receiver for callback tests: a small server on a loopback address, in a thread
of the test process, that records every request and answers from a script.

    with Receiver(answers=[500, 503]) as receiver:   # then 200 for every later request
        ... callback_url=receiver.url ...
        receiver.requests                            # [Received(path, headers, body), ...]

An answer is a status code, or `(status, {"location": ...})` for a redirect. `Receiver(port=p)`
listens on a port chosen beforehand (`free_port()`), so a test can start it late: until then
connections to it are refused, as to a receiver that is down.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = int | tuple[int, dict[str, str]]


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class Receiver:
    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, answers: Iterable[Answer] = ()
    ) -> None:
        self.host = host
        self.port = port
        self.answers: list[Answer] = list(answers)
        #: seconds to wait before answering (a slow receiver)
        self.delay = 0.0
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/hooks/underway"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                status, headers = receiver._next_answer()
                with receiver._lock:
                    receiver.requests.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                 body, status)
                    )  # fmt: skip
                time.sleep(receiver.delay)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def _next_answer(self) -> tuple[int, dict[str, str]]:
        with self._lock:
            answer = self.answers.pop(0) if self.answers else 200
        return (answer, {}) if isinstance(answer, int) else answer

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def received(self) -> list[Received]:
        with self._lock:
            return list(self.requests)

    def succeeded(self) -> list[Received]:
        return [r for r in self.received() if 200 <= r.status < 300]
