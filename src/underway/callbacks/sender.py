"""One delivery attempt: a POST to the callback URL, redirects followed by hand so that every
hop passes the SSRF guard, and what came of it as a value."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from ..errors import CallbackRefused, InvalidArguments
from .guard import Allow, parse_url, resolve

#: the most redirects one attempt follows
MAX_REDIRECTS = 3
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
USER_AGENT = "underway-callbacks"


@dataclass(frozen=True, slots=True)
class SendResult:
    """What one attempt got: the final answer's status code (None if none came), why it did
    not succeed, how long it took, and whether retrying is pointless (`refused`)."""

    status_code: int | None
    error: str | None
    duration: float
    refused: bool = False
    #: seconds the receiver asked to wait (Retry-After on a 429 or 503), None if it did not
    retry_after: float | None = None

    @property
    def delivered(self) -> bool:
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300


async def send(
    url: str, body: bytes, headers: Mapping[str, str], allow: Allow, timeout: float
) -> SendResult:
    """POST `body` with `headers` to `url`; each redirect hop is a new POST of the same body
    and headers (a callback is only ever a POST) to a newly checked address."""
    started = time.monotonic()

    def result(
        code: int | None, error: str | None, refused: bool = False, wait: float | None = None
    ) -> SendResult:
        return SendResult(code, error, time.monotonic() - started, refused, wait)

    try:
        current = parse_url(url)
        for _ in range(MAX_REDIRECTS + 1):
            code, answer = await _post(current, body, headers, allow, timeout)
            location = answer.get("location")
            if code not in _REDIRECTS or location is None:
                error = None if 200 <= code < 300 else f"the receiver answered HTTP {code}"
                wait = retry_after(answer.get("retry-after")) if code in (429, 503) else None
                return result(code, error, wait=wait)
            current = parse_url(str(current.join(location)))
        return result(code, f"more than {MAX_REDIRECTS} redirects; the last went to {current}")
    except (CallbackRefused, InvalidArguments) as exc:
        return result(None, str(exc), refused=True)
    except (httpx.TimeoutException, TimeoutError):
        return result(None, f"no answer within {timeout:g} s (callback_timeout_seconds)")
    except (httpx.HTTPError, OSError) as exc:
        return result(None, f"could not reach {url}: {type(exc).__name__}: {exc}")


async def _post(
    url: httpx.URL, body: bytes, headers: Mapping[str, str], allow: Allow, timeout: float
) -> tuple[int, Mapping[str, str]]:
    """One hop: the status code and the answer's headers. The hop as a whole, lookup
    included, has `timeout`: httpx's own timeouts bound each read, so a receiver sending its
    answer a byte at a time would otherwise hold the attempt past its lease."""
    async with asyncio.timeout(timeout):
        target = await resolve(url, allow)
        sent = {**headers, "host": target.host_header, "content-type": "application/json",
                "user-agent": USER_AGENT}  # fmt: skip
        # A client per hop, with no connection kept: a pooled connection is keyed by address,
        # and one opened for one host name must never carry a request for another. No proxies
        # from the environment either: a proxy would connect wherever it likes.
        async with (
            httpx.AsyncClient(timeout=timeout, trust_env=False, follow_redirects=False) as client,
            client.stream(
                "POST", target.url, content=body, headers=sent, extensions=target.extensions
            ) as response,
        ):
            return response.status_code, response.headers


def retry_after(value: str | None) -> float | None:
    """The seconds a Retry-After header asks for (delay-seconds or an HTTP date), else None.

    >>> retry_after("120"), retry_after("soon"), retry_after(None)
    (120.0, None, None)
    """
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
