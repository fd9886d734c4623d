"""What the command-line tests share: an app module written into a temporary directory (loaded
in the test process too, to enqueue and check), a way to run `python -m underway` against it as
a subprocess, and readers for what the commands print."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import underway


@dataclass
class CliApp:
    """The app module `name` in `dir`, loaded in this process too (to enqueue and check),
    and a way to run the command line against it."""

    dir: Path
    module: ModuleType
    db_name: str = "jobs.db"

    @property
    def app(self) -> underway.App:
        app: underway.App = self.module.app
        return app

    @property
    def db(self) -> Path:
        return self.dir / self.db_name

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("UNDERWAY_") and k not in ("FORCE_COLOR", "COLUMNS")
        }
        env.update(extra)
        return env

    def run(
        self, *args: str, timeout: float = 60, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "underway", *args],
            cwd=self.dir,
            env=env or self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "underway", *args],
            cwd=self.dir,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def load_cli_app(directory: Path, name: str, source: str, db_name: str = "jobs.db") -> CliApp:
    """Write `source` as `directory/name.py` and load it under a name unique to this test (each
    test has its own file and database)."""
    path = directory / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"{name}_{abs(hash(directory))}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return CliApp(directory, module, db_name)


def stop(proc: subprocess.Popen[str], timeout: float = 30) -> tuple[str, str]:
    """SIGTERM the process and wait for it to end; returns its stdout and stderr. A process
    that does not end in `timeout` seconds is killed and the test fails."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"still running {timeout} s after SIGTERM:\n{err}") from None


def ids_in(text: str) -> set[str]:
    found = set()
    for word in text.split():
        try:
            found.add(str(uuid.UUID(word)))
        except ValueError:
            continue
    return found


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def assert_clean_error(result: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


def table_rows(text: str) -> dict[str, list[str]]:
    """The rows of a boxed rich table, by their first cell."""
    rows = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("│┃").split("│")]
        if len(cells) > 1 and "┃" not in line:
            rows[cells[0]] = cells[1:]
    return rows
