"""A SQLite file replaced or deleted under a running process: the process says so on every
call, instead of working on silently in the old file while jobs go to the new one."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

import underway
from underway.stores.sqlite import filewatch


@pytest.fixture(autouse=True)
def check_at_every_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(filewatch, "FILE_CHECK_SECONDS", 0.0)


def make(path: Path) -> tuple[underway.App, underway.Task[[], None]]:
    app = underway.App(f"sqlite:///{path}")

    @app.task(name="plain")
    def plain() -> None: ...

    app.migrate()
    return app, plain


def test_a_replaced_file_is_refused_naming_what_happened(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    app, plain = make(path)
    plain.enqueue()
    other, other_plain = make(tmp_path / "other.db")
    fresh = other_plain.enqueue()
    other.close()
    with contextlib.closing(sqlite3.connect(tmp_path / "other.db")) as conn:
        conn.execute(f"VACUUM INTO '{tmp_path / 'backup.db'}'")
    os.replace(tmp_path / "backup.db", path)  # a restore from a backup, say
    with pytest.raises(underway.StoreError, match="was replaced while this process had it open"):
        app.get_job(fresh.id)
    with pytest.raises(underway.StoreError, match="restart this process"):
        plain.enqueue()  # every call, not only the first
    app.close()


def test_a_deleted_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    app, plain = make(path)
    plain.enqueue()
    shutil.move(path, tmp_path / "elsewhere.db")
    with pytest.raises(underway.StoreError, match="was deleted"):
        app.stats()
    app.close()


def test_a_chdir_does_not_move_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    app, plain = make(Path("jobs.db"))  # a relative path
    job = plain.enqueue()
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    assert app.get_job(job.id) is not None
    app.close()
