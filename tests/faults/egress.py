"""Network faults for the fault workers (A04): a resolver that answers from a table, so a name
can resolve to a private address or change its answer between two lookups (DNS rebinding),
and a record of every TCP connection a worker's Python code opens, so a scenario can show
that nothing ever connected to a refused address.

Installed by faultapp when `FAULTS_RESOLVE` (JSON: name -> list of answers, one list of
addresses per lookup, the last one repeated) or `FAULTS_EGRESS` (a file to append
"host port" lines to) is set. psycopg's connections are libpq's, made in C, and not seen."""

from __future__ import annotations

import json
import os
import socket
import threading
from typing import Any

RESOLVE_VAR = "FAULTS_RESOLVE"
EGRESS_VAR = "FAULTS_EGRESS"


def install_from_env() -> None:
    table = os.environ.get(RESOLVE_VAR)
    if table:
        _resolve_from(json.loads(table))
    record = os.environ.get(EGRESS_VAR)
    if record:
        _record_connections(record)


def _resolve_from(table: dict[str, list[list[str]]]) -> None:
    real = socket.getaddrinfo
    lookups: dict[str, int] = {}
    lock = threading.Lock()

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        name = (name or "").rstrip(".").lower()
        if name not in table:
            return real(host, port, *args, **kwargs)
        with lock:
            turn = lookups.get(name, 0)
            lookups[name] = turn + 1
        answers = table[name][min(turn, len(table[name]) - 1)]
        out = []
        for address in answers:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sockaddr = (
                (address, int(port or 0), 0, 0)
                if family == socket.AF_INET6
                else (address, int(port or 0))
            )
            out.append((family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr))
        return out

    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]


def _record_connections(path: str) -> None:
    lock = threading.Lock()
    plain_connect = socket.socket.connect
    plain_connect_ex = socket.socket.connect_ex

    def note(address: Any) -> None:
        if isinstance(address, tuple) and len(address) >= 2:
            with lock, open(path, "a") as out:
                out.write(f"{address[0]} {address[1]}\n")

    def connect(self: socket.socket, address: Any) -> None:
        note(address)
        plain_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        note(address)
        return plain_connect_ex(self, address)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
