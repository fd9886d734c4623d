"""Several real processes fire one fast schedule on one store (a SQLite file; a PostgreSQL
schema when UNDERWAY_TEST_POSTGRES_URL is set): two `app.run_scheduler()` processes and a worker
with its scheduler on. Every slot must become exactly one job, with no slot left out, and every
process must stop cleanly on SIGTERM.

The processes run `python -m schedapp` (see schedapp.py).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

import pytest
import schedapp

import underway

pytestmark = pytest.mark.process

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"
EVERY = 0.2
SLOTS_WANTED = 25  # about 5 s of slots
SETTINGS = {
    "poll_seconds": 0.2,
    "heartbeat_seconds": 0.3,
    "lease_seconds": 2.0,
    "shutdown_grace_seconds": 1.0,
}
FIRED_LINE = re.compile(r"schedule (\S+) fired job (\S+) for slot (\S+)")


@dataclass
class Process:
    name: str
    proc: subprocess.Popen[bytes]
    stderr_path: Path
    stderr_file: IO[bytes]

    def stderr(self) -> str:
        self.stderr_file.flush()
        return self.stderr_path.read_text(errors="replace")


class Fleet:
    """The processes of one test, on one database."""

    def __init__(self, tmp_path: Path, url: str) -> None:
        self.tmp_path = tmp_path
        self.url = url
        self.processes: list[Process] = []

    def start(self, mode: str) -> Process:
        env = {k: v for k, v in os.environ.items() if not k.startswith("UNDERWAY_")}
        env.update({f"UNDERWAY_{k.upper()}": str(v) for k, v in SETTINGS.items()})
        env["UNDERWAY_DATABASE_URL"] = self.url
        env[schedapp.EVERY_VAR] = str(EVERY)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(HERE), str(SRC), os.environ.get("PYTHONPATH", "")) if p
        )
        name = f"{mode}{len(self.processes) + 1}"
        stderr_path = self.tmp_path / f"{name}.stderr"
        stderr_file = stderr_path.open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "schedapp", mode],
            env=env,
            cwd=self.tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=stderr_file,
            stderr=stderr_file,
        )
        process = Process(name, proc, stderr_path, stderr_file)
        self.processes.append(process)
        return process

    def logs(self) -> str:
        parts = []
        for p in self.processes:
            state = "running" if p.proc.poll() is None else f"exit {p.proc.returncode}"
            parts.append(f"--- {p.name} pid {p.proc.pid} ({state}):\n{p.stderr()[-6000:]}")
        return "\n".join(parts)

    def check_alive(self) -> None:
        for p in self.processes:
            if p.proc.poll() is not None:
                pytest.fail(f"{p.name} exited early with {p.proc.returncode}\n{self.logs()}")

    def stop_all(self, timeout: float = 15.0) -> dict[str, int]:
        for p in self.processes:
            p.proc.send_signal(signal.SIGTERM)
        codes = {}
        for p in self.processes:
            try:
                codes[p.name] = p.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                p.proc.send_signal(signal.SIGUSR1)  # dump its stacks into its stderr
                time.sleep(0.5)
                p.proc.kill()
                p.proc.wait()
                pytest.fail(f"{p.name} did not stop within {timeout} s of SIGTERM\n{self.logs()}")
        return codes

    def close(self) -> None:
        for p in self.processes:
            if p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait()
            p.stderr_file.close()


@pytest.fixture
def fleet(tmp_path: Path, database_url: str) -> Iterator[Fleet]:
    f = Fleet(tmp_path, database_url)
    yield f
    f.close()


def slot_jobs(app: underway.App) -> list[underway.Job]:
    return [j for j in app.list_jobs(limit=10_000).jobs if j.schedule == schedapp.SCHEDULE]


def test_three_schedulers_fire_every_slot_exactly_once(fleet: Fleet, database_url: str) -> None:
    app = schedapp.make_app(database_url, every=EVERY)
    app.migrate()
    try:
        for mode in ("scheduler", "scheduler", "worker"):
            fleet.start(mode)

        deadline = time.monotonic() + 45
        while len(slot_jobs(app)) < SLOTS_WANTED:
            fleet.check_alive()
            if time.monotonic() > deadline:
                pytest.fail(f"only {len(slot_jobs(app))} slot jobs after 45 s\n{fleet.logs()}")
            time.sleep(0.1)
        codes = fleet.stop_all()
        assert codes == dict.fromkeys(codes, 0), f"exit codes {codes}\n{fleet.logs()}"

        jobs = slot_jobs(app)
        keys = Counter(job.key for job in jobs)
        duplicates = {key: n for key, n in keys.items() if n > 1}
        assert not duplicates, f"slots fired more than once: {duplicates}"
        assert None not in keys

        (state,) = [s for s in app.store.schedule_states() if s.name == schedapp.SCHEDULE]
        prefix = f"schedule:{schedapp.SCHEDULE}:"
        offsets = sorted(
            (datetime.fromisoformat(str(key)[len(prefix) :]) - state.anchor).total_seconds()
            for key in keys
        )
        numbers = [round(offset / EVERY) for offset in offsets]
        off_grid = [o for o, k in zip(offsets, numbers, strict=True) if abs(o - k * EVERY) > 1e-3]
        assert not off_grid, f"slots not on the {EVERY} s grid from the anchor: {off_grid}"
        assert numbers == list(range(numbers[0], numbers[-1] + 1)), f"gaps in {numbers}"
        assert numbers[0] == 0, "the first slot (at the anchor) never fired"
        assert state.run_count == len(jobs)

        # Each job was created by exactly one process, and every process saw the same slots.
        fired: Counter[str] = Counter()
        for p in fleet.processes:
            for name, job_id, _slot in FIRED_LINE.findall(p.stderr()):
                assert name == schedapp.SCHEDULE
                fired[job_id] += 1
        assert fired == Counter({str(job.id): 1 for job in jobs}), fleet.logs()
    finally:
        app.close()
