"""UUIDv7 job ids: time-ordered, so ids sort in creation order (RFC 9562, section 5.7)."""

from __future__ import annotations

import os
import random
import threading
import time
import uuid

from .errors import JobNotFound, UnderwayError

_lock = threading.Lock()
_last_ms = 0
_seq = 0
_random = random.Random()
# A forked child must not replay its parent's random sequence (the same ids, in one ms).
os.register_at_fork(after_in_child=_random.seed)


def uuid7() -> uuid.UUID:
    """A new UUIDv7; strictly increasing within this process, even inside one millisecond."""
    global _last_ms, _seq
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            # Same (or earlier) millisecond: keep order with a 12-bit counter in rand_a,
            # moving the timestamp forward when the counter runs out.
            _seq += 1
            if _seq > 0xFFF:
                _last_ms += 1
                _seq = 0
            ms = _last_ms
        else:
            _last_ms = ms
            _seq = _random.getrandbits(10)  # leaves room to count up within the millisecond
        seq = _seq
    # Ids need uniqueness, not secrecy: a seeded PRNG is enough and much faster than urandom.
    rand_b = _random.getrandbits(62)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | seq << 64 | 0b10 << 62 | rand_b
    return uuid.UUID(int=value)


def as_job_id(job_id: uuid.UUID | str, error: type[UnderwayError] = JobNotFound) -> uuid.UUID:
    """A job id given as a UUID or its text; `error` (JobNotFound unless told) for text that
    is not one."""
    if isinstance(job_id, uuid.UUID):
        return job_id
    try:
        return uuid.UUID(str(job_id))
    except ValueError:
        raise error(f"{job_id!r} is not a job id (expected a UUID)") from None
