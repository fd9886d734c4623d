"""What both SQL stores share about metrics: the job and delivery counters that the triggers of
migration 0006 keep as things happen, and the live depth of the queues
(docs/decisions/0014-metrics.md); and the finishes per minute that migration 0007's triggers
keep for the overview's chart (docs/decisions/0016-big-store.md)."""

from __future__ import annotations

import functools
from abc import abstractmethod
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from ..model import HISTORY_MINUTES, MinuteStats, Status
from .messages import DeliveryCounts, Histogram, TaskCounters
from .sql import C, SqlStore


def build_counters(row: Sequence[Any]) -> TaskCounters:
    """TaskCounters from a `counters` row: task, queue, the six counts, then each histogram's
    count, sum and buckets."""
    task, queue, *values = row
    enqueued, completed, failed, retried, cancelled, rescued = (int(v) for v in values[:6])
    rest = values[6:]
    size = len(rest) // 2

    def histogram(part: Sequence[Any]) -> Histogram:
        # The store sums whole microseconds, so folding and re-summing rows never drifts.
        return Histogram(int(part[0]), int(part[1]) / 1e6, tuple(int(v) for v in part[2:]))

    return TaskCounters(
        task, queue, enqueued=enqueued, completed=completed, failed=failed, retried=retried,
        cancelled=cancelled, rescued=rescued, duration=histogram(rest[:size]),
        pickup=histogram(rest[size:]),
    )  # fmt: skip


def build_history(rows: Sequence[Sequence[Any]], first: int, minutes: int) -> list[MinuteStats]:
    """One MinuteStats per minute from `first` (Unix seconds of its start) on, zeros where no
    (minute, completed, failed, cancelled) row says otherwise."""
    found = {int(row[0]): row for row in rows}
    out = []
    for minute in range(first, first + 60 * minutes, 60):
        _, completed, failed, cancelled = found.get(minute, (minute, 0, 0, 0))
        at = datetime.fromtimestamp(minute, UTC)
        out.append(MinuteStats(at, int(completed), int(failed), int(cancelled)))
    return out


class MeteringVerbs(SqlStore[C]):
    """The metrics reads of the `Store` protocol, and the fold of PostgreSQL's per-connection
    counter rows after each prune."""

    def counters(self) -> list[TaskCounters]:
        with self._reading() as conn:
            rows = self._run(conn, self._q["counters"]).fetchall()
        return [build_counters(row) for row in rows]

    def delivery_counts(self) -> DeliveryCounts:
        with self._reading() as conn:
            row = self._run(conn, self._q["delivery_counts"]).fetchall()[0]
        delivered, failed, attempts, pending = (int(value) for value in row)
        return DeliveryCounts(delivered, failed, attempts, pending)

    def queue_depth(self) -> dict[str, dict[str, int]]:
        depth: dict[str, dict[str, int]] = {}
        with self._reading() as conn:
            for queue, status, count in self._run(conn, self._q["queue_depth"]).fetchall():
                depth.setdefault(queue, {})[status] = int(count)
        return depth

    @abstractmethod
    def now(self) -> datetime:
        """The store's clock (the backend's)."""

    def stats_history(self, minutes: int, tenant: str | None = None) -> list[MinuteStats]:
        minutes = max(1, min(minutes, HISTORY_MINUTES))
        first = int(self.now().timestamp()) // 60 * 60 - 60 * (minutes - 1)
        sql = self._history[tenant is not None]
        params = {"since": first} if tenant is None else {"since": first, "tenant": tenant}
        with self._reading() as conn:
            rows = self._run(conn, sql, params).fetchall()
        return build_history(rows, first, minutes)

    @functools.cached_property
    def _history(self) -> dict[bool, str]:
        scopes = {False: "", True: self._q["filter_tenant"]}
        return {
            scoped: self._render("stats_history", tenant=text) for scoped, text in scopes.items()
        }

    def prune(self, older_than: float, statuses: Sequence[Status], batch: int = 1000) -> int:
        deleted = super().prune(older_than, statuses, batch)
        with self._writing() as conn:
            self._run(
                conn, self._q["prune_minutes"], {"age": 60 * HISTORY_MINUTES, **self._stamp()}
            )
            if "fold_counters" in self._q:
                # PostgreSQL counts per connection: the rows of connections that are gone
                # fold into one, so the counters and tallies stay as few as the live
                # connections make them.
                for name in ("fold_counters", "fold_delivery_counters", "fold_tallies",
                             "fold_minutes"):  # fmt: skip
                    self._run(conn, self._q[name])
        return deleted
