"""The one row mapper (stores/sql.py): the same Job from a SQLite row (text ids, epoch times,
JSON text, integer flags) and from a PostgreSQL row (values the driver already converted)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from underway.model import Job, JobError, Status
from underway.stores.sql import JOB_COLUMNS, Values, job_mapper, schedule_state
from underway.stores.sqlite.store import VALUES as SQLITE

NATIVE = Values(dump_cursor=uuid.UUID)  # PostgreSQL's: the driver returns Python values
T0 = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
ID = uuid.UUID("01923456-789a-7bcd-8ef0-123456789abc")


def native_row(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": ID, "task": "mail.send", "title": "Send", "args": {"to": ["a", 1]},
        "queue": "mail", "priority": 3, "status": "failed", "attempt": 2, "max_attempts": 3,
        "run_at": T0, "created_at": T0, "progress": 0.5, "status_message": "half",
        "payload": {"seen": 5}, "result": None, "error_message": "boom",
        "error_type": "ValueError", "error_traceback": None, "tenant": "acme",
        "callback_url": "https://example.com/h", "key": "k", "started_at": T0,
        "completed_at": None, "cancel_requested": True, "schedule": None, "rescues": 1,
        "lease_token": None, "worker_id": None, "updated_at": T0, "slot": T0,
    }  # fmt: skip
    row.update(changes)
    return row


def as_sqlite(row: dict[str, Any]) -> dict[str, Any]:
    """The same row as SQLite stores it."""
    out = dict(row, id=str(row["id"]), cancel_requested=int(row["cancel_requested"]))
    for column in ("run_at", "created_at", "started_at", "completed_at", "updated_at", "slot"):
        out[column] = None if row[column] is None else row[column].timestamp()
    for column in ("args", "payload", "result"):
        out[column] = None if row[column] is None else json.dumps(row[column])
    return out


def expected(row: dict[str, Any]) -> Job:
    error = None
    if row["error_message"] is not None:
        error = JobError(
            row["error_message"], row["error_type"] or "", row["error_traceback"] or ""
        )
    fields = {column: row[column] for column, _ in JOB_COLUMNS}
    return Job(**{**fields, "status": Status(row["status"]), "error": error})


def test_both_backends_map_a_row_to_the_same_job() -> None:
    row = native_row()
    assert job_mapper(NATIVE)(row) == expected(row)
    assert job_mapper(SQLITE)(as_sqlite(row)) == expected(row)


def test_nulls_and_a_missing_error_map_alike() -> None:
    row = native_row(payload=None, progress=None, error_message=None, started_at=None,
                     cancel_requested=False, status="pending", slot=None)  # fmt: skip
    for values, shaped in ((NATIVE, row), (SQLITE, as_sqlite(row))):
        job = job_mapper(values)(shaped)
        assert job == expected(row)
        assert job.error is None and job.payload is None and job.cancel_requested is False
        assert job.slot is None


def test_a_mapper_is_compiled_once_per_backend() -> None:
    assert job_mapper(SQLITE) is job_mapper(SQLITE)
    assert job_mapper(NATIVE) is not job_mapper(SQLITE)


def test_schedule_rows_map_alike() -> None:
    native = {"name": "s", "task": "t", "rule": "every 60s", "anchor": T0, "last_slot": None,
              "next_run": T0, "paused": False, "run_count": 4, "tenant": "acme",
              "definition": None, "tenants": '["acme", "globex"]'}  # fmt: skip
    sqlite = dict(native, anchor=T0.timestamp(), next_run=T0.timestamp(), paused=0)
    assert schedule_state(native, NATIVE) == schedule_state(sqlite, SQLITE)
    assert schedule_state(sqlite, SQLITE).anchor == T0
    assert schedule_state(sqlite, SQLITE).tenant == "acme"
    assert schedule_state(sqlite, SQLITE).tenants == '["acme", "globex"]'
