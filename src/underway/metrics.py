"""Prometheus metrics, read from the store at each scrape (docs/decisions/0014-metrics.md).

The store is the one source of truth: its triggers count every job event of every process as
it happens, so any process may serve `/metrics` and all of them show the same numbers, and
pruning old jobs never takes a count back. A scrape reads a few small tables and the unfinished
jobs; it never walks the finished ones.

>>> body = underway.metrics.render(app)       # bytes in the Prometheus text format
>>> underway.metrics.CONTENT_TYPE
'text/plain; version=0.0.4; charset=utf-8'

Needs prometheus-client: pip install 'underway[web]'.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from .model import Status
from .stores import Store
from .stores.messages import HISTOGRAM_BOUNDS, DeliveryCounts, Histogram, TaskCounters

#: the Content-Type header of `render`'s body
CONTENT_TYPE: str = CONTENT_TYPE_LATEST

#: (metric name without `_total`, TaskCounters field, help), labelled by task and queue
COUNTERS: tuple[tuple[str, str, str], ...] = (
    ("underway_jobs_enqueued", "enqueued", "Jobs enqueued."),
    ("underway_jobs_completed", "completed", "Jobs that completed."),
    ("underway_jobs_failed", "failed", "Jobs that failed for good (the dead letters)."),
    ("underway_jobs_retried", "retried",
     "Jobs set to run again: after a failed attempt (a retry wait) or by a person's retry."),
    ("underway_jobs_cancelled", "cancelled", "Jobs cancelled."),
    ("underway_jobs_rescued", "rescued",
     "Attempts taken back after their worker stopped heartbeating (crashed or killed)."),
)  # fmt: skip

#: (metric name, TaskCounters field, help), labelled by task and queue
HISTOGRAMS: tuple[tuple[str, str, str], ...] = (
    ("underway_job_duration_seconds", "duration",
     "How long attempts ran, start to end (attempts rescued or handed back are left out)."),
    ("underway_job_pickup_seconds", "pickup",
     "How long attempts waited to start after they were due (started_at - run_at)."),
)  # fmt: skip

TASK_LABELS = ("task", "queue")


class Observed(Protocol):
    """What the metrics read from an app (an `underway.App`)."""

    @property
    def store(self) -> Store: ...


class StoreCollector(Collector):
    """A prometheus-client collector that reads `app`'s store at every scrape. Register it on a
    registry of your own: `registry.register(StoreCollector(app))`."""

    def __init__(self, app: Observed) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        store = self.app.store
        counters = store.counters()
        yield from counter_families(counters)
        yield from histogram_families(counters)
        yield depth_family(store.queue_depth())
        alive = GaugeMetricFamily(
            "underway_workers_alive", "Worker processes heartbeating now, on every machine."
        )
        alive.add_metric([], float(len(store.workers())))
        yield alive
        yield from delivery_families(store.delivery_counts())


def counter_families(counters: Sequence[TaskCounters]) -> Iterator[Metric]:
    """One counter family per event, a sample per task and queue."""
    for name, field, help_text in COUNTERS:
        family = CounterMetricFamily(name, help_text, labels=TASK_LABELS)
        for c in counters:
            family.add_metric([c.task, c.queue], float(getattr(c, field)))
        yield family


def histogram_families(counters: Sequence[TaskCounters]) -> Iterator[Metric]:
    for name, field, help_text in HISTOGRAMS:
        family = HistogramMetricFamily(name, help_text, labels=TASK_LABELS)
        for c in counters:
            histogram: Histogram = getattr(c, field)
            family.add_metric([c.task, c.queue], _buckets(histogram), histogram.sum)
        yield family


def _buckets(histogram: Histogram) -> list[tuple[str, float]]:
    bounds = [(_le(bound), float(count)) for bound, count in
              zip(HISTOGRAM_BOUNDS, histogram.buckets, strict=True)]  # fmt: skip
    return [*bounds, ("+Inf", float(histogram.count))]


def _le(bound: float) -> str:
    """A bucket bound as Prometheus clients print it (`1.0`, `0.005`)."""
    return repr(float(bound))


def depth_family(depth: dict[str, dict[str, int]]) -> Metric:
    """Unfinished jobs per queue and status; a queue with no such jobs shows no sample."""
    family = GaugeMetricFamily(
        "underway_queue_depth",
        "Unfinished jobs per queue: pending (due or waiting for their time) and running.",
        labels=("queue", "status"),
    )
    for queue in sorted(depth):
        for status in (Status.PENDING, Status.RUNNING):
            family.add_metric([queue, status.value], float(depth[queue].get(status.value, 0)))
    return family


def delivery_families(counts: DeliveryCounts) -> Iterator[Metric]:
    """Completion callbacks: deliveries by how they ended, attempts, and the backlog."""
    ended = CounterMetricFamily(
        "underway_callback_deliveries",
        "Callback deliveries that ended: delivered, or failed for good (retries spent).",
        labels=("status",),
    )
    ended.add_metric(["delivered"], float(counts.delivered))
    ended.add_metric(["failed"], float(counts.failed))
    yield ended
    attempts = CounterMetricFamily(
        "underway_callback_attempts", "Callback POSTs made, successful or not."
    )
    attempts.add_metric([], float(counts.attempts))
    yield attempts
    pending = GaugeMetricFamily(
        "underway_callback_deliveries_pending", "Callback deliveries waiting to be sent (again)."
    )
    pending.add_metric([], float(counts.pending))
    yield pending


def registry(app: Observed) -> CollectorRegistry:
    """A fresh registry holding only `app`'s metrics (never the process-global one, whose
    per-process numbers would disagree between processes)."""
    fresh = CollectorRegistry(auto_describe=False)
    fresh.register(StoreCollector(app))
    return fresh


def render(app: Observed) -> bytes:
    """`app`'s metrics in the Prometheus text format (serve with `CONTENT_TYPE`). Raises
    `underway.StoreError` when the store cannot be read."""
    return generate_latest(registry(app))
