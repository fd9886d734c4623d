"""The README's quick start, done as it says: its `jobs.py` written to a fresh directory,
`python jobs.py` to enqueue, and the real `underway` command line to look at the jobs and run
them. Loading `jobs:app` (as every command does) must never enqueue anything."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_support import json_lines

README = Path(__file__).resolve().parents[2] / "README.md"


def quick_start_source() -> str:
    """The first ```python block of the README's "Quick start" section."""
    text = README.read_text(encoding="utf-8")
    _, found, after = text.partition("\n## Quick start\n")
    assert found, "README.md has no '## Quick start' section"
    section = after.split("\n## ", 1)[0]
    block = re.search(r"^```python\n(.*?)^```", section, re.DOTALL | re.MULTILINE)
    assert block is not None, "the Quick start section has no ```python block"
    return block.group(1)


def run(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python ARGS` in `directory`, with none of the caller's UNDERWAY_* settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("UNDERWAY_") and k not in ("FORCE_COLOR", "COLUMNS")
    }
    return subprocess.run(
        [sys.executable, *args],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def listed(directory: Path) -> list[dict[str, Any]]:
    """Every job, as `underway jobs jobs:app list --json` shows it, oldest first."""
    result = run(directory, "-m", "underway", "jobs", "jobs:app", "list", "--json")
    assert result.returncode == 0, result.stderr
    return sorted(json_lines(result.stdout), key=lambda job: str(job["id"]))


def burst(directory: Path) -> None:
    result = run(directory, "-m", "underway", "worker", "jobs:app", "--burst")
    assert result.returncode == 0, result.stderr


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "jobs.py").write_text(quick_start_source(), encoding="utf-8")
    return tmp_path


def test_loading_jobs_py_enqueues_nothing(project: Path) -> None:
    assert listed(project) == []  # a fresh database: the listing itself added nothing
    burst(project)  # a worker loads jobs.py too, and finds nothing to do
    assert listed(project) == []


def test_python_jobs_py_enqueues_the_two_resize_jobs_and_a_worker_runs_them(
    project: Path,
) -> None:
    result = run(project, "jobs.py")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "pending"  # what the README says it prints
    jobs = listed(project)
    assert [(job["task"], job["args"], job["priority"], job["status"]) for job in jobs] == [
        ("resize", {"album": "holidays", "sizes": [64, 256, 1024]}, 0, "pending"),
        ("resize", {"album": "holidays", "sizes": [64]}, 10, "pending"),
    ]
    assert [job["key"] for job in jobs] == [None, "resize:holidays"]

    burst(project)
    done = listed(project)
    assert [job["id"] for job in done] == [job["id"] for job in jobs]  # no new jobs
    assert [(job["status"], job["result"]) for job in done] == [
        ("completed", {"album": "holidays", "done": 3}),
        ("completed", {"album": "holidays", "done": 1}),
    ]
    burst(project)  # once more: loading jobs.py again still enqueues nothing
    assert [job["id"] for job in listed(project)] == [job["id"] for job in jobs]
