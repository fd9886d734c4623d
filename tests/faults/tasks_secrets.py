"""The task of A08 (secrets in arguments, logs, dead letters): it takes a `Secret` and a
credential-named plain argument, logs at every level the way careless code does (the Secret
object itself, never its value), and, when asked to, fails with both values in its error, as
a client library's exception often carries the key it was given. Its effect line carries a
digest of what it got, so the scenario can tell it got the plaintext without the ledger
holding it."""

from __future__ import annotations

import hashlib
import os
from typing import Any

from ledger import LEDGER_VAR, Event, write

import underway


class Refused(Exception):
    """What a payment provider's client raises, quoting the key it was given."""


def charge(
    ctx: underway.Context, api_key: underway.Secret, api_token: str, fail: bool = False
) -> dict[str, Any]:
    ledger, probe, attempt = os.environ[LEDGER_VAR], str(ctx.job.id), ctx.job.attempt
    write(ledger, Event.START, probe, attempt)
    for level in ("debug", "info", "warning", "error"):
        getattr(ctx.logger, level)("charging with %s", api_key)  # the Secret, not its value
    if fail:
        raise Refused(f"key {api_key.reveal()} refused for token {api_token}")
    digest = hashlib.sha256(f"{api_key.reveal()} {api_token}".encode()).hexdigest()[:16]
    write(ledger, Event.EFFECT, probe, attempt, digest)
    write(ledger, Event.END, probe, attempt)
    return {"charged": True}


TASKS: list[tuple[Any, dict[str, Any]]] = [
    (charge, {"max_attempts": 2, "retry": underway.Backoff(base=0.1, factor=2.0, max=0.2)})
]
