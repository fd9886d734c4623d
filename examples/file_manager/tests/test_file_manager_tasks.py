"""The file manager's two tasks, as seed 004 describes them: a metadata scan that fills the
index (the example's own tables) with progress, status messages and a payload, and a copy that
either puts the whole file at its destination or, cancelled mid-way, stops within a second and
leaves nothing there."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from file_manager.app import FileManager
from file_manager.index import CopyRecord, open_index

import underway
from underway import testing


def wait_for(probe: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {timeout} s waiting for {what}")
        time.sleep(0.01)
    return value


def job_of(manager: FileManager, job: underway.Job) -> underway.Job:
    current = manager.app.get_job(job.id)
    assert current is not None
    return current


def test_a_scan_indexes_every_file_with_its_size_and_checksum(
    manager: FileManager, folder: Path
) -> None:
    job = manager.scan.enqueue(root=str(folder))
    assert (job.title, job.status_message) == ("Metadata scan", "Pending")
    testing.drain(manager.app)

    done = job_of(manager, job)
    assert done.status is underway.Status.COMPLETED
    assert done.result == {"files": 3, "bytes": 6000}
    assert done.progress == 1.0 and done.status_message == "Indexed 3 files"
    assert done.payload == {"scanned": 3, "total": 3, "bytes": 6000, "current": "b.jpg"}
    with open_index(manager.index_url) as index:
        found = index.files(str(folder))
    assert [(f.path, f.size) for f in found] == [("2024/c.jpg", 3000), ("a.jpg", 1000),
                                                  ("b.jpg", 2000)]  # fmt: skip
    assert found[1].sha256 == hashlib.sha256(b"a" * 1000).hexdigest()


def test_a_rescan_forgets_files_that_are_gone(manager: FileManager, folder: Path) -> None:
    manager.scan.enqueue(root=str(folder))
    testing.drain(manager.app)
    (folder / "a.jpg").unlink()
    manager.scan.enqueue(root=str(folder))
    testing.drain(manager.app)
    with open_index(manager.index_url) as index:
        assert [f.path for f in index.files(str(folder))] == ["2024/c.jpg", "b.jpg"]


def test_a_scan_of_a_missing_folder_fails_at_once_saying_why(
    manager: FileManager, tmp_path: Path
) -> None:
    job = manager.scan.enqueue(root=str(tmp_path / "nowhere"))
    testing.drain(manager.app)
    done = job_of(manager, job)
    assert done.status is underway.Status.FAILED and done.attempt == 1
    assert done.error is not None and "is not a folder" in done.error.message


def test_a_copy_puts_the_whole_file_at_its_destination_and_logs_it(
    manager: FileManager, folder: Path, tmp_path: Path
) -> None:
    target = tmp_path / "backup"
    target.mkdir()
    ident = uuid.uuid4()  # seed 004's tasks may come with the caller's own id
    job = manager.copy.options(id=ident).enqueue(src=str(folder / "b.jpg"),
                                                 dst=str(target / "b.jpg"))  # fmt: skip
    assert job.id == ident and job.status_message == "Pending"
    testing.drain(manager.app)

    done = job_of(manager, job)
    assert done.status is underway.Status.COMPLETED, done.error
    assert done.result == {"copied": 2000, "total": 2000, "complete": True}
    assert done.status_message == "Copied b.jpg"
    assert done.payload == {"copied": 2000, "total": 2000, "file": "b.jpg"}
    assert [p.name for p in target.iterdir()] == ["b.jpg"]  # no temporary file left
    assert (target / "b.jpg").read_bytes() == b"b" * 2000
    with open_index(manager.index_url) as index:
        assert index.copies() == [CopyRecord(str(ident), str(folder / "b.jpg"),
                                             str(target / "b.jpg"), 2000)]  # fmt: skip


def test_a_copy_of_a_missing_file_fails_at_once(manager: FileManager, tmp_path: Path) -> None:
    target = tmp_path / "backup"
    target.mkdir()
    job = manager.copy.enqueue(src=str(tmp_path / "missing"), dst=str(target / "copy"))
    testing.drain(manager.app)
    done = job_of(manager, job)
    assert done.status is underway.Status.FAILED and done.attempt == 1  # no_retry_on
    assert done.error is not None and done.error.type == "FileNotFoundError"
    assert list(target.iterdir()) == []


def test_a_cancelled_copy_stops_within_a_second_and_leaves_no_partial_file(
    manager: FileManager, tmp_path: Path
) -> None:
    big = tmp_path / "video.mp4"
    big.write_bytes(b"v" * (8 * 1024 * 1024))
    target = tmp_path / "backup"
    target.mkdir()
    # Slowed to 1 MiB/s so that it is surely mid-way when the cancel comes.
    job = manager.copy.enqueue(src=str(big), dst=str(target / "video.mp4"),
                               max_bytes_per_second=1024 * 1024)  # fmt: skip
    with testing.worker(manager.app) as running:
        wait_for(lambda: (job_of(manager, job).payload or {}).get("copied", 0) > 0,
                 what="the copy to report its first bytes")  # fmt: skip
        assert [p.name for p in target.iterdir()] != []  # the temporary file, being written
        asked = time.monotonic()
        manager.app.cancel(job.id)

        def stopped() -> bool:
            return job_of(manager, job).finished and not any(target.iterdir())

        wait_for(stopped, timeout=10, what="the copy to stop and clean up")
        took = time.monotonic() - asked
        running.stop()
    done = job_of(manager, job)
    assert done.status is underway.Status.CANCELLED
    assert 0 < done.payload["copied"] < 8 * 1024 * 1024  # it was stopped mid-way
    assert took < 1.0, f"the copy took {took:.2f} s to stop"
    assert list(target.iterdir()) == []  # neither the destination nor a partial file
    with open_index(manager.index_url) as index:
        assert index.copies() == []
