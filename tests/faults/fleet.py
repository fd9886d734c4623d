"""Real worker processes (`python -m faultapp`) for the fault scenarios, and the faults done
to them: kill, stop, continue, terminate. A `Fleet` remembers every incarnation it started and
every one it killed, which is what the verdict needs to tell a lost job from an allowed re-run.

With `supervise()`, a thread restarts any worker that died (a kill, a crash), as systemd or
Kubernetes would; a worker the scenario stopped on purpose (`terminate`, `drain`) stays down.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ledger import INCARNATION_VAR, LEDGER_VAR

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"


@dataclass
class Member:
    """One incarnation of one worker slot: `w2.3` is the third start of worker 2."""

    slot: int
    incarnation: str
    proc: subprocess.Popen[bytes]
    stderr_path: Path
    stderr_file: IO[bytes]
    concurrency: int
    started_at: float = field(default_factory=time.time)
    wanted_down: bool = False  # stopped on purpose: the supervisor leaves it

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None


@dataclass(frozen=True)
class Kill:
    incarnation: str
    at: float
    signal: str


class Fleet:
    """Worker processes on one store. On PostgreSQL their connections carry an
    application_name of their own, so a scenario can find (and terminate) exactly them."""

    def __init__(self, tmp_path: Path, url: str, ledger: Path, settings: dict[str, float]) -> None:
        self.tmp_path = tmp_path
        self.ledger = ledger
        self.settings = settings
        self.application_name = f"underway-faults-{uuid.uuid4().hex[:10]}"
        self.is_postgres = url.startswith(("postgresql:", "postgres:"))
        self.url = url
        if self.is_postgres:
            separator = "&" if "?" in url else "?"
            self.url = f"{url}{separator}application_name={self.application_name}"
        self.members: list[Member] = []
        self.kills: list[Kill] = []
        self.crashes: list[Kill] = []  # deaths nobody asked for, found by the supervisor
        self.restarts = 0
        self._generation: dict[int, int] = {}
        self._lock = threading.Lock()
        self._supervising = threading.Event()
        self._supervisor: threading.Thread | None = None

    # --- starting ----------------------------------------------------------------------------

    def start(
        self, concurrency: int = 4, slot: int | None = None, env: dict[str, str] | None = None
    ) -> Member:
        with self._lock:
            if slot is None:
                slot = len(self._generation) + 1
            generation = self._generation.get(slot, 0) + 1
            self._generation[slot] = generation
            incarnation = f"w{slot}.{generation}"
            extra = env or {}
            env = {k: v for k, v in os.environ.items() if not k.startswith("UNDERWAY_")}
            env.update(extra)
            for name, value in self.settings.items():
                env[f"UNDERWAY_{name.upper()}"] = str(value)
            env["UNDERWAY_DATABASE_URL"] = self.url
            env[LEDGER_VAR] = str(self.ledger)
            env[INCARNATION_VAR] = incarnation
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(HERE), str(SRC), os.environ.get("PYTHONPATH", "")) if p
            )
            env["PYTHONFAULTHANDLER"] = "1"
            stderr_path = self.tmp_path / f"{incarnation}.stderr"
            stderr_file = stderr_path.open("wb")
            proc = subprocess.Popen(
                [sys.executable, "-m", "faultapp", "--concurrency", str(concurrency)],
                env=env,
                cwd=self.tmp_path,
                stdin=subprocess.DEVNULL,
                stdout=stderr_file,
                stderr=stderr_file,
            )
            member = Member(slot, incarnation, proc, stderr_path, stderr_file, concurrency)
            self.members.append(member)
            return member

    def start_many(
        self, count: int, concurrency: int = 4, env: dict[str, str] | None = None
    ) -> list[Member]:
        return [self.start(concurrency, env=env) for _ in range(count)]

    def supervise(self, every: float = 0.1) -> None:
        """Restart, from now on, any worker that dies without being asked to."""
        self._supervising.set()
        self._supervisor = threading.Thread(target=self._watch, args=(every,), daemon=True)
        self._supervisor.start()

    def _watch(self, every: float) -> None:
        while self._supervising.is_set():
            for member in self.current():
                if not member.alive and not member.wanted_down:
                    member.wanted_down = True  # replaced: never restarted twice
                    if member.incarnation not in self.killed_incarnations():
                        code = member.proc.returncode
                        self.crashes.append(Kill(member.incarnation, time.time(), f"exit {code}"))
                    self.restarts += 1
                    self.start(member.concurrency, member.slot)
            time.sleep(every)

    # --- faults ------------------------------------------------------------------------------

    def current(self) -> list[Member]:
        """The newest incarnation of each slot."""
        with self._lock:
            newest: dict[int, Member] = {}
            for member in self.members:
                newest[member.slot] = member
            return list(newest.values())

    def alive(self) -> list[Member]:
        return [m for m in self.current() if m.alive]

    def wait_ready(self, member: Member, timeout: float = 30.0) -> bool:
        """Wait until the worker runs (it logged its start, so its signal handlers are in
        place: a SIGTERM before that kills the interpreter instead)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and member.alive:
            member.stderr_file.flush()
            if " started: queues=" in member.stderr_path.read_text(errors="replace"):
                return True
            time.sleep(0.05)
        return False

    def kill(self, member: Member, sig: signal.Signals = signal.SIGKILL) -> None:
        """Send `sig`; a SIGKILL is recorded so the verdict allows that incarnation's re-runs."""
        if sig is signal.SIGKILL:
            self.kills.append(Kill(member.incarnation, time.time(), sig.name))
        member.proc.send_signal(sig)
        if sig is signal.SIGKILL:
            member.proc.wait()

    def terminate(self, member: Member) -> None:
        """SIGTERM on purpose: a graceful stop the supervisor does not undo."""
        member.wanted_down = True
        member.proc.send_signal(signal.SIGTERM)

    def wait_exit(self, member: Member, timeout: float) -> int | None:
        try:
            return member.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def killed_incarnations(self) -> set[str]:
        """Incarnations that died before their time: killed by the scenario, or crashed on
        their own (a poison job, the OOM killer) and found by the supervisor."""
        return {k.incarnation for k in self.kills} | {c.incarnation for c in self.crashes}

    # --- ending ------------------------------------------------------------------------------

    def logs(self, tail: int = 4000) -> str:
        parts = []
        for member in self.members:
            if not member.stderr_file.closed:  # closed by `close`: flushed then
                member.stderr_file.flush()
            text = member.stderr_path.read_text(errors="replace")[-tail:]
            state = "running" if member.alive else f"exit {member.proc.returncode}"
            parts.append(f"--- {member.incarnation} pid {member.proc.pid} ({state}):\n{text}")
        return "\n".join(parts) or "(no workers started)"

    def close(self) -> None:
        self._supervising.clear()
        if self._supervisor is not None:
            self._supervisor.join(5)
        for member in self.members:
            member.wanted_down = True
            if member.alive:
                member.proc.send_signal(signal.SIGCONT)  # a stopped process cannot die
                member.proc.kill()
                member.proc.wait()
            member.stderr_file.close()
