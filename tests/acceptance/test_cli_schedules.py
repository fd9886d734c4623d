"""Schedules on the command line, run as a user would (subprocesses on a SQLite file):
`underway schedules APP list|pause|resume|trigger`, `underway scheduler APP`, and which workers
fire schedules (`underway worker APP` does; with --no-scheduler or --burst it does not)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cli_support import (
    CliApp,
    assert_clean_error,
    ids_in,
    json_lines,
    load_cli_app,
    stop,
    table_rows,
)

import underway

APP = "schedapp:app"
SCHEDULE_APP = textwrap.dedent(
    '''
    """An app with schedules for the CLI tests: its database sits next to this file."""
    from pathlib import Path

    import underway

    app = underway.App(
        "sqlite:///" + str(Path(__file__).with_name("sched.db")),
        poll_seconds=0.05,
        heartbeat_seconds=0.2,
        shutdown_grace_seconds=0.2,
    )


    @app.periodic(every=0.5, name="tick", schedule_name="tick")
    def tick() -> str:
        return "tick"


    @app.periodic(every=0.5, name="beat", schedule_name="beat")
    def beat() -> str:
        return "beat"


    @app.periodic(
        cron="0 3 * * *",
        timezone="Europe/Berlin",
        name="report.nightly",
        schedule_name="nightly",
        tenant="acme",
        max_attempts=1,
    )
    def nightly_report() -> None:
        raise RuntimeError("no data yet")


    @app.task(name="patient")
    def patient(ctx: underway.Context, seconds: float) -> None:
        ctx.wait_cancelled(seconds)  # returns after `seconds`, or at once when stopped
    '''
)
INTERVAL_SCHEDULES = ("beat", "tick")  # the two that fire every 0.5 s
COLUMNS = ["task", "tenant", "rule", "state", "next run", "last run", "fired", "runs", "failures"]
COLUMNS += ["last took", "average"]


@pytest.fixture
def sched(tmp_path: Path) -> Iterator[CliApp]:
    cli_app = load_cli_app(tmp_path, "schedapp", SCHEDULE_APP, db_name="sched.db")
    yield cli_app
    cli_app.app.close()


def fired_by(sched: CliApp, name: str) -> list[underway.Job]:
    """The jobs schedule `name` created (by its slots or by a trigger), oldest first."""
    jobs = sched.app.list_jobs(limit=10_000).jobs
    return sorted((job for job in jobs if job.schedule == name), key=lambda job: job.created_at)


def schedule_table(sched: CliApp) -> dict[str, dict[str, str]]:
    """`schedules APP list` as {schedule: {column: cell}}."""
    result = sched.run("schedules", APP, "list")
    assert result.returncode == 0, result.stderr
    header = next(line for line in result.stdout.splitlines() if "┃" in line)
    assert [cell.strip() for cell in header.strip("┃ ").split("┃")] == ["schedule", *COLUMNS]
    return {
        name: dict(zip(COLUMNS, cells, strict=True))
        for name, cells in table_rows(result.stdout).items()
    }


def schedule_json(sched: CliApp) -> dict[str, dict[str, Any]]:
    result = sched.run("schedules", APP, "list", "--json")
    assert result.returncode == 0, result.stderr
    return {str(row["name"]): row for row in json_lines(result.stdout)}


# --- list -----------------------------------------------------------------------------------


def test_list_shows_every_schedule_before_any_scheduler_ran(sched: CliApp) -> None:
    """No scheduler beats in the store: every schedule's state says so."""
    table = schedule_table(sched)
    assert list(table) == ["beat", "nightly", "tick"]
    assert table["tick"] == {
        "task": "tick",
        "tenant": "-",
        "rule": "every 0.5s",
        "state": "no scheduler",
        "next run": "once a scheduler runs",
        "last run": "-",
        "fired": "0",
        "runs": "0",
        "failures": "0",
        "last took": "-",
        "average": "-",
    }
    assert table["nightly"]["task"] == "report.nightly"
    assert table["nightly"]["rule"] == "cron 0 3 * * * (Europe/Berlin)"
    assert table["nightly"]["tenant"] == "acme"

    data = schedule_json(sched)
    assert list(data) == ["beat", "nightly", "tick"]
    assert data["nightly"] == {
        "name": "nightly",
        "task": "report.nightly",
        "rule": "cron 0 3 * * * (Europe/Berlin)",
        "paused": False,
        "next_run": None,
        "last_run": None,
        "run_count": 0,
        "registered": True,
        "tenant": "acme",
        "stored": False,
        "tenants": None,
        "tenants_from": None,
        "schedulers_alive": 0,
        "state": "no scheduler",
        "stats": {
            "runs": 0,
            "failures": 0,
            "last_run": None,
            "last_status": None,
            "last_duration": None,
            "average_duration": None,
            "consecutive_failures": 0,
            "running": 0,
            "state": "idle",
        },
    }


