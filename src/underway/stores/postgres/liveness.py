"""Whether a LISTEN connection still hears the server. A connection whose network path died
without a FIN or an RST (a dead NAT entry, a pulled cable, a failover that moved the address)
looks exactly like a quiet one: reads just time out, forever, and wake-ups silently stop.
So a listener that heard nothing for a while notifies its own channel and expects to hear
that within a few seconds; when it does not, its connection is taken for dead."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable

log = logging.getLogger("underway.postgres")

#: a listener that heard no notice for this long pings its own channel ...
QUIET_SECONDS = 8.0
#: ... and takes its connection for dead when nothing came back within this. Both together
#: stay under the 15 s in which a dead listener must be noticed, with room for a loaded host.
PING_TIMEOUT_SECONDS = 4.0

#: how a ping payload starts; no notice of the triggers does (theirs are '' or a job id)
PING_PREFIX = "underway-ping:"

#: sends `payload` on `channel` from a connection other than the listening one
Send = Callable[[str, str], None]


def is_ping(payload: str) -> bool:
    """A health-check notice of some listener, not news for the readers."""
    return payload.startswith(PING_PREFIX)


class Liveness:
    """The health check of one listening connection, driven by its reader's thread: `heard`
    at every notice (any notice proves the path works, a ping of another process's listener
    as well as one's own), `dead` in between."""

    def __init__(self, channel: str, send: Send) -> None:
        self.channel = channel
        self.payload = f"{PING_PREFIX}{uuid.uuid4().hex}"  # tells this listener's pings apart
        self._send = send
        self._sending: threading.Thread | None = None
        self.heard_at = time.monotonic()
        self.pinged_at: float | None = None

    def heard(self) -> None:
        """A notice arrived (or a new connection listens): the path works."""
        self.heard_at = time.monotonic()
        self.pinged_at = None

    def due_in(self) -> float:
        """Seconds until `dead` has something to do: send a ping, or judge one."""
        if self.pinged_at is None:
            return max(0.0, self.heard_at + QUIET_SECONDS - time.monotonic())
        return max(0.0, self.pinged_at + PING_TIMEOUT_SECONDS - time.monotonic())

    def dead(self) -> bool:
        """True when a ping went unanswered for PING_TIMEOUT_SECONDS; pings when quiet."""
        now = time.monotonic()
        if self.pinged_at is not None:
            return now - self.pinged_at >= PING_TIMEOUT_SECONDS
        if now - self.heard_at >= QUIET_SECONDS:
            self.pinged_at = now
            self._ping()
        return False

    def _ping(self) -> None:
        # Sent from a thread of its own: the sending connection may hang on the same dead
        # network, and the reader's thread must go on judging (a ping not heard is the verdict,
        # whatever became of the send). One send at a time: a hanging one is not piled on.
        if self._sending is not None and self._sending.is_alive():
            return
        self._sending = threading.Thread(
            target=self._send_ping, name="underway-listener-ping", daemon=True
        )
        self._sending.start()

    def _send_ping(self) -> None:
        try:
            self._send(self.channel, self.payload)
        except Exception as exc:  # the ping not arriving is what counts, and is logged then
            log.debug("pinging listener channel %s failed: %s", self.channel, exc)
