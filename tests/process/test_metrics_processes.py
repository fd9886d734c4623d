"""Metrics with real worker processes on every store: the counters one process serves count the
work of every process, and pruning never takes a count back. What is asserted is what a
Prometheus server scrapes: the text of `underway.metrics.render`, parsed by prometheus-client's
own parser."""

from __future__ import annotations

from datetime import timedelta

import pytest
from process_harness import SETTINGS, Harness, stop
from prometheus_client.parser import text_string_to_metric_families

import underway
from underway import metrics

pytestmark = pytest.mark.process

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(app: underway.App) -> Samples:
    """Every sample of one scrape, by name and sorted labels."""
    out = {}
    for family in text_string_to_metric_families(metrics.render(app).decode()):
        for sample in family.samples:
            out[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return out


def of(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_two_worker_processes_are_counted_once_each_and_pruning_takes_nothing_back(
    harness: Harness,
) -> None:
    h = harness
    record = h.task("record")
    workers = [h.start_worker(concurrency=5) for _ in range(2)]
    # both are waiting for work before any arrives, so both take some
    h.wait_until(lambda: len(h.app.workers()) == 2, "both workers to announce themselves")
    with underway.App(h.url, **SETTINGS) as other:  # a task no worker knows: it fails

        @other.task(name="only_in_another_app")
        def only_in_another_app(n: int) -> int:
            return n

        ghosts = [only_in_another_app.enqueue(n) for n in range(3)]
    later = [record.options(delay=timedelta(hours=1)).enqueue(n) for n in range(2)]
    for job in later:
        h.app.cancel(job.id)
    jobs = record.enqueue_many([(n, 0.005) for n in range(300)])
    h.wait_until(
        lambda: (
            h.app.stats().by_status["completed"] == 300 and h.app.stats().by_status["failed"] == 3
        ),
        "every job to finish",
        timeout=120,
        interval=0.2,
    )
    # each worker process did some of the work (else this would test one process)
    assert len({r.pid for r in h.records()}) == 2, h.logs()

    samples = scrape(h.app)
    task = {"task": "record", "queue": "default"}
    assert of(samples, "underway_jobs_enqueued_total", **task) == 302
    assert of(samples, "underway_jobs_completed_total", **task) == 300
    assert of(samples, "underway_jobs_cancelled_total", **task) == 2
    ghost = {"task": "only_in_another_app", "queue": "default"}
    assert of(samples, "underway_jobs_failed_total", **ghost) == len(ghosts)
    assert of(samples, "underway_job_duration_seconds_count", **task) == 300
    assert of(samples, "underway_job_duration_seconds_bucket", **task, le="+Inf") == 300
    assert of(samples, "underway_job_pickup_seconds_count", **task) == 300
    assert of(samples, "underway_workers_alive") == 2
    assert of(samples, "underway_queue_depth", queue="default", status="pending") == 0
    assert ("underway_callback_attempts_total", ()) in samples  # none had a callback_url

    # another process serves the same numbers
    with underway.App(h.url, **SETTINGS) as elsewhere:
        assert scrape(elsewhere) == samples

    stop(h, *workers)
    assert h.app.prune(timedelta(0), include_failed=True) == 305
    assert h.app.stats().total == 0
    after = scrape(h.app)
    for key, value in samples.items():
        if key[0].endswith(("_total", "_count", "_sum", "_bucket")):
            assert after[key] == value, key
    assert of(after, "underway_workers_alive") == 0
    assert len(jobs) == 300
