"""What both SQL stores share about metrics: the job and delivery counters that the triggers of
migration 0006 keep as things happen, and the live depth of the queues
(docs/decisions/0014-metrics.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..model import Status
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

    def prune(self, older_than: float, statuses: Sequence[Status], batch: int = 1000) -> int:
        deleted = super().prune(older_than, statuses, batch)
        if "fold_counters" in self._q:
            # PostgreSQL counts per connection: the rows of connections that are gone fold
            # into one, so the counters stay as few as the live connections make them.
            with self._writing() as conn:
                self._run(conn, self._q["fold_counters"])
                self._run(conn, self._q["fold_delivery_counters"])
        return deleted
