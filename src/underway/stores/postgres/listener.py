"""LISTEN on one channel of the schema, on a connection of its own: new work, the change
feed's and the cancel requests' notices. A notice is only ever a hint; readers query the store
for the truth. The connection is health-checked (liveness.py) and has TCP keepalives, so one
whose network path died silently is replaced instead of listening to nothing forever."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import threading
import time
from typing import Any

import psycopg

from .errors import said_by
from .liveness import PING_TIMEOUT_SECONDS, QUIET_SECONDS, Liveness, Send, is_ping
from .network import KEEPALIVES, with_defaults

log = logging.getLogger("underway.postgres")


#: the channel word of each topic, as the migration-0003 triggers spell it
CHANNELS = {"changes": "feed", "cancels": "cancel"}


def topic_channel(topic: str, schema: str) -> str:
    """The channel the migration-0003 triggers notify on; the same expression as theirs
    (`'underway-<word>:' || left(md5(schema), 16)`), and always under PostgreSQL's 63 bytes."""
    return f"underway-{CHANNELS[topic]}:{hashlib.md5(schema.encode()).hexdigest()[:16]}"


class Listener:
    """Notices of one channel. `wait` returns their payloads (never a health-check ping), []
    when none came in time, or None when some may have been missed (the connection was lost
    or replaced): then look anyway. `send` notifies the channel from another connection."""

    def __init__(self, conninfo: str, channel: str, listen_sql: str, send: Send) -> None:
        self.conninfo = with_defaults(conninfo, KEEPALIVES)
        self.channel = channel
        self._listen_sql = listen_sql
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._liveness = Liveness(channel, send)
        # LISTEN before the caller looks at the store: a notice sent between its look and its
        # first wait is then waiting for it, not lost.
        try:
            self._connect()
        except psycopg.Error as exc:
            log.warning(
                "listening on %s failed (%s); retrying at the first wait", channel, said_by(exc)
            )

    def wait(self, timeout: float) -> list[str] | None:
        deadline = time.monotonic() + timeout
        try:
            conn = self._conn
            if conn is None or conn.closed:
                # Notices sent while no connection listened are lost: look, then wait.
                return [] if self._connect() is None else None
            while True:
                # Read before judging: a reader that came back late finds the answer to its
                # ping waiting on the socket, and must not take that for silence.
                left = min(deadline - time.monotonic(), self._liveness.due_in())
                payloads = self._read(conn, max(left, 0.0))
                if payloads:
                    return payloads
                if self._liveness.dead():
                    self._replace()
                    return None
                if time.monotonic() >= deadline:
                    return []
        except psycopg.Error as exc:
            if self._closed:
                return []
            log.warning("listening on %s failed (%s); reconnecting", self.channel, said_by(exc))
            self._drop()
            time.sleep(min(timeout, 1.0))  # a server that is down: not a reconnect loop
            return None

    def _read(self, conn: psycopg.Connection[Any], timeout: float) -> list[str]:
        """The payloads of the notices that come within `timeout`, pings left out."""
        notices = [n.payload for n in conn.notifies(timeout=timeout, stop_after=1)]
        if not notices:
            return []
        notices += [n.payload for n in conn.notifies(timeout=0)]  # the others that came along
        self._liveness.heard()
        return [payload for payload in notices if not is_ping(payload)]

    def _replace(self) -> None:
        log.warning(
            "listening on %s: no notice for %.0f s, not even the ping notice it sent itself "
            "%.0f s ago; taking the connection for dead (its network path died silently) and "
            "listening on a new one", self.channel, QUIET_SECONDS + PING_TIMEOUT_SECONDS,
            PING_TIMEOUT_SECONDS,
        )  # fmt: skip
        self._drop()
        self._connect()

    def _connect(self) -> psycopg.Connection[Any] | None:
        """A listening connection (None once closed)."""
        with self._lock:
            if self._closed:
                return None
            if self._conn is None or self._conn.closed:
                conn = psycopg.connect(self.conninfo, autocommit=True)
                conn.execute(self._listen_sql)
                self._conn = conn
                self._liveness.heard()
            return self._conn

    def _drop(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            _shut(conn)
            conn.close()

    def close(self) -> None:
        self._closed = True
        self._drop()


def _shut(conn: psycopg.Connection[Any]) -> None:
    """Shut the connection's socket down first: closing then sends its goodbye into a socket
    that refuses at once, instead of one that may block on a dead network path."""
    with contextlib.suppress(OSError, psycopg.Error):
        sock = socket.socket(fileno=os.dup(conn.fileno()))
        try:
            sock.shutdown(socket.SHUT_RDWR)
        finally:
            sock.close()  # only the duplicate: the connection closes its own
