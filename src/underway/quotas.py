"""Per-tenant enqueue quotas, the store-agnostic half: quotas as values, and what one enqueue
call demands of them. The buckets themselves live in the store (table underway_quota_buckets),
so a quota holds across every producer and API process (docs/decisions/0026-tenant-quotas.md).
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from .errors import ConfigurationError, QuotaExceeded
from .settings import Settings
from .stores.messages import NewJob, QuotaDemand


@dataclass(frozen=True, slots=True)
class TenantQuota:
    """A token bucket per tenant: `per_second` jobs on average, up to `burst` at once.

    >>> TenantQuota(per_second=500, burst=2000)
    TenantQuota(per_second=500.0, burst=2000)
    """

    per_second: float
    burst: int

    def __post_init__(self) -> None:
        rate, burst = self.per_second, self.burst
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not math.isfinite(rate):
            raise ConfigurationError(
                f"TenantQuota(per_second=...) must be a finite number of jobs per second, got "
                f"{rate!r}"
            )
        if rate <= 0:
            raise ConfigurationError(
                f"TenantQuota(per_second=...) must be > 0, got {rate!r}; to leave a tenant "
                "unmetered, map it to None: App(tenant_quotas={'name': None})"
            )
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ConfigurationError(
                f"TenantQuota(burst=...) must be a whole number of jobs >= 1, got {burst!r}"
            )
        object.__setattr__(self, "per_second", float(rate))


def default_burst(per_second: float) -> int:
    """The burst of `tenant_enqueue_rate` when `tenant_enqueue_burst` is 0: one second's worth
    of jobs, at least one (a bucket smaller than one job would refuse every enqueue).

    >>> default_burst(2.5), default_burst(0.1)
    (3, 1)
    """
    return max(1, math.ceil(per_second))


@dataclass(frozen=True, slots=True)
class Quotas:
    """Which quota each tenant has: its override, else the default of the settings (None:
    the tenant is not metered)."""

    default: TenantQuota | None = None
    overrides: Mapping[str, TenantQuota | None] = field(default_factory=dict)

    @classmethod
    def build(
        cls, settings: Settings, overrides: Mapping[str, TenantQuota | None] | None = None
    ) -> Quotas:
        """The quotas of an app: `tenant_enqueue_rate`/`_burst` for every tenant, and the
        per-tenant `overrides` of `App(tenant_quotas=...)` over them."""
        rate = settings.tenant_enqueue_rate
        default = None
        if rate > 0:
            burst = settings.tenant_enqueue_burst or default_burst(rate)
            default = TenantQuota(per_second=rate, burst=burst)
        return cls(default, MappingProxyType(_checked(overrides or {})))

    @property
    def active(self) -> bool:
        """Some tenant is metered; when not, enqueue runs no quota statement at all."""
        return self.default is not None or any(q is not None for q in self.overrides.values())

    def of(self, tenant: str) -> TenantQuota | None:
        """The quota `tenant` enqueues under, or None when it is not metered."""
        return self.overrides.get(tenant, self.default)

    def demands(self, jobs: Sequence[NewJob]) -> list[QuotaDemand]:
        """What `jobs`, one enqueue call, take from each metered tenant's bucket: one token a
        job, tenants in sorted order (two batches then lock the buckets in the same order and
        cannot deadlock). Jobs without a tenant are never metered. Raises QuotaExceeded at once
        for a tenant with more jobs in the batch than its burst: no bucket could pass them."""
        if not self.active:
            return []
        counts = Counter(job.tenant for job in jobs if job.tenant is not None)
        demands = []
        for tenant in sorted(counts):
            quota = self.of(tenant)
            if quota is not None:
                demand = QuotaDemand(tenant, counts[tenant], quota.per_second, quota.burst)
                if demand.count > demand.burst:
                    raise demand.refused(tokens=demand.burst)
                demands.append(demand)
        return demands


class KnownShort:
    """An upper bound, kept in this process, on what each tenant's bucket holds, learnt from
    the store's refusals. When a bucket refused it held `tokens`; since then it refilled at
    most `per_second * elapsed` (never past its burst), and every job let through here may
    have taken its token. A demand above the bound would be refused by the store too: it is
    refused here, without a round trip, so a flood over the quota costs the store nothing
    (scenario A09). A call that fails for another reason took nothing, so the bound is
    forgotten rather than left too low.

    >>> now = 10.0
    >>> short = KnownShort(clock=lambda: now)
    >>> demand = QuotaDemand("acme", 1, per_second=2.0, burst=5)
    >>> short.failed([demand], demand.refused(tokens=0.5))
    >>> short.check([demand])
    Traceback (most recent call last):
    ...
    underway.errors.QuotaExceeded: tenant 'acme' is over its enqueue quota (2 jobs/s, burst 5): ...
    >>> now = 10.25  # half a token later: one job's worth, which the next call may take
    >>> short.check([demand])
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._bound: dict[str, tuple[float, float]] = {}  # tenant -> (since, tokens at most)

    def check(self, demands: Sequence[QuotaDemand], take: bool = True) -> None:
        """Raise QuotaExceeded for the first demand its bucket surely cannot meet yet; else,
        with `take`, count the demands as taken, for the next call's bound. An enqueue in
        the caller's transaction passes `take=False`: a rollback would give its tokens back
        to the bucket, not to the bound, which would then stay too low."""
        if not self._bound:
            return
        now = self._clock()
        with self._lock:
            after: dict[str, tuple[float, float]] = {}
            for demand in demands:
                known = self._bound.get(demand.tenant)
                if known is None:
                    continue
                since, tokens = known
                most = min(float(demand.burst), tokens + demand.per_second * (now - since))
                if most < demand.count:
                    raise demand.refused(most)
                after[demand.tenant] = (now, most - demand.count)
            if take:
                self._bound.update(after)

    def release(self, demand: QuotaDemand) -> None:
        """`demand` passed `check` but its call never reached the store: give its tokens back
        to the bound (a bound too high only sends a call to the store that could refuse)."""
        with self._lock:
            known = self._bound.get(demand.tenant)
            if known is not None:
                self._bound[demand.tenant] = (known[0], known[1] + demand.count)

    def failed(self, demands: Sequence[QuotaDemand], error: BaseException) -> None:
        """The call that `check` let through (and counted) failed: it took nothing (its
        transaction rolled back), so each tenant's bound may now be too low and is forgotten;
        but a tenant the store refused gets its bound from what the store saw. Not for an
        enqueue in the caller's transaction: the store saw that transaction's own takes,
        which a rollback gives back.

        The store read that bucket just before its answer came back, so the bound is dated
        now: from the call's start instead, a call that waited long for the bucket's lock
        would credit the whole wait as refill, and a crowd of such calls would keep letting
        each other through to be refused by the store. Dated now, it may miss the refill
        while the answer travelled (a few thousandths of a token at most)."""
        now = self._clock()
        with self._lock:
            for demand in demands:
                self._bound.pop(demand.tenant, None)
            if isinstance(error, QuotaExceeded) and error.tokens is not None:
                self._bound[error.tenant] = (now, error.tokens)


def _checked(overrides: Mapping[str, TenantQuota | None]) -> dict[str, TenantQuota | None]:
    if not isinstance(overrides, Mapping):
        raise ConfigurationError(
            f"tenant_quotas must map tenant names to underway.TenantQuota (or None), got "
            f"{type(overrides).__name__}"
        )
    for tenant, quota in overrides.items():
        if not isinstance(tenant, str) or not tenant:
            raise ConfigurationError(f"tenant_quotas keys must be tenant names, got {tenant!r}")
        if quota is not None and not isinstance(quota, TenantQuota):
            raise ConfigurationError(
                f"tenant_quotas[{tenant!r}] must be an underway.TenantQuota(per_second=..., "
                f"burst=...) or None (not metered), got {quota!r}"
            )
    return dict(overrides)
