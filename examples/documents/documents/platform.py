"""DocFlow's domain: tenants with quotas and a billing status, their documents and webhook
events. Everything a request or a job does to the tables is here, each call scoped to one
tenant (tenant isolation: no call reads or changes another tenant's rows)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .db import Database, Session

#: what a document's content says about its class, and where each class is routed
RULES = (("invoice", "invoice", "finance"), ("contract", "contract", "legal"))
OTHER = ("other", "inbox")


class UploadRefused(Exception):
    """An upload the tenant's quota or billing status does not allow."""


class ClassificationFailed(Exception):
    """The classifier could not read the document."""


@dataclass(frozen=True, slots=True)
class Usage:
    """What one tenant stores: the documents kept (not expired) and their bytes."""

    tenant: str
    documents: int
    bytes: int


def stamp(moment: datetime) -> str:
    """A time as the tables keep it: UTC, fixed width, so text order is time order."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now() -> datetime:
    return datetime.now(UTC)


class Platform:
    """The tables of the platform, and the files of its documents under `storage`."""

    def __init__(self, db: Database, storage: Path) -> None:
        self.db = db
        self.storage = storage

    # --- tenants --------------------------------------------------------------------------

    def add_tenant(
        self,
        tenant: str,
        max_documents: int = 1000,
        max_bytes: int = 10**9,
        webhook_url: str | None = None,
    ) -> None:
        with self.db.session() as db:
            db.run(
                "INSERT INTO docflow_tenants (id, max_documents, max_bytes, webhook_url) "
                "VALUES (?, ?, ?, ?)",
                (tenant, max_documents, max_bytes, webhook_url),
            )

    def tenant_ids(self) -> list[str]:
        """Every tenant, as the per-tenant schedules list them at each slot."""
        with self.db.session() as db:
            return [r["id"] for r in db.rows("SELECT id FROM docflow_tenants ORDER BY id")]

    def tenant(self, tenant: str) -> dict[str, Any]:
        return self._row("docflow_tenants", tenant)

    def start_grace_period(self, tenant: str, until: datetime) -> None:
        """A payment failed: the tenant keeps working until `until`, then turns read-only."""
        with self.db.session() as db:
            db.run(
                "UPDATE docflow_tenants SET billing_status = 'grace', grace_until = ? WHERE id = ?",
                (stamp(until), tenant),
            )

    # --- documents ------------------------------------------------------------------------

    def upload(self, tenant: str, name: str, content: str, keep_for: timedelta) -> str:
        """Store a document (pending classification); UploadRefused when the tenant is
        read-only or its uploads are blocked by the quota check."""
        info = self.tenant(tenant)
        if info["billing_status"] == "read_only":
            raise UploadRefused(f"tenant {tenant} is read-only: its payment grace period ended")
        if info["uploads_blocked"]:
            raise UploadRefused(f"tenant {tenant} is over its quota: uploads are blocked")
        document = str(uuid.uuid4())
        path = self.storage / tenant / document
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        with self.db.session() as db:
            db.run(
                "INSERT INTO docflow_documents (id, tenant, name, content, size, "
                "retention_until, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    document,
                    tenant,
                    name,
                    content,
                    len(content.encode()),
                    stamp(now() + keep_for),
                    stamp(now()),
                ),
            )
        return document

    def document(self, document: str) -> dict[str, Any]:
        return self._row("docflow_documents", document)

    def _row(self, table: str, key: str) -> dict[str, Any]:
        with self.db.session() as db:
            found = db.one(f"SELECT * FROM {table} WHERE id = ?", (key,))
        if found is None:
            raise KeyError(f"no row {key!r} in {table}")
        return found

    def documents(self, tenant: str, status: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM docflow_documents WHERE tenant = ?"
        params: list[Any] = [tenant]
        if status is not None:
            sql, params = sql + " AND status = ?", [*params, status]
        with self.db.session() as db:
            return db.rows(sql + " ORDER BY created_at, id", params)

    def file_of(self, tenant: str, document: str) -> Path:
        return self.storage / tenant / document

    # --- webhook events -------------------------------------------------------------------

    def add_event(self, tenant: str, event: str, data: dict[str, Any]) -> str:
        """An event to tell the tenant's webhook about (sent by the webhook job)."""
        event_id = str(uuid.uuid4())
        with self.db.session() as db:
            db.run(
                "INSERT INTO docflow_webhook_events (id, tenant, event, data, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (event_id, tenant, event, json.dumps(data), stamp(now())),
            )
        return event_id

    def events(self, tenant: str) -> list[dict[str, Any]]:
        with self.db.session() as db:
            return db.rows(
                "SELECT * FROM docflow_webhook_events WHERE tenant = ? ORDER BY created_at, id",
                (tenant,),
            )

    def audit(self, tenant: str) -> list[dict[str, Any]]:
        with self.db.session() as db:
            return db.rows("SELECT * FROM docflow_audit WHERE tenant = ? ORDER BY at", (tenant,))


def classify(content: str, attempts: int) -> tuple[str, str]:
    """The (simulated) classifier: (class, route) from the content. "unreadable" never
    classifies; "flaky" fails its first two attempts (a classifier outage that passes)."""
    if "unreadable" in content or ("flaky" in content and attempts < 2):
        raise ClassificationFailed("the classifier could not read the document")
    lowered = content.lower()
    for word, kind, route in RULES:
        if word in lowered:
            return kind, route
    return OTHER


def take(db: Session, table: str, tenant: str, status: str, limit: int, mark: str) -> list[str]:
    """Up to `limit` of the tenant's rows of `table` in `status`, oldest first, marked `mark`
    in the caller's transaction: a batch no later run takes again."""
    ids = [
        row["id"]
        for row in db.rows(
            f"SELECT id FROM {table} WHERE tenant = ? AND status = ? ORDER BY created_at, id "
            "LIMIT ?",
            (tenant, status, limit),
        )
    ]
    for key in ids:
        db.run(f"UPDATE {table} SET status = ? WHERE id = ?", (mark, key))
    return ids


def usage(db: Session, tenant: str) -> Usage:
    row = db.one(
        "SELECT count(*) AS n, coalesce(sum(size), 0) AS b FROM docflow_documents "
        "WHERE tenant = ? AND status <> 'expired'",
        (tenant,),
    )
    assert row is not None
    return Usage(tenant, int(row["n"]), int(row["b"]))


def record(db: Session, tenant: str, action: str, subject: str) -> None:
    """An audit line: who did what to which row, when."""
    db.run(
        "INSERT INTO docflow_audit (at, tenant, action, subject) VALUES (?, ?, ?, ?)",
        (stamp(now()), tenant, action, subject),
    )
