"""A SQLite store on a disk that fills up, then goes read-only: each write fails with an error
that says what happened and what to do, never a raw sqlite3.OperationalError, and nothing of
the failed call is half-written. The disk is a small tmpfs the test mounts (it needs root, as
in CI; elsewhere it is skipped unless CI=true, where a missing mount is a failure)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
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


def test_a_burst_worker_on_a_store_it_cannot_write_ends_and_says_why(
    small_disk: Path, tmp_path: Path
) -> None:
    # A daemon waits an outage out; a burst worker (a cron job, a CI step) used to wait
    # forever too, retrying its claims, and never exit.
    db = small_disk / "jobs.db"
    (tmp_path / "burstapp.py").write_text(
        "import underway\n"
        f"app = underway.App('sqlite:///{db}')\n"
        "@app.task(name='plain')\n"
        "def plain() -> None: ...\n"
    )
    app = underway.App(f"sqlite:///{db}")
    plain = app.task(name="plain")(lambda: None)
    app.migrate()
    plain.enqueue_many([{}] * 50)
    # This app stays open, so its -wal and -shm files stay: the worker can open the store,
    # and only its writes fail.
    with contextlib.suppress(OSError), (small_disk / "filler").open("wb") as filler:
        while True:  # fill the disk to its last byte
            filler.write(b"\0" * 65536)
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNDERWAY_")}
    env.update(UNDERWAY_LEASE_SECONDS="2", UNDERWAY_HEARTBEAT_SECONDS="0.3",
               UNDERWAY_POLL_SECONDS="0.2", PYTHONPATH=str(tmp_path))  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "underway", "worker", "burstapp:app", "--burst"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    app.close()
    assert done.returncode != 0, done.stderr
    assert "the burst worker gives up" in done.stderr, done.stderr
    assert "is full" in done.stderr, done.stderr


def test_a_store_on_a_full_disk_says_so_when_it_cannot_even_open(small_disk: Path) -> None:
    app = underway.App(f"sqlite:///{small_disk / 'jobs.db'}")
    app.migrate()
    app.close()
    with contextlib.suppress(OSError), (small_disk / "filler").open("wb") as filler:
        while True:
            filler.write(b"\0" * 65536)
    again = underway.App(f"sqlite:///{small_disk / 'jobs.db'}")
    with pytest.raises(underway.StoreError, match="full or failing"):
        again.stats()


def test_a_store_on_a_read_only_disk_says_so_when_it_opens(small_disk: Path) -> None:
    app = underway.App(f"sqlite:///{small_disk / 'jobs.db'}")
    app.migrate()
    app.close()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    again = underway.App(f"sqlite:///{small_disk / 'jobs.db'}")
    with pytest.raises(underway.StoreError, match="is read-only") as refused:
        again.stats()
    assert "not a usable SQLite database" not in str(refused.value)
