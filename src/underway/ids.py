"""UUIDv7 job ids: time-ordered, so ids sort in creation order (RFC 9562, section 5.7)."""

from __future__ import annotations

import os
import threading
import time
import uuid

from .errors import JobNotFound, UnderwayError

_lock = threading.Lock()
_last_ms = 0
_seq = 0
#: random bytes from the OS, drawn a block at a time (one call per 512 ids)
_pool = b""
_used = 0
_BLOCK = 4096


def _forget_pool() -> None:
    # A forked child must not reuse its parent's remaining bytes (the same ids, in one ms).
    global _pool, _used
    _pool, _used = b"", 0


os.register_at_fork(after_in_child=_forget_pool)


def _random_bits() -> int:
    """64 bits from the OS's CSPRNG. A caller may choose a job's id, so ids must not be
    predictable: a seeded PRNG would let whoever saw a few ids take the next ones first."""
    global _pool, _used
    if _used + 8 > len(_pool):
        _pool, _used = os.urandom(_BLOCK), 0
    _used += 8
    return int.from_bytes(_pool[_used - 8 : _used])


def uuid7() -> uuid.UUID:
    """A new UUIDv7; strictly increasing within this process, even inside one millisecond."""
    global _last_ms, _seq
    with _lock:
        bits = _random_bits()
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
            _seq = bits >> 54  # 10 bits: leaves room to count up within the millisecond
        seq = _seq
    rand_b = bits & ((1 << 62) - 1)
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
