"""LISTEN on one channel of the schema, on a connection of its own: the change feed's and the
cancel requests' notices. A notice is only ever a hint; readers query the store for the truth."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import Any

import psycopg

log = logging.getLogger("underway.postgres")


#: the channel word of each topic, as the migration-0003 triggers spell it
CHANNELS = {"changes": "feed", "cancels": "cancel"}


def topic_channel(topic: str, schema: str) -> str:
    """The channel the migration-0003 triggers notify on; the same expression as theirs
    (`'underway-<word>:' || left(md5(schema), 16)`), and always under PostgreSQL's 63 bytes."""
    return f"underway-{CHANNELS[topic]}:{hashlib.md5(schema.encode()).hexdigest()[:16]}"


class Listener:
    """Notices of one channel. `wait` returns their payloads, [] when none came in time, or
    None when some may have been missed (the connection was lost): then look anyway."""

    def __init__(self, conninfo: str, channel: str, listen_sql: str) -> None:
        self.conninfo = conninfo
        self.channel = channel
        self._listen_sql = listen_sql
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()
        self._closed = False
        # LISTEN before the caller looks at the store: a notice sent between its look and its
        # first wait is then waiting for it, not lost.
        try:
            self._connect()
        except psycopg.Error as exc:
            log.warning("listening on %s failed (%s); retrying at the first wait", channel, exc)

    def wait(self, timeout: float) -> list[str] | None:
        try:
            conn = self._conn
            if conn is None or conn.closed:
                # Notices sent while no connection listened are lost: look, then wait.
                return [] if self._connect() is None else None
            payloads = [n.payload for n in conn.notifies(timeout=timeout, stop_after=1)]
            if payloads:  # take the others that came together
                payloads += [n.payload for n in conn.notifies(timeout=0)]
            return payloads
        except psycopg.Error as exc:
            if self._closed:
                return []
            log.warning("listening on %s failed (%s); reconnecting", self.channel, exc)
            self._drop()
            time.sleep(min(timeout, 0.5))
            return None

    def _connect(self) -> psycopg.Connection[Any] | None:
        """A listening connection (None once closed)."""
        with self._lock:
            if self._closed:
                return None
            if self._conn is None or self._conn.closed:
                conn = psycopg.connect(self.conninfo, autocommit=True)
                conn.execute(self._listen_sql)
                self._conn = conn
            return self._conn

    def _drop(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
            self._conn = None

    def close(self) -> None:
        self._closed = True
        self._drop()
