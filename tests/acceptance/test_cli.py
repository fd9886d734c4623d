"""The `underway` command line, run as a user would: a subprocess (`python -m underway`), a
small app module written into a temporary directory, and a real SQLite file next to it."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cli_support import CliApp, assert_clean_error, ids_in, json_lines, load_cli_app, table_rows

import underway

APP_MODULE = textwrap.dedent(
    '''
    """A small app for the CLI tests: its database sits next to this file."""
    import time
    from pathlib import Path

    import underway

    app = underway.App(
        "sqlite:///" + str(Path(__file__).with_name("jobs.db")),
        poll_seconds=0.05,
        heartbeat_seconds=0.2,
        shutdown_grace_seconds=0.2,
    )


    @app.task(name="add")
    def add(a: int, b: int) -> int:
        return a + b


    @app.task(name="boom", max_attempts=1)
    def boom(n: int = 0) -> None:
        raise RuntimeError(f"kaput {n}")


    @app.task(name="mail.send", queue="mail", priority=3)
    def send(ctx: underway.Context, to: str) -> str:
        ctx.report_progress(0.5, f"writing to {to}")
        return f"sent to {to}"


    @app.task(name="patient")
    def patient(ctx: underway.Context, seconds: float) -> None:
        ctx.wait_cancelled(seconds)  # returns as soon as the worker stops it


    @app.task(name="stubborn")
    def stubborn(ctx: underway.Context, seconds: float) -> None:
        ctx.report_status("ignoring cancellation")
        time.sleep(seconds)  # never looks at ctx.cancelled: its thread cannot be stopped


    not_an_app = 42
    '''
)


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[CliApp]:
    cli_app = load_cli_app(tmp_path, "jobsapp", APP_MODULE)
    yield cli_app
    cli_app.app.close()


# --- basics ---------------------------------------------------------------------------------


def test_help_lists_the_commands(cli: CliApp) -> None:
    result = cli.run("--help")
    assert result.returncode == 0
    commands = ("worker", "scheduler", "jobs", "queues", "schedules", "prune", "migrate", "demo")
    for command in commands:
        assert command in result.stdout


def test_migrate_prints_the_schema_version(cli: CliApp) -> None:
    result = cli.run("migrate", "jobsapp:app")
    assert result.returncode == 0, result.stderr
    assert cli.db.exists()
    assert result.stdout.startswith(f"schema version {cli.app.migrate()} (sqlite:///")


def test_bad_app_paths_give_a_clean_usage_error(cli: CliApp) -> None:
    assert_clean_error(cli.run("jobs", "nosuchmodule:app", "list"), 2, "no such module")
    assert_clean_error(cli.run("jobs", "jobsapp:missing", "list"), 2, "no attribute 'missing'")
    assert_clean_error(
        cli.run("jobs", "jobsapp:not_an_app", "list"), 2, "is an int, not an underway.App"
    )
    assert_clean_error(cli.run("worker", "jobsapp", "--burst"), 2, "module:attribute")
    assert_clean_error(cli.run("migrate", "jobsapp:add"), 2, "not an underway.App")
    assert_clean_error(cli.run("migrate", "./jobsapp.py:app"), 2, "for example jobsapp:app")


def test_library_errors_are_one_line_and_exit_1(cli: CliApp) -> None:
    cli.app.migrate()
    assert_clean_error(cli.run("jobs", "jobsapp:app", "show", "not-a-uuid"), 1, "not a job id")
    missing = "01900000-0000-7000-8000-000000000000"
    assert_clean_error(cli.run("jobs", "jobsapp:app", "show", missing), 1, "no job with id")


def test_a_file_that_is_not_a_database_is_a_clean_error(cli: CliApp) -> None:
    cli.db.write_bytes(b"this is not a SQLite database, just some notes" * 100)
    result = cli.run("migrate", "jobsapp:app")
    assert_clean_error(result, 1, "Error:", str(cli.db))


# --- listing --------------------------------------------------------------------------------


def test_list_shows_the_enqueued_jobs(cli: CliApp) -> None:
    m = cli.module
    add1 = m.add.enqueue(1, 2)
    add2 = m.add.enqueue(a=2, b=3)
    mail = m.send.enqueue(to="ada@example.com")
    later = m.boom.options(delay=timedelta(hours=1)).enqueue(n=1)

    result = cli.run("jobs", "jobsapp:app", "list")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert ids_in(out) == {str(j.id) for j in (add1, add2, mail, later)}
    for word in ("id", "task", "status", "attempt", "queue", "priority", "created", "run at"):
        assert word in out.splitlines()[0]
    assert "mail.send" in out and "add" in out
    assert "pending (scheduled)" in out
    assert "in 59 min" in out or "in 60 min" in out

    mail_only = cli.run("jobs", "jobsapp:app", "list", "--queue", "mail").stdout
    assert ids_in(mail_only) == {str(mail.id)}
    scheduled = cli.run("jobs", "jobsapp:app", "list", "--view", "scheduled").stdout
    assert ids_in(scheduled) == {str(later.id)}
    by_task = cli.run("jobs", "jobsapp:app", "list", "--task", "add").stdout
    assert ids_in(by_task) == {str(add1.id), str(add2.id)}
    none = cli.run("jobs", "jobsapp:app", "list", "--status", "failed")
    assert none.returncode == 0 and "no jobs match" in none.stdout


def test_list_json_and_pages(cli: CliApp) -> None:
    jobs = [cli.module.add.enqueue(i, i) for i in range(5)]
    result = cli.run("jobs", "jobsapp:app", "list", "--json")
    assert result.returncode == 0, result.stderr
    rows = json_lines(result.stdout)
    assert [r["id"] for r in rows] == [str(j.id) for j in reversed(jobs)]  # newest first
    assert rows[0]["status"] == "pending" and rows[0]["args"] == {"a": 4, "b": 4}

    first = cli.run("jobs", "jobsapp:app", "list", "--limit", "3")
    assert ids_in(first.stdout) == {str(j.id) for j in jobs[2:]}
    cursor = first.stdout.split("next cursor ")[1].split()[0]
    second = cli.run("jobs", "jobsapp:app", "list", "--limit", "3", "--cursor", cursor)
    assert "next cursor" not in second.stdout
    assert ids_in(second.stdout) == {str(j.id) for j in jobs[:2]}


# --- the worker -----------------------------------------------------------------------------


def test_worker_burst_drains_the_queue(cli: CliApp) -> None:
    m = cli.module
    adds = [m.add.enqueue(i, 10) for i in range(3)]
    mail = m.send.enqueue(to="ada@example.com")

    result = cli.run("worker", "jobsapp:app", "--burst", "--concurrency", "2")
    assert result.returncode == 0, result.stderr
    # logging is configured: time, level, logger, message on stderr
    assert "INFO" in result.stderr and "underway.worker" in result.stderr
    assert "started" in result.stderr and "stopped after 4 jobs" in result.stderr

    for i, job in enumerate(adds):
        done = cli.app.get_job(job.id)
        assert done is not None and done.status == "completed" and done.result == i + 10
    listed = cli.run("jobs", "jobsapp:app", "list", "--status", "completed").stdout
    assert ids_in(listed) == {str(j.id) for j in (*adds, mail)}

    shown = cli.run("jobs", "jobsapp:app", "show", str(mail.id))
    assert shown.returncode == 0, shown.stderr
    for text in ("completed", "sent to ada@example.com", "writing to ada@example.com", "50%"):
        assert text in shown.stdout


def test_worker_serves_only_the_queues_it_is_given(cli: CliApp) -> None:
    add = cli.module.add.enqueue(1, 1)
    mail = cli.module.send.enqueue(to="bob@example.com")
    result = cli.run("worker", "jobsapp:app", "--burst", "--queues", "mail, other")
    assert result.returncode == 0, result.stderr
    assert (job := cli.app.get_job(mail.id)) is not None and job.status == "completed"
    assert (job := cli.app.get_job(add.id)) is not None and job.status == "pending"


def test_worker_log_level_option(cli: CliApp) -> None:
    cli.module.add.enqueue(1, 1)
    quiet = cli.run("worker", "jobsapp:app", "--burst", "--log-level", "warning")
    assert quiet.returncode == 0 and "INFO" not in quiet.stderr
    cli.module.add.enqueue(2, 2)
    verbose = cli.run("worker", "jobsapp:app", "--burst", "-v")
    assert verbose.returncode == 0 and "INFO" in verbose.stderr


def test_worker_exits_even_when_a_sync_task_ignores_cancellation(
    cli: CliApp, wait_for: Callable[..., Any]
) -> None:
    job = cli.module.stubborn.enqueue(seconds=120)
    proc = cli.popen("worker", "jobsapp:app")
    try:

        def running() -> bool:
            assert proc.poll() is None, proc.communicate()
            current = cli.app.get_job(job.id)
            return current is not None and current.status == "running"

        wait_for(running, timeout=30, what="the worker to start the job")
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)  # not the task's 120 s
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    assert "still running after the worker stopped" in stderr


def test_sigterm_hands_running_jobs_back(cli: CliApp, wait_for: Callable[..., Any]) -> None:
    """SIGTERM: the running job gets the grace period, then goes back to `pending` with its
    attempt refunded, at once (not after its lease expires)."""
    job = cli.module.patient.enqueue(seconds=120)
    proc = cli.popen("worker", "jobsapp:app")
    try:

        def running() -> bool:
            assert proc.poll() is None, proc.communicate()
            current = cli.app.get_job(job.id)
            return current is not None and current.status == "running"

        wait_for(running, timeout=30, what="the worker to start the job")
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    assert "handed back" in stderr
    assert "still running after the worker stopped" not in stderr
    handed_back = cli.app.get_job(job.id)
    assert handed_back is not None
    assert (handed_back.status, handed_back.attempt) == ("pending", 0), stderr


# --- show, cancel, retry, stats -------------------------------------------------------------


def test_show_a_failed_job_with_its_error_and_traceback(cli: CliApp) -> None:
    job = cli.module.boom.enqueue(n=7)
    assert cli.run("worker", "jobsapp:app", "--burst").returncode == 0

    shown = cli.run("jobs", "jobsapp:app", "show", str(job.id))
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    for text in (str(job.id), "failed", "boom", "RuntimeError: kaput 7", "1 of 1", "traceback:"):
        assert text in out
    assert "Traceback (most recent call last)" in out  # the task's, stored with the job
    assert '"n": 7' in out

    data = json.loads(cli.run("jobs", "jobsapp:app", "show", str(job.id), "--json").stdout)
    assert data["status"] == "failed" and data["attempt"] == 1
    assert isinstance(data["error"], dict)
    assert data["error"]["type"] == "RuntimeError"
    assert "kaput 7" in data["error"]["traceback"]


def test_cancel_then_retry(cli: CliApp) -> None:
    job = cli.module.add.enqueue(1, 2)
    cancelled = cli.run("jobs", "jobsapp:app", "cancel", str(job.id))
    assert cancelled.returncode == 0, cancelled.stderr
    assert f"{job.id} cancelled" in cancelled.stdout
    assert (current := cli.app.get_job(job.id)) is not None and current.status == "cancelled"

    retried = cli.run("jobs", "jobsapp:app", "retry", str(job.id))
    assert retried.returncode == 0, retried.stderr
    assert f"{job.id} pending again" in retried.stdout
    assert (current := cli.app.get_job(job.id)) is not None and current.status == "pending"

    assert cli.run("worker", "jobsapp:app", "--burst").returncode == 0
    refused = cli.run("jobs", "jobsapp:app", "retry", str(job.id))
    assert_clean_error(refused, 1, "only failed or cancelled jobs can be retried")
    refused = cli.run("jobs", "jobsapp:app", "cancel", str(job.id))
    assert_clean_error(refused, 1, "already completed")


def test_cancel_several_reports_each_and_fails_if_one_fails(cli: CliApp) -> None:
    a, b = cli.module.add.enqueue(1, 1), cli.module.add.enqueue(2, 2)
    result = cli.run("jobs", "jobsapp:app", "cancel", str(a.id), "bogus", str(b.id))
    assert_clean_error(result, 1, "'bogus' is not a job id")
    assert f"{a.id} cancelled" in result.stdout and f"{b.id} cancelled" in result.stdout


def test_retry_all_failed_jobs(cli: CliApp) -> None:
    failing = [cli.module.boom.enqueue(n=i) for i in range(3)]
    elsewhere = cli.module.boom.options(queue="other").enqueue(n=9)
    assert cli.run("worker", "jobsapp:app", "--burst").returncode == 0
    assert cli.app.stats().by_status["failed"] == 4

    result = cli.run("jobs", "jobsapp:app", "retry", "--all-failed", "--queue", "default")
    assert result.returncode == 0, result.stderr
    assert "retried 3 of 3 failed jobs" in result.stdout
    for job in failing:
        assert (current := cli.app.get_job(job.id)) is not None and current.status == "pending"
    assert (current := cli.app.get_job(elsewhere.id)) is not None and current.status == "failed"

    everything = cli.run("jobs", "jobsapp:app", "retry", "--all-failed")
    assert "retried 1 of 1 failed jobs" in everything.stdout
    nothing = cli.run("jobs", "jobsapp:app", "retry", "--all-failed", "--task", "boom")
    assert nothing.returncode == 0 and "no failed jobs" in nothing.stdout
    assert_clean_error(cli.run("jobs", "jobsapp:app", "retry"), 2, "--all-failed")


def test_stats(cli: CliApp) -> None:
    m = cli.module
    m.add.enqueue(1, 1)
    m.add.enqueue(2, 2)
    m.boom.enqueue()
    assert cli.run("worker", "jobsapp:app", "--burst").returncode == 0
    m.send.enqueue(to="eve@example.com")

    result = cli.run("jobs", "jobsapp:app", "stats")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for text in ("jobs by status", "per task", "per queue", "add", "boom", "mail.send", "mail"):
        assert text in out
    add_row = next(line for line in out.splitlines() if " add " in line)
    assert add_row.split("│")[4].strip() == "2"  # task, pending, running, completed
    runs = table_rows(out.split("runs per task")[1])
    assert runs["add"][:4] == ["ok", "2", "0", "0"]  # state, runs, failures, failing streak
    assert runs["boom"][:4] == ["failing", "1", "1", "1"]
    assert runs["boom"][5] == "failed"  # last status

    data = json.loads(cli.run("jobs", "jobsapp:app", "stats", "--json").stdout)
    assert data["by_status"] == {
        "pending": 1,
        "running": 0,
        "completed": 2,
        "failed": 1,
        "cancelled": 0,
    }
    assert data["total"] == 4
    assert data["by_queue"]["mail"]["pending"] == 1


def test_stats_per_tenant_and_for_one_tenant(cli: CliApp) -> None:
    m = cli.module
    m.add.options(tenant="acme").enqueue(1, 1)
    m.add.options(tenant="acme").enqueue(2, 2)
    m.add.options(tenant="globex").enqueue(3, 3)
    m.add.enqueue(4, 4)

    out = cli.run("jobs", "jobsapp:app", "stats").stdout
    tenants = table_rows(out.split("per tenant")[1].split("runs per")[0])
    assert tenants["acme"][0] == "2" and tenants["globex"][0] == "1"  # pending

    scoped = cli.run("jobs", "jobsapp:app", "stats", "--tenant", "acme", "--json")
    assert scoped.returncode == 0, scoped.stderr
    data = json.loads(scoped.stdout)
    assert (data["tenant"], data["total"], data["by_status"]["pending"]) == ("acme", 2, 2)
    assert list(data["by_tenant"]) == ["acme"]
    assert "per tenant" not in cli.run("jobs", "jobsapp:app", "stats", "--tenant", "acme").stdout


# --- queues ---------------------------------------------------------------------------------


QUEUE_COLUMNS = ["paused", "limit", "pending", "running", "completed", "failed", "cancelled"]


def queue_table(cli: CliApp) -> dict[str, dict[str, str]]:
    result = cli.run("queues", "jobsapp:app", "list")
    assert result.returncode == 0, result.stderr
    header = next(line for line in result.stdout.splitlines() if "┃" in line and "queue" in line)
    for column in ("queue", *QUEUE_COLUMNS, "total"):
        assert column in header
    return {
        name: dict(zip([*QUEUE_COLUMNS, "total"], cells, strict=True))
        for name, cells in table_rows(result.stdout).items()
    }


def test_queues_list_shows_controls_and_counts(cli: CliApp) -> None:
    empty = cli.run("queues", "jobsapp:app", "list")
    assert empty.returncode == 0 and "no queues yet" in empty.stdout

    m = cli.module
    m.add.enqueue(1, 1)
    m.add.enqueue(2, 2)
    m.boom.enqueue()
    m.send.enqueue(to="ada@example.com")
    assert cli.run("worker", "jobsapp:app", "--burst").returncode == 0
    m.add.enqueue(3, 3)
    cli.app.set_queue_concurrency("mail", 4)
    cli.app.pause_queue("reports")  # a control on a queue without jobs

    queues = queue_table(cli)
    assert list(queues) == ["default", "mail", "reports"]
    assert queues["default"] == {
        "paused": "no",
        "limit": "-",
        "pending": "1",
        "running": "0",
        "completed": "2",
        "failed": "1",
        "cancelled": "0",
        "total": "4",
    }
    assert (queues["mail"]["limit"], queues["mail"]["completed"]) == ("4", "1")
    assert (queues["reports"]["paused"], queues["reports"]["total"]) == ("yes", "0")

    data = json_lines(cli.run("queues", "jobsapp:app", "list", "--json").stdout)
    assert [row["name"] for row in data] == ["default", "mail", "reports"]
    assert data[1] == {
        "name": "mail",
        "paused": False,
        "concurrency": 4,
        "counts": {"pending": 0, "running": 0, "completed": 1, "failed": 0, "cancelled": 0},
    }
    assert data[2]["paused"] is True


def test_a_paused_queue_waits_until_it_is_resumed(cli: CliApp) -> None:
    mail = cli.module.send.enqueue(to="bob@example.com")
    add = cli.module.add.enqueue(1, 2)

    paused = cli.run("queues", "jobsapp:app", "pause", "mail")
    assert paused.returncode == 0, paused.stderr
    assert "queue mail paused" in paused.stdout and paused.stderr == ""
    assert queue_table(cli)["mail"]["paused"] == "yes"
    assert [q.paused for q in cli.app.queues() if q.name == "mail"] == [True]

    # a burst worker runs everything else and ends, leaving the paused queue's job
    assert cli.run("worker", "jobsapp:app", "--burst").returncode == 0
    assert (job := cli.app.get_job(add.id)) is not None and job.status == "completed"
    assert (job := cli.app.get_job(mail.id)) is not None and job.status == "pending"

    resumed = cli.run("queues", "jobsapp:app", "resume", "mail")
    assert resumed.returncode == 0 and "queue mail resumed" in resumed.stdout
    assert queue_table(cli)["mail"]["paused"] == "no"
    assert cli.run("worker", "jobsapp:app", "--burst").returncode == 0
    assert (job := cli.app.get_job(mail.id)) is not None and job.status == "completed"


def test_pausing_a_queue_nobody_used_yet_says_so(cli: CliApp) -> None:
    cli.module.send.enqueue(to="eve@example.com")
    typo = cli.run("queues", "jobsapp:app", "pause", "mial")
    assert typo.returncode == 0, typo.stderr
    assert "queue mial paused" in typo.stdout
    assert "'mial' has no jobs and no controls yet; known queues: mail" in typo.stderr
    again = cli.run("queues", "jobsapp:app", "resume", "mial")  # now it has a control
    assert again.returncode == 0 and again.stderr == ""


def test_limit_a_queue_and_remove_the_limit(cli: CliApp) -> None:
    cli.module.add.enqueue(1, 1)
    limited = cli.run("queues", "jobsapp:app", "limit", "default", "2")
    assert limited.returncode == 0, limited.stderr
    assert "queue default: at most 2 jobs running at once across all workers" in limited.stdout
    assert queue_table(cli)["default"]["limit"] == "2"
    assert [q.concurrency for q in cli.app.queues()] == [2]

    stopped = cli.run("queues", "jobsapp:app", "limit", "default", "0")
    assert stopped.returncode == 0 and "no worker starts its jobs" in stopped.stdout
    assert queue_table(cli)["default"]["limit"] == "0"

    for word in ("none", "None", "off"):
        removed = cli.run("queues", "jobsapp:app", "limit", "default", word)
        assert removed.returncode == 0, removed.stderr
        assert "queue default: no concurrency limit" in removed.stdout
    assert queue_table(cli)["default"]["limit"] == "-"
    assert [q.concurrency for q in cli.app.queues()] == [None]


def test_bad_queue_commands_are_usage_errors(cli: CliApp) -> None:
    assert_clean_error(cli.run("queues", "jobsapp:app", "limit", "default", "-1"), 2, "negative")
    assert_clean_error(
        cli.run("queues", "jobsapp:app", "limit", "default", "lots"), 2, "not a whole number"
    )
    assert_clean_error(cli.run("queues", "jobsapp:app", "limit", "default"), 2, "Missing")
    assert_clean_error(cli.run("queues", "jobsapp:app", "pause", ""), 2, "cannot be empty")
    assert_clean_error(cli.run("queues", "jobsapp:app", "stop", "mail"), 2, "No such command")
    assert_clean_error(cli.run("queues", "nosuchmodule:app", "list"), 2, "no such module")
    assert cli.app.queues() == []


# --- prune ----------------------------------------------------------------------------------


def age_jobs(cli: CliApp, jobs: list[underway.Job], days: float) -> None:
    """Move the jobs' finish time back by `days` in the app's SQLite file."""
    with sqlite3.connect(cli.db) as conn:
        conn.executemany(
            "UPDATE underway_jobs SET completed_at = completed_at - ? WHERE id = ?",
            [(days * 86_400, str(job.id)) for job in jobs],
        )
    conn.close()


def test_prune_deletes_finished_jobs_older_than_the_retention(cli: CliApp) -> None:
    m = cli.module
    ancient = [m.add.enqueue(i, i) for i in range(2)]
    older = m.add.enqueue(5, 5)
    recent = m.add.enqueue(6, 6)
    dead = m.boom.enqueue(n=1)
    assert cli.run("worker", "jobsapp:app", "--burst").returncode == 0
    later = m.add.options(delay=timedelta(days=30)).enqueue(7, 7)
    age_jobs(cli, [*ancient, dead], days=10)
    age_jobs(cli, [older], days=2)

    def left() -> set[uuid.UUID]:
        return {j.id for j in cli.app.list_jobs().jobs}

    result = cli.run("prune", "jobsapp:app")  # the default retention: 7 days
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "deleted 2 jobs (completed or cancelled, finished more than 1w ago; "
        "the app's retention_seconds)"
    )
    assert left() == {older.id, recent.id, dead.id, later.id}

    result = cli.run("prune", "jobsapp:app", "--older-than", "1d")
    assert result.stdout.strip() == (
        "deleted 1 job (completed or cancelled, finished more than 1d ago)"
    )
    assert left() == {recent.id, dead.id, later.id}

    result = cli.run("prune", "jobsapp:app", "--older-than", "3d", "--include-failed")
    assert "deleted 1 job (completed, cancelled or failed" in result.stdout
    assert left() == {recent.id, later.id}

    result = cli.run("prune", "jobsapp:app", "--older-than", "0s", "--include-failed")
    assert "deleted 1 job" in result.stdout
    assert left() == {later.id}  # pending jobs are never pruned
    nothing = cli.run("prune", "jobsapp:app", "--older-than", "0s")
    assert "deleted 0 jobs" in nothing.stdout


def test_prune_refuses_what_is_not_a_duration(cli: CliApp) -> None:
    for bad in ("3x", "-1d", "", "1h30", "d", "1.5.2h", "99999999999w"):
        assert_clean_error(cli.run("prune", "jobsapp:app", "--older-than", bad), 2, "--older-than")
    assert not cli.db.exists()  # refused before the app was opened


@pytest.mark.parametrize(
    ("text", "seconds", "shown"),
    [
        ("90s", 90, "1m30s"),
        ("15m", 900, "15m"),
        ("3h", 10_800, "3h"),
        ("3d", 259_200, "3d"),
        ("2w", 1_209_600, "2w"),
        ("1h30m", 5_400, "1h30m"),
        ("1.5h", 5_400, "1h30m"),
        ("600", 600, "10m"),
        ("0s", 0, "0s"),
        (" 2D ", 172_800, "2d"),
        ("0.5s", 0.5, "0.5s"),
    ],
)
def test_durations(text: str, seconds: float, shown: str) -> None:
    from underway.cli import format_duration, parse_duration

    assert parse_duration(text) == seconds
    assert format_duration(seconds) == shown


# --- the demo -------------------------------------------------------------------------------


def test_demo_runs_by_itself_and_leaves_jobs_to_inspect(tmp_path: Path) -> None:
    db = tmp_path / "tour.db"
    env_base = {k: v for k, v in os.environ.items() if not k.startswith("UNDERWAY_")}
    result = subprocess.run(
        [sys.executable, "-m", "underway", "demo", "--db", str(db)],
        cwd=tmp_path,
        env=env_base,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "not a terminal" in out  # plain lines, not a live table
    for text in (
        "dead letter:",
        "cancelled mid-run:",
        "failed twice, then succeeded on attempt 3",
        "tenants: usage reported per tenant (acme, globex, initech)",
        "the same job",
        "underway jobs underway.cli.tour:app list",
        f"UNDERWAY_DATABASE_URL=sqlite:///{db}",
    ):
        assert text in out, out

    listed = subprocess.run(
        [sys.executable, "-m", "underway", "jobs", "underway.cli.tour:app", "list", "--json"],
        cwd=tmp_path,
        env={**env_base, "UNDERWAY_DATABASE_URL": f"sqlite:///{db}"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    statuses = {row["status"] for row in json_lines(listed.stdout)}
    assert {"completed", "failed", "cancelled"} <= statuses
    assert statuses <= {"completed", "failed", "cancelled"}


def test_demo_serves_the_dashboard_on_loopback_while_the_tour_runs(tmp_path: Path) -> None:
    env_base = {k: v for k, v in os.environ.items() if not k.startswith("UNDERWAY_")}
    tour = subprocess.Popen(
        [sys.executable, "-m", "underway", "demo", "--db", str(tmp_path / "t.db"),
         "--seconds", "3", "--linger", "0"],
        cwd=tmp_path, env=env_base, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert tour.stdout is not None
        first = tour.stdout.readline()
        found = re.search(r"dashboard: (http://127\.0\.0\.1:\d+/)", first)
        assert found, first
        page = httpx.get(found.group(1), timeout=30)
        assert page.status_code == 200 and "Overview" in page.text
        deadline = time.monotonic() + 30  # the tour enqueues right after printing the address
        while not httpx.get(found.group(1) + "api/v1/jobs", timeout=30).json()["jobs"]:
            assert time.monotonic() < deadline, "the dashboard never showed the tour's jobs"
            time.sleep(0.05)
        out, err = tour.communicate(timeout=60)
    finally:
        if tour.poll() is None:
            tour.kill()
            tour.communicate()
    assert tour.returncode == 0, err
    assert "underway demo finished" in out


def test_demo_will_not_replace_a_file_that_is_not_its_database(tmp_path: Path) -> None:
    notes = tmp_path / "notes.db"
    notes.write_text("my notes")
    result = subprocess.run(
        [sys.executable, "-m", "underway", "demo", "--db", str(notes)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert_clean_error(result, 1, "not an underway database")
    assert notes.read_text() == "my notes"
