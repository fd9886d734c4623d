"""Fair claiming's turns, the same on every store (docs/decisions/0027-fair-claiming.md).

A claim offers each group, a queue and a tenant with work, its first jobs; it then takes every
tenant's best job (by priority, then age), group after group, then every tenant's second best,
and so on, so a tenant with a deep backlog gets one turn like any other. The groups are read in
(queue, tenant) order from just after the group that had the last turn of this worker's
previous claim, so successive claims go round all the groups even when a claim takes fewer
jobs than there are tenants.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from ..model import Job

#: a cursor before every group: queue names are never empty
FIRST: Final = ("", "")
#: most groups one claim considers; the next claim goes on from where it stopped
GROUPS_PER_CLAIM: Final = 64


@dataclass(frozen=True, slots=True)
class Offer:
    """A job offered to a claim, as far as taking turns needs it."""

    id: str
    queue: str
    tenant: str  # '' for none
    priority: int
    due: float  # run_at, in seconds since the epoch

    @classmethod
    def of(cls, job: Job) -> Offer:
        return cls(str(job.id), job.queue, job.tenant or "", job.priority, job.run_at.timestamp())

    @property
    def group(self) -> tuple[str, str]:
        """The group it takes its turns in: its queue and tenant."""
        return self.queue, self.tenant


def pick_order(offers: Iterable[Offer]) -> list[Offer]:
    """The order a fair claim takes `offers` in: by turn (an offer's rank among its tenant's,
    by priority and then age), then, within a turn, by group: round the groups in order.

    >>> a1, a2 = Offer("1", "q", "a", 0, 1.0), Offer("2", "q", "a", 0, 2.0)
    >>> [o.id for o in pick_order([a1, a2, Offer("3", "q", "b", 0, 9.0)])]
    ['1', '3', '2']
    """
    by_tenant: dict[str, list[Offer]] = {}
    for offer in offers:
        by_tenant.setdefault(offer.tenant, []).append(offer)
    ranked: list[tuple[int, Offer]] = []
    for own in by_tenant.values():
        own.sort(key=_claim_order)
        ranked += enumerate(own)
    ranked.sort(key=lambda entry: (entry[0], entry[1].group))
    return [offer for _, offer in ranked]


def _claim_order(offer: Offer) -> tuple[int, float, str]:
    return -offer.priority, offer.due, offer.id


class Turns:
    """Where this worker's next claim starts among the groups. Claims may run on several
    threads; each reads and moves the cursor under a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._after = FIRST

    @property
    def after(self) -> tuple[str, str]:
        with self._lock:
            return self._after

    def took(self, jobs: Sequence[Job]) -> None:
        """A claim took `jobs`: the next starts after the group of the last one it took, or
        from the first when it took none."""
        last = pick_order(Offer.of(job) for job in jobs)[-1:]
        self.at(last[0].group if last else None)

    def at(self, group: tuple[str, str] | None) -> None:
        """A claim's last turn went to `group` (None: it took nothing): the next starts
        after it, or from the first."""
        with self._lock:
            self._after = group if group is not None else FIRST
