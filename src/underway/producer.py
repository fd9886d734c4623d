"""Putting jobs into the store: what a task handle's `enqueue` calls. It picks the store or
the caller's own connection (transactional enqueue), hands the store what the jobs take of
their tenants' quotas, and tells this process about the jobs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from .callbacks.guard import parse_url
from .errors import ConfigurationError, InvalidArguments, QuotaExceeded
from .events import Events
from .model import Job
from .quotas import KnownShort, Quotas, TenantQuota
from .secret import Sealer
from .settings import Settings
from .stores import Store, TransactionalEnqueue
from .stores.messages import NewJob, QuotaDemand


class Producer:
    """Inserts validated jobs, wakes this process's workers and publishes the new jobs.
    `store()` opens the store on first use."""

    def __init__(
        self,
        store: Callable[[], Store],
        events: Events,
        max_args_bytes: int,
        signs_callbacks: bool = False,
        quotas: Quotas | None = None,
        sealer: Sealer | None = None,
    ) -> None:
        self._store = store
        #: seals Secret arguments with the app's secret_key
        self.sealer = sealer or Sealer(None)
        #: each tenant's enqueue quota; its demands go to the store with every insert
        self.quotas = quotas or Quotas()
        self._short = KnownShort()
        self.events = events
        #: the largest JSON arguments a job may carry, in bytes (setting max_args_bytes)
        self.max_args_bytes = max_args_bytes
        #: the app has a webhook_secret, so its jobs may carry a callback_url
        self.signs_callbacks = signs_callbacks

    @classmethod
    def of(
        cls,
        settings: Settings,
        store: Callable[[], Store],
        events: Events,
        tenant_quotas: Mapping[str, TenantQuota | None] | None = None,
    ) -> Producer:
        """The producer of an app with these settings; `tenant_quotas` are its per-tenant
        quota overrides (`App(tenant_quotas=...)`) over the settings' tenant_enqueue_rate."""
        return cls(
            store, events, settings.max_args_bytes,
            signs_callbacks=settings.webhook_secret is not None,
            quotas=Quotas.build(settings, tenant_quotas),
            sealer=Sealer.of(settings),
        )  # fmt: skip

    def check_callback_url(self, url: str) -> None:
        """Refuse a callback this app could not sign, or a URL that is not http(s)."""
        if not self.signs_callbacks:
            raise ConfigurationError(
                "a callback_url needs a signing secret, and this app has none: set "
                "App(webhook_secret='whsec_...') or UNDERWAY_WEBHOOK_SECRET (make one with "
                "underway.callbacks.new_secret())"
            )
        parse_url(url)

    def insert(self, jobs: list[NewJob], connection: Any = None) -> list[Job]:
        """Insert `jobs` in one transaction: the store's own, or the caller's `connection`."""
        if not jobs:
            return []
        _refuse_repeated_ids(jobs)
        if connection is not None:
            quotas = self._demands(jobs, in_transaction=True)
            created = self._transactional(connection).enqueue_on(connection, jobs, quotas)
        else:
            quotas = self._demands(jobs)
            try:
                created = self._store().enqueue(jobs, quotas)
            except BaseException as error:
                self._short.failed(quotas, error)
                raise
        self.events.wake_workers()
        self.events.publish_all(created)
        return created

    async def insert_async(self, jobs: list[NewJob], connection: Any = None) -> list[Job]:
        """`insert` for async code: an async `connection` is used as it is; otherwise the
        store call runs on a thread."""
        if connection is None or not jobs:
            return await asyncio.to_thread(self.insert, jobs, connection)
        _refuse_repeated_ids(jobs)
        quotas = self._demands(jobs, in_transaction=True)
        created = await self._transactional(connection).enqueue_on_async(connection, jobs, quotas)
        # Workers of this process learn of them at commit, through the store's notification.
        self.events.publish_all(created)
        return created

    @contextmanager
    def admission(self, tenant: str) -> Iterator[QuotaExceeded | None]:
        """Around a request that will enqueue one job for `tenant` (the HTTP API's): yields
        the refusal it would surely meet (the caller answers it without going on), or None.
        Admitted, its job counts as taken now, and the insert inside this block (this
        context, or a thread it starts) is not checked a second time; if none comes, the
        job is given back."""
        quota = self.quotas.of(tenant)
        if quota is None:
            yield None
            return
        demand = QuotaDemand(tenant, 1, quota.per_second, quota.burst)
        try:
            self._short.check([demand])
        except QuotaExceeded as refusal:
            yield refusal
            return
        admitted = _Admitted(demand)
        token = _ADMITTED.set(admitted)
        try:
            yield None
        finally:
            _ADMITTED.reset(token)
            if not admitted.used:
                self._short.release(demand)

    def _demands(self, jobs: list[NewJob], in_transaction: bool = False) -> list[QuotaDemand]:
        """What `jobs` take of their tenants' quotas; refused here when a bucket surely
        cannot meet them (KnownShort). Jobs `in_transaction` (the caller's) are checked but
        not counted, and their refusals not learnt from: the caller may still roll back."""
        demands = self.quotas.demands(jobs)
        if in_transaction:
            self._short.check(demands, take=False)
            return demands
        admitted = _ADMITTED.get()
        if admitted is not None and not admitted.used and demands == [admitted.demand]:
            admitted.used = True  # checked and counted when the request was admitted
            return demands
        self._short.check(demands)
        return demands

    def _transactional(self, connection: Any) -> TransactionalEnqueue:
        store = self._store()
        if not isinstance(store, TransactionalEnqueue):
            raise ConfigurationError(
                "enqueue(connection=...) writes the job in your own transaction; that needs "
                f"the PostgreSQL store (this app uses {type(store).__name__})"
            )
        return store


@dataclass(slots=True)
class _Admitted:
    """A request's job admitted by `Producer.admission`, and whether its insert came."""

    demand: QuotaDemand
    used: bool = False


_ADMITTED: ContextVar[_Admitted | None] = ContextVar("underway_admitted", default=None)


def _refuse_repeated_ids(jobs: list[NewJob]) -> None:
    """Two jobs of one batch with the same chosen id: the second would exist already."""
    chosen = [job.id for job in jobs if job.id_chosen]
    if len(chosen) != len(set(chosen)):
        repeated = sorted({str(i) for i in chosen if chosen.count(i) > 1})
        raise InvalidArguments(
            f"the id {', '.join(repeated)} is given to more than one job of this batch; "
            "each job needs an id of its own"
        )