def test_an_app_without_schedules(tmp_path: Path) -> None:
    source = 'import underway\napp = underway.App("sqlite:///" + __file__ + ".db")\n'
    plain = load_cli_app(tmp_path, "plainapp", source)
    try:
        listed = plain.run("schedules", "plainapp:app", "list")
        assert listed.returncode == 0, listed.stderr
        assert "no schedules: the app defines none" in listed.stdout
        assert plain.run("schedules", "plainapp:app", "list", "--json").stdout == ""
        refused = plain.run("scheduler", "plainapp:app")
        assert_clean_error(refused, 1, "plainapp:app defines no schedules")
    finally:
        plain.app.close()


# --- the scheduler process ------------------------------------------------------------------


def test_scheduler_fires_the_interval_schedules_and_stops_on_sigterm(
    sched: CliApp, wait_for: Callable[..., Any]
) -> None:
    proc = sched.popen("scheduler", APP)
    try:
        wait_for(
            lambda: len(fired_by(sched, "tick")) >= 3,
            timeout=30,
            what="the scheduler to fire 3 slots of the 0.5 s schedule",
        )
    finally:
        _, stderr = stop(proc)
    assert proc.returncode == 0, stderr
    assert "scheduler started with 3 schedules" in stderr
    assert "schedule tick fired job" in stderr
    assert "scheduler stopped" in stderr
    assert "Traceback" not in stderr

    ticks = fired_by(sched, "tick")
    assert {job.task for job in ticks} == {"tick"}
    assert {job.status for job in ticks} == {"pending"}  # a scheduler runs no jobs
    assert len({job.key for job in ticks}) == len(ticks)  # one job per slot
    assert fired_by(sched, "nightly") == []

    table = schedule_table(sched)
    assert table["tick"]["fired"] == str(len(ticks))
    assert (table["tick"]["state"], table["tick"]["runs"]) == ("no scheduler", "0")
    assert table["tick"]["last run"].endswith(" ago")
    assert table["tick"]["next run"].startswith("in ") or table["tick"]["next run"] == "now"
    assert table["nightly"]["next run"].startswith("in ")  # 03:00 in Berlin, some hours away
    assert schedule_json(sched)["tick"]["run_count"] == len(ticks)

    # a worker runs the jobs; the list and `jobs stats` then show how the runs went
    drained = sched.run("worker", APP, "--burst")
    assert drained.returncode == 0, drained.stderr
    assert "fires none of the app's 3 schedules (--burst)" in drained.stderr
    ticks = fired_by(sched, "tick")
    assert {job.status for job in ticks} == {"completed"}
    row = schedule_table(sched)["tick"]
    # the runs went fine, but the scheduler stopped: the list says so rather than "ok"
    assert (row["state"], row["runs"], row["failures"]) == ("no scheduler", str(len(ticks)), "0")
    assert row["last took"].endswith((" ms", " s"))
    assert row["average"].endswith((" ms", " s"))

    stats = sched.run("jobs", APP, "stats")
    assert stats.returncode == 0, stats.stderr
    runs = table_rows(stats.stdout.split("runs per schedule")[1])
    assert runs["tick"][:4] == ["ok", str(len(ticks)), "0", "0"]  # state, runs, failures, streak
    assert runs["tick"][5] == "completed"  # last status
    assert "nightly" not in runs  # it never ran


# --- pause, resume, trigger -----------------------------------------------------------------


def test_a_paused_schedule_fires_nothing_until_resumed(
    sched: CliApp, wait_for: Callable[..., Any]
) -> None:
    paused = sched.run("schedules", APP, "pause", "tick")
    assert paused.returncode == 0, paused.stderr
    assert paused.stdout == "schedule tick paused: no scheduler fires it until it is resumed\n"
    row = schedule_table(sched)["tick"]
    assert (row["state"], row["next run"]) == ("paused", "paused")
    assert schedule_json(sched)["tick"]["paused"] is True
    assert schedule_json(sched)["tick"]["state"] == "paused"

    proc = sched.popen("scheduler", APP)
    try:
        # `beat` firing twice shows the scheduler made full passes over every schedule
        wait_for(lambda: len(fired_by(sched, "beat")) >= 2, timeout=30, what="beat to fire")
        assert fired_by(sched, "tick") == []

        resumed = sched.run("schedules", APP, "resume", "tick")  # the scheduler sees it live
        assert resumed.returncode == 0, resumed.stderr
        assert resumed.stdout == "schedule tick resumed\n"
        wait_for(lambda: fired_by(sched, "tick"), timeout=30, what="tick to fire again")
    finally:
        _, stderr = stop(proc)
    assert proc.returncode == 0, stderr
    assert schedule_table(sched)["tick"]["state"] == "no scheduler"  # it stopped
    assert schedule_json(sched)["tick"]["paused"] is False


