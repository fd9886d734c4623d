"""A TCP proxy in front of PostgreSQL that can black-hole connections: stop passing bytes
either way without closing anything, as a dead NAT entry or a pulled cable does (no FIN, no
RST). It tags each connection by what its client sent, so a test can black-hole only the
LISTEN sessions, say. Or it can partition every connection, open and new, and heal later: bytes
wait instead of vanishing, as behind an iptables DROP, where TCP resends them once the route is
back. Used by tests/postgres and tests/faults (F09, F06)."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

_LISTEN = re.compile(rb'LISTEN "(underway[^"]*)"')


@dataclass
class Link:
    """One client connection and its own connection to the server."""

    client: socket.socket
    server: socket.socket
    sent: bytearray = field(default_factory=bytearray)  # the first bytes the client sent
    held: bool = False  # black-holed: bytes are read and dropped, never passed on
    alive: bool = True  # until either side closed

    def channel(self) -> str | None:
        """The underway channel this connection LISTENs on, if any."""
        found = _LISTEN.search(bytes(self.sent))
        return found.group(1).decode() if found else None

    def listens(self) -> bool:
        """An open connection LISTENing on some underway channel."""
        return self.alive and self.channel() is not None


class Proxy:
    """Listens on a free loopback port and forwards every connection to `upstream`."""

    def __init__(self, upstream: tuple[str, int] = ("127.0.0.1", 5432)) -> None:
        self.upstream = upstream
        self._links: list[Link] = []
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._closed = False
        self._partitioned = threading.Event()  # every byte waits, either way, until healed
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def links(self) -> list[Link]:
        with self._lock:
            return list(self._links)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            link = Link(client, server)
            with self._lock:
                self._links.append(link)
            for src, dst, upward in ((client, server, True), (server, client, False)):
                threading.Thread(target=self._pump, args=(link, src, dst, upward),
                                 daemon=True).start()  # fmt: skip

    def _pump(self, link: Link, src: socket.socket, dst: socket.socket, upward: bool) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            if upward and len(link.sent) < 65536:
                link.sent += data
            while self._partitioned.is_set() and not self._closed:
                time.sleep(0.005)  # held back, not lost: delivered once healed
            if link.held:
                continue  # swallowed: the peer waits forever, as behind a dead route
            try:
                dst.sendall(data)
            except OSError:
                break
        link.alive = False
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def hold(self, which: Callable[[Link], bool]) -> list[Link]:
        """Black-hole the open connections `which` picks; returns them."""
        picked = [link for link in self.links if link.alive and which(link)]
        for link in picked:
            link.held = True
        return picked

    def release(self) -> None:
        """Pass bytes again (what was swallowed meanwhile is lost, unlike on a real network,
        where TCP would resend it)."""
        for link in self.links:
            link.held = False

    def partition(self) -> None:
        """Hold back every byte of every connection, open or made from now on, until `heal`."""
        self._partitioned.set()

    def heal(self) -> None:
        """Deliver what was held back and pass bytes again."""
        self._partitioned.clear()

    def url(self, url: str) -> str:
        """`url` with its host and port replaced by the proxy's."""
        parts = urlsplit(url)
        user, at, _ = parts.netloc.rpartition("@")
        return urlunsplit(parts._replace(netloc=f"{user}{at}127.0.0.1:{self.port}"))

    def close(self) -> None:
        self._closed = True
        self._server.close()
        for link in self.links:
            for sock in (link.client, link.server):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)  # wakes its pump's recv
                with contextlib.suppress(OSError):
                    sock.close()
