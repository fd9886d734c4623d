"""The store-error throttle: one line every few seconds during an outage, other lines untouched."""

from __future__ import annotations

import logging

from underway.errors import StoreError
from underway.outages import StoreErrorThrottle


def record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("underway.worker", logging.ERROR, __file__, 1, msg, args, None)


def test_store_errors_pass_once_per_interval_and_count_the_dropped() -> None:
    now = [100.0]
    throttle = StoreErrorThrottle(every=5.0, clock=lambda: now[0])
    down = StoreError("PostgreSQL is read-only here")
    assert throttle.filter(record("heartbeat failed: %s", down))
    now[0] += 1
    assert not throttle.filter(record("claiming failed (%s); retrying in %.1f s", down, 0.4))
    assert not throttle.filter(record("announcing the worker failed: %s", down))
    now[0] += 4
    later = record("heartbeat failed: %s", down)
    assert throttle.filter(later)
    assert later.getMessage() == (
        "heartbeat failed: PostgreSQL is read-only here (and 2 more store errors since the "
        "last one logged, not logged)"
    )


def test_other_records_are_never_dropped() -> None:
    throttle = StoreErrorThrottle(every=5.0, clock=lambda: 0.0)
    assert throttle.filter(record("heartbeat failed: %s", StoreError("down")))
    assert throttle.filter(record("job %s failed: %s", "abc", ValueError("x")))
    assert throttle.filter(record("a line with no arguments"))
