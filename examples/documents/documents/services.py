"""The outside services DocFlow talks to, played by small local HTTP servers of the example's
own: the billing service (usage reports), the notification service (suspension notices) and a
tenant's webhook receiver (verifies underway's signed callbacks with `standardwebhooks`).
Each listens on 127.0.0.1 on a port of its own, in a thread, and keeps what it received."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError

#: answers a POST: (path, headers, raw body) -> HTTP status
Handler = Callable[[str, dict[str, str], bytes], int]


class LocalService:
    """An HTTP server on 127.0.0.1 that hands every POST to `handle`; a context manager."""

    def __init__(self, handle: Handler) -> None:
        class Requests(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                self.send_response(handle(self.path, headers, body))
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None  # quiet in tests

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Requests)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LocalService:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Billing:
    """The billing service: `POST /usage` with a JSON report; a report whose
    `idempotency-key` it already has is acknowledged and not counted again."""

    reports: list[dict[str, Any]] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> int:
        if path != "/usage":
            return 404
        with self.lock:
            key = headers.get("idempotency-key", "")
            if key not in self.keys:
                self.keys.add(key)
                self.reports.append(json.loads(body))
        return 200


@dataclass
class Notifications:
    """The notification service: `POST /notifications` with a JSON notice."""

    sent: list[dict[str, Any]] = field(default_factory=list)

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> int:
        if path != "/notifications":
            return 404
        self.sent.append(json.loads(body))
        return 202


@dataclass
class WebhookReceiver:
    """A tenant's endpoint, `POST /hooks/<tenant>`: keeps each delivery that verifies under
    the shared secret (once per `webhook-id`), refuses the rest with 400."""

    secret: str
    verified: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    refused: int = 0
    seen: set[str] = field(default_factory=set)

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> int:
        try:
            event = Webhook(self.secret).verify(body, headers)
        except WebhookVerificationError:
            self.refused += 1
            return 400
        if headers["webhook-id"] not in self.seen:
            self.seen.add(headers["webhook-id"])
            self.verified.append((path.removeprefix("/hooks/"), event))
        return 200
