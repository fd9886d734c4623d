"""`underway workers`, `underway jobs watch` and the attempts under `jobs show`, run as a user
would: subprocesses against a small app module and a real SQLite file."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import CliApp, json_lines, load_cli_app, stop
from test_cli import APP_MODULE

import underway


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[CliApp]:
    cli_app = load_cli_app(tmp_path, "fleetapp", APP_MODULE)
    yield cli_app
    cli_app.app.close()


def wait_for(check: object, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


def test_workers_lists_a_running_worker_and_what_it_runs(cli: CliApp) -> None:
    assert "no live workers" in cli.run("workers", "fleetapp:app").stdout
    job = cli.module.patient.enqueue(seconds=30)
    worker = cli.popen("worker", "fleetapp:app", "--concurrency", "3", "--queues", "default")
    try:
        wait_for(lambda: cli.app.workers() and cli.app.workers()[0].running == 1, "it runs")
        listed = json_lines(cli.run("workers", "fleetapp:app", "--json").stdout)
        assert len(listed) == 1
        assert listed[0]["pid"] == worker.pid and listed[0]["running"] == 1
        assert listed[0]["concurrency"] == 3 and listed[0]["queues"] == ["default"]
        table = cli.run("workers", "fleetapp:app").stdout
        assert str(worker.pid) in table and "1/3" in table
    finally:
        stop(worker)
    assert cli.app.get_job(job.id).status == underway.Status.PENDING  # handed back
    assert "no live workers" in cli.run("workers", "fleetapp:app").stdout


def test_jobs_watch_prints_each_change_of_a_job_until_it_finishes(cli: CliApp) -> None:
    job = cli.module.send.enqueue(to="ada@example.com")
    # From the feed's start (SQLite's first cursor is 0): the enqueue is in it too.
    watcher = cli.popen("jobs", "fleetapp:app", "watch", "--job", str(job.id), "--json",
                        "--since", "0")  # fmt: skip
    result = cli.run("worker", "fleetapp:app", "--burst")
    assert result.returncode == 0, result.stderr
    out, err = watcher.communicate(timeout=30)
    assert watcher.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    kinds = [line["kind"] for line in lines]
    assert kinds[0] == "enqueued" and kinds[1] == "started" and kinds[-1] == "completed", kinds
    assert lines[-1]["job"]["result"] == "sent to ada@example.com"
    assert any(line["job"]["status_message"] == "writing to ada@example.com" for line in lines)


def test_jobs_show_lists_every_attempt(cli: CliApp) -> None:
    job = cli.module.boom.enqueue(n=3)
    assert cli.run("worker", "fleetapp:app", "--burst").returncode == 0
    shown = cli.run("jobs", "fleetapp:app", "show", str(job.id))
    assert shown.returncode == 0, shown.stderr
    assert "attempts" in shown.stdout and "RuntimeError: kaput 3" in shown.stdout
    attempts = cli.app.attempts(job.id)
    assert [(a.number, a.outcome) for a in attempts] == [(1, "failed")]
