"""Drives real worker processes (`python -m procapp`) on one store for the process tests.

A `Harness` owns one database (a SQLite file, or a PostgreSQL schema of the test's own), one
record file that the tasks append to, the test's own App, and the worker processes it started.
Every wait polls with a deadline; on failure the message carries the workers' stderr.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import pytest

import underway

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import procapp  # noqa: E402  (lives next to this file; the workers import it the same way)

T = TypeVar("T")

#: Short leases and polls, so that faults heal in seconds.
SETTINGS: dict[str, float] = {
    "lease_seconds": 2.0,
    "heartbeat_seconds": 0.3,
    "shutdown_grace_seconds": 1.0,
    "poll_seconds": 0.2,
}


@dataclass(frozen=True)
class Record:
    """One line of the record file: what a task did, in which job, process and attempt."""

    event: str
    job_id: str
    pid: int
    attempt: int
    detail: str


@dataclass
class WorkerProcess:
    name: str
    proc: subprocess.Popen[bytes]
    stderr_path: Path
    stderr_file: IO[bytes]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def stderr(self) -> str:
        self.stderr_file.flush()
        return self.stderr_path.read_text(errors="replace")


class Harness:
    """One database, one record file, the test's own App and the worker processes.

    On PostgreSQL the workers connect with an `application_name` of their own (the test's App
    does not), so a test can find, and terminate, exactly the workers' connections.
    """

    def __init__(self, tmp_path: Path, url: str) -> None:
        self.tmp_path = tmp_path
        self.url = url
        self.is_postgres = url.startswith(("postgresql:", "postgres:"))
        self.application_name = f"underway-test-{uuid.uuid4().hex[:12]}"
        if self.is_postgres:
            self.worker_url = f"{url}{'&' if '?' in url else '?'}application_name="
            self.worker_url += self.application_name
        else:
            self.worker_url = url
        self.record_file = tmp_path / "records.log"
        self.record_file.touch()
        self.app = procapp.make_app(self.url, **SETTINGS)
        self.app.migrate()
        self.workers: list[WorkerProcess] = []

    # --- workers ------------------------------------------------------------------------------

    def start_worker(
        self, concurrency: int = 10, burst: bool = False, **settings: float
    ) -> WorkerProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("UNDERWAY_")}
        for name, value in {**SETTINGS, **settings}.items():
            env[f"UNDERWAY_{name.upper()}"] = str(value)
        env["UNDERWAY_DATABASE_URL"] = self.worker_url
        env[procapp.RECORD_FILE_VAR] = str(self.record_file)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(HERE), str(SRC), os.environ.get("PYTHONPATH", "")) if p
        )
        env["PYTHONFAULTHANDLER"] = "1"
        name = f"worker{len(self.workers) + 1}"
        stderr_path = self.tmp_path / f"{name}.stderr"
        stderr_file = stderr_path.open("wb")
        argv = [sys.executable, "-m", "procapp", "--concurrency", str(concurrency)]
        if burst:
            argv.append("--burst")
        proc = subprocess.Popen(
            argv,
            env=env,
            cwd=self.tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=stderr_file,
            stderr=stderr_file,
        )
        worker = WorkerProcess(name, proc, stderr_path, stderr_file)
        self.workers.append(worker)
        return worker

    def wait_exit(self, worker: WorkerProcess, timeout: float) -> int:
        """The worker's exit code once it exits on its own; fails after `timeout` seconds."""
        try:
            return worker.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            worker.signal(signal.SIGUSR1)  # procapp dumps every thread's stack to stderr
            time.sleep(0.5)
            worker.proc.kill()
            worker.proc.wait()
            pytest.fail(
                f"{worker.name} (pid {worker.pid}) did not exit within {timeout} s\n{self.logs()}"
            )

    def logs(self) -> str:
        parts = []
        for worker in self.workers:
            state = "running" if worker.proc.poll() is None else f"exit {worker.proc.returncode}"
            parts.append(f"--- {worker.name} pid {worker.pid} ({state}) stderr:\n{worker.stderr()}")
        return "\n".join(parts) or "(no workers started)"

    def close(self) -> None:
        for worker in self.workers:
            if worker.proc.poll() is None:
                worker.proc.kill()
                worker.proc.wait()
            worker.stderr_file.close()
        self.app.close()

    # --- observing ----------------------------------------------------------------------------

    def records(self) -> list[Record]:
        out = []
        for line in self.record_file.read_text().splitlines():
            event, job_id, pid, attempt, *detail = line.split(" ", 4)
            out.append(Record(event, job_id, int(pid), int(attempt), " ".join(detail)))
        return out

    def events(self, job: underway.Job) -> list[str]:
        return [r.event for r in self.records() if r.job_id == str(job.id)]

    def wait_until(
        self, probe: Callable[[], T], what: str, timeout: float = 20.0, interval: float = 0.05
    ) -> T:
        """Poll `probe` until it returns something truthy; return that."""
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value:
                return value
            if time.monotonic() >= deadline:
                pytest.fail(f"timed out after {timeout} s waiting for {what}\n{self.logs()}")
            for worker in self.workers:
                code = worker.proc.poll()
                if code is not None and code < 0 and code != -signal.SIGKILL:
                    pytest.fail(f"{worker.name} died of signal {-code}\n{self.logs()}")
            time.sleep(interval)

    def wait_job(self, job: underway.Job, timeout: float = 20.0) -> underway.Job:
        try:
            return self.app.wait(job.id, timeout=timeout)
        except underway.JobTimeout as exc:
            pytest.fail(f"{exc}\n{self.logs()}")

    def get(self, job: underway.Job) -> underway.Job:
        current = self.app.get_job(job.id)
        assert current is not None, f"job {job.id} vanished\n{self.logs()}"
        return current

    def started(self, *jobs: underway.Job) -> bool:
        started = {r.job_id for r in self.records() if r.event == "start"}
        return all(str(job.id) in started for job in jobs)

    def task(self, name: str) -> underway.Task[Any, Any]:
        return self.app.tasks[name]


def stop(h: Harness, *workers: WorkerProcess) -> None:
    """SIGTERM each worker; each must exit with code 0."""
    for worker in workers:
        worker.signal(signal.SIGTERM)
    for worker in workers:
        code = h.wait_exit(worker, timeout=15)
        assert code == 0, f"{worker.name} exited with {code}\n{h.logs()}"
