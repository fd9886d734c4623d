"""The two tasks of seed 004, as underway task classes: a display name (`title`), the initial
status message "Pending", and a fresh dependency scope per run (the file index, opened for
the job and committed or rolled back after it)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import underway

from .index import CopyRecord, FileEntry, FileIndex

#: bytes read and written per step: a cancel is noticed between two steps
CHUNK = 256 * 1024


class MetadataScan(underway.TaskClass):
    """Walk a folder, record each file's size, modification time and SHA-256 in the index."""

    name = "files.metadata_scan"
    title = "Metadata scan"
    status_message = "Pending"
    max_attempts = 2

    def __init__(self, index: FileIndex) -> None:
        self.index = index

    def execute(self, ctx: underway.Context, root: str) -> dict[str, int]:
        folder = Path(root)
        if not folder.is_dir():
            raise underway.PermanentError(f"{root} is not a folder")
        paths = sorted(p for p in folder.rglob("*") if p.is_file())
        entries: list[FileEntry] = []
        scanned_bytes = 0
        ctx.report_progress(0.0, f"Found {len(paths)} files")
        for number, path in enumerate(paths, start=1):
            if ctx.cancelled:
                return {"files": len(entries), "bytes": scanned_bytes}
            entry = _metadata(folder, path)
            entries.append(entry)
            scanned_bytes += entry.size
            ctx.report_progress(number / len(paths), f"Scanned {number} of {len(paths)} files")
            ctx.set_payload({"scanned": number, "total": len(paths), "bytes": scanned_bytes,
                             "current": entry.path})  # fmt: skip
        self.index.record_scan(root, str(ctx.job.id), entries)
        ctx.report_status(f"Indexed {len(entries)} files")
        return {"files": len(entries), "bytes": scanned_bytes}


class CopyOperation(underway.TaskClass):
    """Copy one file. It is written under a temporary name beside the destination and renamed
    at the end, so the destination holds either nothing or the whole file: a cancel (or a
    crash) mid-way leaves no partial file there."""

    name = "files.copy"
    title = "Copy operation"
    status_message = "Pending"
    max_attempts = 3
    no_retry_on = (FileNotFoundError, IsADirectoryError)

    def __init__(self, index: FileIndex) -> None:
        self.index = index

    def execute(
        self, ctx: underway.Context, src: str, dst: str, max_bytes_per_second: int | None = None
    ) -> dict[str, Any]:
        source, target = Path(src), Path(dst)
        total = source.stat().st_size
        partial = target.with_name(f".{target.name}.{ctx.job.id}.partial")
        ctx.report_progress(0.0, f"Copying {source.name}")
        try:
            copied = _copy(ctx, source, partial, total, max_bytes_per_second)
            if ctx.cancelled:
                return {"copied": copied, "total": total, "complete": False}
            os.replace(partial, target)  # atomic: the whole file appears at once
        finally:
            partial.unlink(missing_ok=True)  # a cancel, an error: nothing half-written stays
        self.index.record_copy(CopyRecord(str(ctx.job.id), src, dst, total))
        ctx.report_status(f"Copied {source.name}")
        return {"copied": copied, "total": total, "complete": True}


def _copy(ctx: underway.Context, source: Path, partial: Path, total: int, rate: int | None) -> int:
    """Copy `source` to `partial` step by step until done or cancelled; the bytes copied."""
    copied = 0
    with source.open("rb") as reader, partial.open("wb") as writer:
        for chunk in iter(lambda: reader.read(CHUNK), b""):
            if ctx.cancelled:
                break
            writer.write(chunk)
            copied += len(chunk)
            ctx.report_progress(copied / total if total else 1.0,
                                f"Copied {copied:,} of {total:,} bytes")  # fmt: skip
            ctx.set_payload({"copied": copied, "total": total, "file": source.name})
            if rate:
                ctx.wait_cancelled(len(chunk) / rate)  # wakes at once on a cancel
    return copied


def _metadata(root: Path, path: Path) -> FileEntry:
    digest = hashlib.sha256()
    with path.open("rb") as reader:
        for chunk in iter(lambda: reader.read(CHUNK), b""):
            digest.update(chunk)
    stat = path.stat()
    relative = path.relative_to(root).as_posix()
    return FileEntry(str(root), relative, stat.st_size, stat.st_mtime, digest.hexdigest())