def slot_of(job: underway.Job) -> datetime:
    """The slot a scheduled job was fired for, from its unique key `schedule:NAME:ISO-TIME`."""
    assert job.key is not None and job.key.startswith(f"schedule:{job.schedule}:")
    return datetime.fromisoformat(job.key.split(":", 2)[2])


def test_resuming_does_not_fire_the_slots_that_passed_while_paused(
    sched: CliApp, wait_for: Callable[..., Any]
) -> None:
    """Pausing skips the slots that come meanwhile: resuming must not fire them all at once.
    (At most one, as with catch_up="latest" after downtime, is tolerated.)"""
    assert sched.run("schedules", APP, "pause", "tick").returncode == 0
    proc = sched.popen("scheduler", APP)
    try:
        # beat's 4th slot comes at least 1.5 s after the first: tick skipped 3 slots meanwhile
        wait_for(lambda: len(fired_by(sched, "beat")) >= 4, timeout=30, what="beat to fire")
        resumed_at = datetime.now(UTC)
        assert sched.run("schedules", APP, "resume", "tick").returncode == 0
        wait_for(lambda: fired_by(sched, "tick"), timeout=30, what="tick to fire again")
    finally:
        _, stderr = stop(proc)
    assert proc.returncode == 0, stderr
    backlog = [slot_of(job) for job in fired_by(sched, "tick") if slot_of(job) < resumed_at]
    assert len(backlog) <= 1, f"resuming fired {len(backlog)} slots from the pause: {backlog}"


def test_trigger_enqueues_the_task_now_and_prints_the_job_id(sched: CliApp) -> None:
    triggered = sched.run("schedules", APP, "trigger", "nightly")
    assert triggered.returncode == 0, triggered.stderr
    (job_id,) = ids_in(triggered.stdout)
    assert triggered.stdout == f"{job_id}\n"
    job = sched.app.get_job(job_id)
    assert job is not None
    assert (job.task, job.schedule, job.status) == ("report.nightly", "nightly", "pending")
    row = schedule_table(sched)["nightly"]
    assert (row["fired"], row["state"], row["runs"]) == ("1", "no scheduler", "0")

    # the run fails: the list says so
    assert sched.run("worker", APP, "--burst").returncode == 0
    row = schedule_table(sched)["nightly"]
    assert (row["state"], row["runs"], row["failures"]) == ("failing", "1", "1")
    assert row["last run"] == "-"  # a trigger is not one of its slots
    stats = schedule_json(sched)["nightly"]["stats"]
    assert (stats["last_status"], stats["consecutive_failures"]) == ("failed", 1)

    # a paused schedule can still be triggered by hand
    assert sched.run("schedules", APP, "pause", "tick").returncode == 0
    again = sched.run("schedules", APP, "trigger", "tick")
    assert again.returncode == 0, again.stderr
    assert [str(job.id) for job in fired_by(sched, "tick")] == [again.stdout.strip()]
    row = schedule_table(sched)["tick"]
    assert (row["state"], row["fired"]) == ("paused", "1")


PER_TENANT_APP = textwrap.dedent(
    """
    import underway

    app = underway.App("sqlite:///" + __file__ + ".db")


    def active_tenants() -> list[str]:
        return ["acme", "globex"]


    @app.periodic(cron="0 * * * *", tenants=["acme", "globex"], schedule_name="usage")
    def report_usage() -> None: ...


    app.schedule(report_usage, every=60, name="quota", tenants=active_tenants)
    """
)


def test_list_shows_whom_a_schedule_per_tenant_runs_for_and_trigger_takes_one(
    tmp_path: Path,
) -> None:
    per_tenant = load_cli_app(tmp_path, "tenantapp", PER_TENANT_APP)
    try:
        listed = per_tenant.run("schedules", "tenantapp:app", "list")
        assert listed.returncode == 0, listed.stderr
        rows = table_rows(listed.stdout)
        assert rows["usage"][1] == "each of acme, globex"
        assert rows["quota"][1].startswith("each of ") and "active_tenants()" in rows["quota"][1]
        data = {row["name"]: row for row in json_lines(
            per_tenant.run("schedules", "tenantapp:app", "list", "--json").stdout)}  # fmt: skip
        assert data["usage"]["tenants"] == ["acme", "globex"]
        assert str(data["quota"]["tenants_from"]).endswith("active_tenants")
        triggered = per_tenant.run("schedules", "tenantapp:app", "trigger", "usage", "--tenant",
                                   "globex")  # fmt: skip
        assert triggered.returncode == 0, triggered.stderr
        (job_id,) = ids_in(triggered.stdout)
        job = per_tenant.app.get_job(job_id)
        assert job is not None and job.tenant == "globex"
        refused = per_tenant.run("schedules", "tenantapp:app", "trigger", "usage")
        assert_clean_error(refused, 1, "runs once per tenant")
    finally:
        per_tenant.app.close()


