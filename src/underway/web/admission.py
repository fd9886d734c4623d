"""Refusing an enqueue over its tenant's quota before the rest of the API runs (scenario
A09). A flood over the quota is mostly requests the store would refuse anyway: the producer
already refuses them without asking the store (quotas.KnownShort), and this middleware does
so without even routing the request, validating its body or looking its key up, so a flood
costs the server as little as it can and the other tenants' requests stay quick.

It acts only on a single enqueue (POST /api/v1/jobs) with a tenant key this process has
recently seen authenticated: one whose tenant the producer knows cannot take a job now is
answered 429 here; one admitted has its job counted at once (Producer.admission), so a burst
of requests cannot all slip past the check before the first of them reaches the store, and
runs in its tenant's lanes (at most LANES_PER_TENANT at once). An enqueue with a key not seen
yet runs in that key's lanes until the key has authenticated, so a flood's first requests,
sent all at once, cannot hold every thread the store calls run on; an admin key then goes on
unhindered. Every other request goes on as before. So a key revoked in another process may
get 429 rather than 401 for up to KEY_MEMORY_SECONDS: a refusal either way."""

from __future__ import annotations

import asyncio
import hashlib
import math
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import QuotaExceeded
from ..keys import ApiKey
from ..producer import Producer

#: how long a key's tenant is remembered after the key last authenticated
KEY_MEMORY_SECONDS: Final = 10.0
#: most keys remembered; past it the memory starts afresh
KEY_MEMORY_SIZE: Final = 10_000
#: most enqueues of one tenant key running at once in this process; the rest wait their turn
#: without holding a thread
LANES_PER_TENANT: Final = 2


def over_quota(exc: QuotaExceeded) -> Response:
    """429, with Retry-After in whole seconds (rounded up, at least 1) when waiting helps; a
    batch bigger than the burst never passes, so it gets no Retry-After."""
    headers = {}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    return JSONResponse({"detail": str(exc)}, status_code=429, headers=headers)


#: what KeyTenants knows of a key: its tenant, ADMIN, or (None) nothing
ADMIN: Final = ""


class KeyTenants:
    """The tenant of each key that authenticated lately (ADMIN for an admin key), by the
    hash of its secret."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tenants: dict[bytes, tuple[str, float]] = {}

    def remember(self, secret: str, key: ApiKey) -> None:
        # An admin key names its tenant in the body: it is remembered only to let it pass.
        tenant = ADMIN if key.tenant is None else key.tenant
        with self._lock:
            if len(self._tenants) >= KEY_MEMORY_SIZE:
                self._tenants.clear()
            self._tenants[_digest(secret)] = (tenant, time.monotonic() + KEY_MEMORY_SECONDS)

    def tenant_of(self, secret: str) -> str | None:
        """The key's tenant, ADMIN, or None when it did not authenticate lately."""
        with self._lock:
            known = self._tenants.get(_digest(secret))
        if known is None or known[1] < time.monotonic():
            return None
        return known[0]


class Lanes:
    """At most LANES_PER_TENANT enqueues of one tenant (or of one key not seen yet, by its
    digest) at a time. A tenant's enqueues take
    turns on its quota bucket's row lock anyway (PostgreSQL holds it to the commit), so more
    at once gain nothing; yet each one waiting on that lock holds one of the few threads store
    calls run on, and a flood's enqueues would hold them all while other tenants' requests
    queue behind them. Used from the event loop's thread only."""

    def __init__(self) -> None:
        self._lanes: dict[str | bytes, tuple[asyncio.Semaphore, list[int]]] = {}

    @asynccontextmanager
    async def of(self, tenant: str | bytes) -> AsyncIterator[None]:
        lane = self._lanes.get(tenant)
        if lane is None:
            lane = self._lanes[tenant] = (asyncio.Semaphore(LANES_PER_TENANT), [0])
        semaphore, users = lane
        users[0] += 1
        try:
            async with semaphore:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._lanes[tenant]


class EarlyRefusal:
    """ASGI middleware: 429 at once for an enqueue whose tenant surely cannot take a job, and
    a tenant's admitted enqueues in its own lanes."""

    def __init__(self, app: ASGIApp, producer: Producer, keys: KeyTenants) -> None:
        self.app = app
        self.producer = producer
        self.keys = keys
        self.lanes = Lanes()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        secret = _enqueue_key(scope)
        tenant = None if secret is None else self.keys.tenant_of(secret)
        if secret is None or tenant == ADMIN:
            await self.app(scope, receive, send)
            return
        if tenant is None:
            # Not seen yet, so its tenant is unknown: the key takes turns as a tenant of its
            # own until it has authenticated (a flood's first requests, sent all at once).
            async with self.lanes.of(_digest(secret)):
                await self.app(scope, receive, send)
            return
        with self.producer.admission(tenant) as refusal:
            if refusal is None:
                async with self.lanes.of(tenant):
                    await self.app(scope, receive, send)
                return
        # Read the (small: BodyLimit is outside) body, so the connection stays usable.
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False) and message["type"] == "http.request"
        await over_quota(refusal)(scope, receive, send)


def _enqueue_key(scope: Scope) -> str | None:
    """The bearer secret of a single enqueue (POST .../api/v1/jobs), else None."""
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    if not scope["path"].endswith("/api/v1/jobs"):
        return None
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, secret = value.decode("latin-1").partition(" ")
            return secret.strip() if scheme.lower() == "bearer" else None
    return None


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()
