"""The Smartlead sync: six steps at once after boot and every two hours; killed mid-run with
`kill -9`, the next worker resumes at the step it was at, and no step's effect lands twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from outreach.outside import OutsideServices
from outreach.sync import STEPS

from outreach import Outreach
from underway import testing

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parent
SRC = HERE.parents[2] / "src"


def log(outreach: Outreach, run_id: str) -> list[tuple[int, str]]:
    with outreach.database.connect() as conn:
        rows = conn.rows(
            "SELECT step, detail FROM sync_log WHERE run_id = ? ORDER BY id", (run_id,)
        )
    return [(int(step), str(detail)) for step, detail in rows]


def calls(outside: OutsideServices, run_id: str, target: str) -> int:
    """How many requests of this run went to `target`: a path, or a path and its query's start."""
    mine = [r for r in outside.server.requests() if r.headers.get("x-outreach-run") == run_id]
    if "?" in target:
        return sum(r.target.startswith(target) for r in mine)
    return sum(r.path == target for r in mine)


FULL_LOG = [
    (1, "2 email accounts"),
    (2, "2 campaigns"),
    (3, "counts of 2 campaigns"),
    (4, "4 templates"),
    (5, "page at offset 0: 2 leads"),
    (5, "page at offset 2: 2 leads"),
    (5, "page at offset 4: 1 leads"),
    (5, "lead conversations"),
    (6, "5 leads classified"),
]


def test_a_sync_runs_the_six_steps_in_order_and_fills_the_tables(outreach: Outreach) -> None:
    job = outreach.sync.enqueue()
    testing.drain(outreach.app)
    done = outreach.app.get_job(job.id)
    assert done is not None and done.status.value == "completed", done
    assert done.result["resumed_after_step"] == 0
    assert [step["step"] for step in done.result["steps"]] == list(range(1, len(STEPS) + 1))
    assert done.result["steps"][0] == {"step": 1, "did": "2 email accounts"}
    assert log(outreach, str(job.id)) == FULL_LOG
    with outreach.database.connect() as conn:
        assert conn.rows("SELECT COUNT(*) FROM email_accounts") == [(2,)]
        assert conn.rows("SELECT campaign_id, account_id FROM campaign_accounts ORDER BY 1, 2") == [
            ("cmp-1", "acc-1"), ("cmp-2", "acc-1"), ("cmp-2", "acc-2"),
        ]  # fmt: skip
        assert conn.rows("SELECT sent FROM campaigns ORDER BY id") == [(300,), (200,)]
        assert conn.rows("SELECT id, category FROM leads ORDER BY id") == [
            ("lead-1", "positive"), ("lead-2", "negative"), ("lead-3", "positive"),
            ("lead-4", "out_of_office"), ("lead-5", "negative"),
        ]  # fmt: skip


def test_a_later_sync_classifies_only_the_conversations_that_changed(
    outreach: Outreach, outside: OutsideServices
) -> None:
    outreach.sync.enqueue()
    testing.drain(outreach.app)
    outside.smartlead.leads[1]["conversation"] = "Actually, interested now"
    again = outreach.sync.enqueue()
    testing.drain(outreach.app)
    assert outreach.app.get_job(again.id).result["steps"][-1] == {  # type: ignore[union-attr]
        "step": 6, "did": "1 leads classified",
    }  # fmt: skip
    with outreach.database.connect() as conn:
        assert conn.rows("SELECT category FROM leads WHERE id = 'lead-2'") == [("positive",)]


def test_the_sync_fires_at_once_after_each_boot_then_every_two_hours(outreach: Outreach) -> None:
    def syncs(jobs: list[Any]) -> int:
        testing.drain(outreach.app)
        return [job.task for job in jobs].count("outreach.sync")

    clock = testing.Clock()
    boot = testing.scheduler(outreach.app, clock=clock)
    assert syncs(boot.tick()) == 1
    clock.advance(2 * 3600 - 1)
    assert syncs(boot.tick()) == 0
    clock.advance(1)
    assert syncs(boot.tick()) == 1
    clock.advance(600)
    assert syncs(testing.scheduler(outreach.app, clock=clock).tick()) == 1  # a restart


# --- kill -9 mid-sync -----------------------------------------------------------------------


class Workers:
    """`underway worker outreach.main:app` processes on the test's database and services."""

    def __init__(self, tmp_path: Path, database_url: str, services_url: str) -> None:
        self.tmp_path = tmp_path
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("UNDERWAY_")}
        self.env.update(
            OUTREACH_DATABASE_URL=database_url, OUTREACH_SERVICES_URL=services_url,
            UNDERWAY_LEASE_SECONDS="2", UNDERWAY_HEARTBEAT_SECONDS="0.3",
            UNDERWAY_POLL_SECONDS="0.1", UNDERWAY_SHUTDOWN_GRACE_SECONDS="1",
            PYTHONPATH=os.pathsep.join([str(EXAMPLE), str(SRC), os.environ.get("PYTHONPATH", "")]),
        )  # fmt: skip
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        stderr = (self.tmp_path / f"worker{len(self.procs) + 1}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "underway", "worker", "outreach.main:app"],
            env=self.env, cwd=self.tmp_path, stdin=subprocess.DEVNULL, stdout=stderr,
            stderr=stderr,
        )  # fmt: skip
        self.procs.append(proc)
        return proc

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.tmp_path.glob("*.log")))

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@pytest.fixture
def workers(tmp_path: Path, database_url: str, outside: OutsideServices) -> Iterator[Workers]:
    running = Workers(tmp_path, database_url, outside.url)
    yield running
    running.close()


@pytest.mark.process
@pytest.mark.parametrize(
    ("cut_at", "resumed_after_step"),
    [("/smartlead/campaigns/cmp-1/sequences", 3), ("/smartlead/leads?offset=2", 4)],
    ids=["in-step-4-templates", "in-step-5-on-the-second-page"],
)
def test_a_sync_killed_mid_run_resumes_at_its_step_on_the_next_worker(
    cut_at: str, resumed_after_step: int, outreach: Outreach, outside: OutsideServices,
    workers: Workers,
) -> None:  # fmt: skip
    outside.server.hold(cut_at)
    first = workers.start()  # its boot fires the sync at once
    testing.wait_for(
        lambda: outside.server.waiting(cut_at), timeout=30, what=f"the sync to reach {cut_at}"
    )
    [job] = outreach.app.list_jobs(task="outreach.sync").jobs
    run_id = str(job.id)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    outside.server.release(cut_at)

    workers.start()
    try:
        done = outreach.app.wait(job.id, timeout=60)
    except Exception as exc:
        pytest.fail(f"{exc}\n{workers.logs()}")

    assert done.status.value == "completed", workers.logs()
    assert done.result["resumed_after_step"] == resumed_after_step
    assert [a.outcome for a in outreach.app.attempts(job.id)] == ["rescued", "completed"]
    # Each step's effect once, in order, across both workers.
    assert log(outreach, run_id) == FULL_LOG
    # The steps finished before the kill were not run again; the one cut short was.
    assert calls(outside, run_id, "/smartlead/email-accounts") == 1
    assert calls(outside, run_id, "/smartlead/campaigns") == 1
    assert calls(outside, run_id, "/smartlead/campaigns/cmp-2/analytics") == 1
    assert calls(outside, run_id, cut_at) == 2
    assert calls(outside, run_id, "/smartlead/leads?offset=0") == 1
    with outreach.database.connect() as conn:
        assert conn.rows("SELECT COUNT(*) FROM leads WHERE category IS NOT NULL") == [(5,)]