def test_unknown_schedule_names_are_a_clean_error(sched: CliApp) -> None:
    for command in ("pause", "resume", "trigger"):
        result = sched.run("schedules", APP, command, "nope")
        assert_clean_error(result, 1, "Error: no schedule named 'nope'; schedules: beat,")
        assert result.stdout == ""
    assert_clean_error(sched.run("schedules", APP, "pause"), 2, "Missing argument 'NAME'")
    assert_clean_error(sched.run("schedules", APP, "stop", "tick"), 2, "No such command")
    assert_clean_error(sched.run("schedules", "nosuchmodule:app", "list"), 2, "no such module")
    assert all(not info.paused for info in sched.app.list_schedules())
    assert sched.app.list_jobs().jobs == []


# --- which workers fire schedules -----------------------------------------------------------


def test_a_burst_worker_fires_no_schedule(sched: CliApp) -> None:
    job = sched.module.patient.enqueue(seconds=1.0)  # keeps the worker busy for a second
    result = sched.run("worker", APP, "--burst")
    assert result.returncode == 0, result.stderr
    assert (done := sched.app.get_job(job.id)) is not None and done.status == "completed"
    assert "scheduler started" not in result.stderr
    for name in INTERVAL_SCHEDULES:
        assert fired_by(sched, name) == []


def test_a_worker_with_no_scheduler_fires_no_schedule(
    sched: CliApp, wait_for: Callable[..., Any]
) -> None:
    job = sched.module.patient.enqueue(seconds=1.0)
    proc = sched.popen("worker", APP, "--no-scheduler")
    try:

        def finished() -> bool:
            current = sched.app.get_job(job.id)
            return current is not None and current.status == "completed"

        # the worker has run for at least a second: the 0.5 s schedules would have fired
        wait_for(finished, timeout=30, what="the worker to run the 1 s job")
    finally:
        _, stderr = stop(proc)
    assert proc.returncode == 0, stderr
    assert "fires none of the app's 3 schedules (--no-scheduler)" in stderr
    assert "scheduler started" not in stderr
    for name in INTERVAL_SCHEDULES:
        assert fired_by(sched, name) == []


def test_a_worker_fires_the_schedules_and_runs_their_jobs(
    sched: CliApp, wait_for: Callable[..., Any]
) -> None:
    proc = sched.popen("worker", APP)
    try:

        def ran_twice() -> bool:
            done = [job for job in fired_by(sched, "tick") if job.status == "completed"]
            return len(done) >= 2

        wait_for(ran_twice, timeout=30, what="the worker to fire and run tick twice")
    finally:
        _, stderr = stop(proc)
    assert proc.returncode == 0, stderr
    assert "scheduler started with 3 schedules" in stderr
    assert "fires none" not in stderr
    assert [job.result for job in fired_by(sched, "tick") if job.status == "completed"][:2] == [
        "tick",
        "tick",
    ]
    assert fired_by(sched, "beat")


def test_worker_help_mentions_the_scheduler_flag(sched: CliApp) -> None:
    result = sched.run("worker", "--help")
    assert result.returncode == 0
    assert "--no-scheduler" in result.stdout
    scheduler_help = sched.run("scheduler", "--help")
    assert scheduler_help.returncode == 0
    assert "--log-level" in scheduler_help.stdout and "-v, --verbose" in scheduler_help.stdout


def test_restart_resumes_and_remove_refuses_a_schedule_declared_in_code(sched: CliApp) -> None:
    assert sched.run("schedules", APP, "pause", "tick").returncode == 0
    restarted = sched.run("schedules", APP, "restart", "tick")
    assert (restarted.returncode, restarted.stdout) == (0, "schedule tick restarted\n")
    assert schedule_json(sched)["tick"]["paused"] is False
    refused = sched.run("schedules", APP, "remove", "tick")
    assert refused.returncode == 1 and "declared in" in refused.stderr
    assert "tick" in schedule_json(sched)
