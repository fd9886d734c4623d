"""A SQLite store on a disk that fills up, then goes read-only: each write fails with an error
that says what happened and what to do, never a raw sqlite3.OperationalError, and nothing of
the failed call is half-written. The disk is a small tmpfs the test mounts (it needs root, as
in CI; elsewhere it is skipped unless CI=true, where a missing mount is a failure)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import underway


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"cannot mount a tmpfs for the disk tests: {done.stderr.strip()}")
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_then_read_only_disk_gives_errors_that_say_so(small_disk: Path) -> None:
    app = underway.App(f"sqlite:///{small_disk / 'jobs.db'}")

    @app.task()
    def note(text: str) -> None: ...

    app.migrate()
    kept = note.enqueue("before the disk filled")
    with pytest.raises(underway.StoreError, match="is full") as full:
        for _ in range(10_000):  # 2 MB: a few hundred of these
            note.enqueue_many([{"text": "x" * 4000}] * 20)
    assert "free some space" in str(full.value)
    assert not isinstance(full.value.__cause__, Exception)  # said plainly, not chained

    counted = app.stats().total  # reading still works, and no batch was half-written
    assert counted % 20 == 1
    assert app.get_job(kept.id) is not None

    app.close()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    app = underway.App(f"sqlite:///{small_disk / 'jobs.db'}")
    app.task(name=note.name)(lambda text: None)
    with pytest.raises(underway.StoreError, match="cannot be written") as read_only:
        app.cancel(kept.id)
    assert "read-only" in str(read_only.value)
    app.close()
