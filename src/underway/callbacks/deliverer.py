"""The deliverer: a role of every worker. It claims due deliveries with a lease, signs and
sends each (several at once, none of them on the event loop's time: the sends are async and
the store calls run on a thread of their own), records every attempt, and retries with
exponential backoff and jitter until delivered or out of attempts."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from ..jobjson import job_to_json
from ..model import DeliveryStatus, Job
from ..retry import Backoff
from ..settings import Settings
from ..stores import Store
from ..stores.messages import DeliveryResult, DueDelivery
from ..threads import StoreThreads
from ..waits import wait_event
from .guard import Allow
from .sender import MAX_REDIRECTS, SendResult, send
from .signing import Signer

log = logging.getLogger("underway.callbacks")
T = TypeVar("T")

#: deliveries one worker sends at once
MAX_IN_FLIGHT = 8


def body_of(due: DueDelivery, job: Job) -> bytes:
    """The POST body: `{"type", "timestamp", "data": <Job>}`; the timestamp is when the job
    reached the final state this delivery tells of."""
    event = {"type": due.type, "timestamp": _iso(due.created_at), "data": job_to_json(job)}
    return json.dumps(event, separators=(",", ":")).encode()


#: the receiver says the URL is gone for good: retrying cannot help
GONE = 410


def decide(due: DueDelivery, sent: SendResult, settings: Settings) -> DeliveryResult:
    """What one attempt leaves the delivery as: delivered; failed for good (refused, 410 Gone,
    or the last attempt allowed); else pending, due again after the backoff for this attempt,
    or after the receiver's Retry-After when that is longer (up to the backoff's maximum)."""
    number = due.attempts + 1
    retry_in = 0.0
    if sent.delivered:
        status = DeliveryStatus.DELIVERED
    elif sent.refused or sent.status_code == GONE or number >= settings.callback_max_attempts:
        status = DeliveryStatus.FAILED
    else:
        status = DeliveryStatus.PENDING
        retry_in = backoff(settings).delay(number)
        if sent.retry_after is not None:
            asked = min(sent.retry_after, settings.callback_backoff_max_seconds)
            retry_in = max(retry_in, asked)
    return DeliveryResult(
        delivery_id=due.id, token=due.token, status=status, duration=sent.duration,
        status_code=sent.status_code, error=sent.error, retry_in=retry_in,
    )  # fmt: skip


def backoff(settings: Settings) -> Backoff:
    return Backoff(
        base=settings.callback_backoff_base_seconds,
        factor=2.0,
        max=settings.callback_backoff_max_seconds,
        jitter=True,
    )


def lease_seconds(settings: Settings) -> float:
    """How long a claim holds a delivery: past the longest an attempt can take (every hop
    timing out), so a slow receiver never sees a second sender while the first still waits."""
    return settings.callback_timeout_seconds * (MAX_REDIRECTS + 1) + 10.0


class Deliverer:
    """Sends the store's due deliveries from one worker until cancelled; on cancel, sends
    under way get `shutdown_grace_seconds` to finish, and any cut short is recorded as a
    failed attempt, to be sent again after its backoff (receivers deduplicate on
    `webhook-id`)."""

    def __init__(
        self, worker_id: str, store: Store, threads: StoreThreads, settings: Settings
    ) -> None:
        assert settings.webhook_secret is not None, "a deliverer needs the signing secret"
        self.worker_id = worker_id
        self.store = store
        self.threads = threads
        self.settings = settings
        self.signer = Signer.of(settings.webhook_secret, settings.webhook_previous_secrets)
        self.allow = Allow.parse(settings.callback_allow)
        if opened := self.allow.opened():
            # An opt-in to reach what is otherwise refused: say so where operators look.
            log.warning(
                "callback_allow lets completion callbacks reach %s, which they could not "
                "otherwise (internal services, loopback): keep it to receivers you run",
                ", ".join(opened),
            )
        self.lease = lease_seconds(settings)
        self.in_flight: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look for due deliveries now (on the loop's thread): a job with a callback ended."""
        self._wake.set()

    async def run(self) -> None:
        try:
            while True:
                await self._claim_and_start()
                await wait_event(self._wake, self.settings.poll_seconds)
                self._wake.clear()
        finally:
            await self._finish_in_flight()

    async def _claim_and_start(self) -> None:
        free = MAX_IN_FLIGHT - len(self.in_flight)
        if free <= 0:
            return
        try:
            claimed = await self._store(
                self.store.claim_deliveries, self.worker_id, free, self.lease
            )
        except Exception as exc:
            log.error("claiming due callback deliveries failed: %s", exc)
            return
        for due in claimed:
            task = asyncio.create_task(self._deliver(due), name=f"underway-callback-{due.id}")
            self.in_flight.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.in_flight.discard(task)
        self._wake.set()  # a slot is free: more may be due

    async def _finish_in_flight(self) -> None:
        if not self.in_flight:
            return
        pending = set(self.in_flight)
        _, late = await asyncio.wait(pending, timeout=self.settings.shutdown_grace_seconds)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)
            log.warning("%d callback deliveries cut short by the stop; sent again later", len(late))

    async def _deliver(self, due: DueDelivery) -> None:
        started = time.monotonic()
        try:
            sent = await self._attempt(due)
        except asyncio.CancelledError:
            # Cut short by the stop: recorded as a failed attempt, so the delivery is due again
            # after its backoff rather than at the lease's end. The receiver may have had it:
            # the next attempt carries the same webhook-id.
            elapsed = time.monotonic() - started
            await self._record(due, SendResult(None, "the worker stopped during this attempt",
                                               elapsed))  # fmt: skip
            raise
        except Exception:
            log.exception("callback %s for job %s: delivery attempt crashed", due.id, due.job_id)
            return
        if sent is not None:
            await self._record(due, sent)

    async def _attempt(self, due: DueDelivery) -> SendResult | None:
        """Sign and send the delivery once; None when its job is gone (and the delivery
        with it)."""
        job = await self._store(self.store.get, due.job_id)
        if job is None:
            return None
        body = body_of(due, job)
        headers = self.signer.headers(due.id, int(time.time()), body)
        return await send(
            due.url, body, headers, self.allow, self.settings.callback_timeout_seconds
        )

    async def _record(self, due: DueDelivery, sent: SendResult) -> None:
        result = decide(due, sent, self.settings)
        try:
            landed = await self._store(self.store.record_delivery, result)
        except Exception as exc:  # the lease runs out, and the delivery is sent again
            log.error("callback %s for job %s: recording the attempt failed: %s",
                      due.id, due.job_id, exc)  # fmt: skip
            return
        _log_attempt(due, result, landed)

    async def _store(self, fn: Callable[..., T], *args: object) -> T:
        return await self.threads.on(self.threads.deliveries, fn, *args)


def _log_attempt(due: DueDelivery, result: DeliveryResult, landed: bool) -> None:
    where = f"callback {due.id} for job {due.job_id} to {due.url} (attempt {due.attempts + 1})"
    if not landed:
        log.warning("%s: result not recorded, the lease ran out meanwhile", where)
    elif result.status is DeliveryStatus.DELIVERED:
        log.info("%s delivered: HTTP %s", where, result.status_code)
    elif result.status is DeliveryStatus.FAILED:
        log.error("%s failed for good: %s", where, result.error)
    else:
        log.warning("%s failed, next attempt in %.1f s: %s", where, result.retry_in, result.error)


def _iso(value: datetime) -> str:
    return value.isoformat()
