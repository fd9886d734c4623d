"""What the HTTP API tests share: an App's API served by uvicorn in a thread on a free loopback
port, and httpx clients holding an admin key or a tenant's key."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

import underway

HERE = Path(__file__).resolve().parent


class Served:
    """A FastAPI app served by uvicorn in a thread, on 127.0.0.1 and a port of its own (or
    `port`, to serve again where a stopped server was)."""

    def __init__(self, api: Any, port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(api, log_level="warning", timeout_graceful_shutdown=3)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert self.thread.is_alive(), "uvicorn stopped before it started"
            assert time.monotonic() < deadline, "uvicorn did not start within 10 s"
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()
        assert not self.thread.is_alive(), "uvicorn did not stop within 10 s"


@dataclass
class Web:
    """The served API of one App, with keys: `admin`, and one per tenant in `tenants`."""

    app: underway.App
    url: str
    admin: str
    tenants: dict[str, str]
    clients: list[httpx.Client] = field(default_factory=list)
    served: Served | None = None  # the server, for a test that stops and restarts it

    def client(self, key: str | None = None, **kwargs: Any) -> httpx.Client:
        """An httpx client of the API; with `key`, sending it as a bearer token."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        client = httpx.Client(base_url=self.url, headers=headers, **({"timeout": 30} | kwargs))
        self.clients.append(client)
        return client

    def as_admin(self) -> httpx.Client:
        return self.client(self.admin)

    def as_tenant(self, tenant: str) -> httpx.Client:
        return self.client(self.tenants[tenant])


@dataclass(frozen=True)
class Event:
    """One Server-Sent Event as a client reads it."""

    event: str
    id: str | None
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


def sse_events(response: httpx.Response) -> Iterator[Event]:
    """The events of an open text/event-stream response, as they arrive (comments skipped)."""
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if not line:
            if "data" in fields:
                yield Event(fields.get("event", "message"), fields.get("id"), fields["data"])
            fields = {}
            continue
        if line.startswith(":"):
            continue  # a keep-alive comment
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        fields[name] = (
            f"{fields['data']}\n{value}" if name == "data" and "data" in fields else value
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_process(args: list[str], url: str, **env: str) -> subprocess.Popen[bytes]:
    """`python -m underway ARGS` in this directory (so `webapp:app` imports), on `url`."""
    environment = {**os.environ, "UNDERWAY_DATABASE_URL": url, **env}
    return subprocess.Popen(
        [sys.executable, "-m", "underway", *args],
        cwd=HERE,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
