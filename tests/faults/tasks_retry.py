"""Tasks of F21: a job that calls the scenario's HTTP stub and raises on a 503, so underway
retries it with the task's backoff; `polite_call` instead asks for the stub's Retry-After."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from typing import Any

from ledger import LEDGER_VAR, Event, write

import underway


class Unavailable(Exception):
    """The service answered 503."""


def _call(ctx: underway.Context, url: str, honour_retry_after: bool) -> dict[str, Any]:
    probe, attempt = str(ctx.job.id), ctx.job.attempt
    write(os.environ[LEDGER_VAR], Event.START, probe, attempt)
    try:
        with urllib.request.urlopen(f"{url}?job={probe}&attempt={attempt}", timeout=30):
            pass
    except urllib.error.HTTPError as exc:
        retry_after = exc.headers.get("Retry-After")
        if exc.code == 503 and honour_retry_after and retry_after is not None:
            raise underway.Retry(delay=float(retry_after), reason="503 with Retry-After") from None
        raise Unavailable(f"HTTP {exc.code} from {url}") from None
    write(os.environ[LEDGER_VAR], Event.EFFECT, probe, attempt)
    write(os.environ[LEDGER_VAR], Event.END, probe, attempt)
    return {"attempt": attempt}


def storm_call(ctx: underway.Context, url: str) -> dict[str, Any]:
    return _call(ctx, url, honour_retry_after=False)


def storm_call_full(ctx: underway.Context, url: str) -> dict[str, Any]:
    return _call(ctx, url, honour_retry_after=False)


def polite_call(ctx: underway.Context, url: str) -> dict[str, Any]:
    return _call(ctx, url, honour_retry_after=True)


#: CI: a 5 s outage; horizon 0.5 + 1 + 2 + 4 x 6 = 27.5 s over 9 retries
CI_BACKOFF, CI_ATTEMPTS = underway.Backoff(base=0.5, factor=2.0, max=4.0), 10
#: --full: a 5 min outage; horizon 5 + 10 + 20 + 40 + 80 + 120 x 6 = 875 s over 11 retries
FULL_BACKOFF, FULL_ATTEMPTS = underway.Backoff(base=5.0, factor=2.0, max=120.0), 12


def horizon(backoff: underway.Backoff, max_attempts: int) -> float:
    """The longest a job can spend waiting between its attempts (every wait at its top)."""
    plain = underway.Backoff(backoff.base, backoff.factor, backoff.max, jitter=False)
    return sum(plain.delay(n) for n in range(1, max_attempts))


TASKS: list[tuple[Any, dict[str, Any]]] = [
    (storm_call, {"max_attempts": CI_ATTEMPTS, "retry": CI_BACKOFF}),
    (storm_call_full, {"max_attempts": FULL_ATTEMPTS, "retry": FULL_BACKOFF}),
    (polite_call, {"max_attempts": 10, "retry": CI_BACKOFF}),
]
