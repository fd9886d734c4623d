"""DocFlow's seven background jobs on underway, with the seed's cron rules (minutely, hourly,
daily). The per-tenant ones are schedules run once per tenant (`tenants=` lists them at each
slot), so every job carries its tenant; fan-outs are `enqueue_many` of prepared calls, each
with its own tenant and key."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Unpack

import httpx

import underway
from underway import Backoff, Context, OptionArgs, Task

from .db import Session
from .platform import ClassificationFailed, Platform, classify, now, record, stamp, take, usage

#: the seed's rules: Cron.Minutely, Cron.Hourly, Cron.Daily
MINUTELY, HOURLY, DAILY = "* * * * *", "0 * * * *", "0 0 * * *"


@dataclass(frozen=True, slots=True)
class Outside:
    """Where the outside services listen."""

    billing_url: str
    notifications_url: str


class DocFlowJobs:
    """The jobs, each a method registered as an underway task; `register` declares them."""

    def __init__(self, platform: Platform, outside: Outside, retry: Backoff | None = None) -> None:
        self.platform = platform
        self.outside = outside
        self.retry = retry or Backoff()

    def register(self, app: underway.App) -> None:
        """Declare the tasks and their schedules on `app`."""
        each = self.platform.tenant_ids  # the tenants, listed again at each slot
        session = {"db": self.platform.db.session}  # a connection per job, committed after it
        self.reclassify = app.task(name="docflow.reclassify", max_attempts=3, retry=self.retry)(
            self.reclassify_document
        )
        self.notify = app.task(name="docflow.notify_suspension", retry=self.retry, max_attempts=5)(
            self.notify_suspension
        )
        self.deliver = app.task(name="docflow.deliver_webhook")(self.deliver_webhook)
        app.periodic(
            cron=MINUTELY,
            tenants=each,
            args={"batch_size": 100},
            name="docflow.classify",
            deps=session,
        )(self.classify_documents)
        app.periodic(
            cron=MINUTELY,
            tenants=each,
            args={"max_retries": 3, "batch_size": 50},
            name="docflow.retry_failed",
        )(self.retry_failed_documents)
        app.periodic(
            cron=HOURLY, tenants=each, name="docflow.report_usage", retry=self.retry, max_attempts=5
        )(self.report_usage)
        app.periodic(cron=DAILY, tenants=each, name="docflow.cleanup", deps=session)(self.cleanup)
        app.periodic(cron=HOURLY, tenants=each, name="docflow.check_quota", deps=session)(
            self.check_quota
        )
        app.periodic(cron=DAILY, name="docflow.suspend_tenants")(self.suspend_tenants)
        app.periodic(
            cron=MINUTELY, tenants=each, args={"batch_size": 100}, name="docflow.send_webhooks"
        )(self.send_webhooks)

    # --- 1. document classification, in batches ------------------------------------------

    def classify_documents(self, ctx: Context, batch_size: int = 100) -> int:
        """Classify and route up to `batch_size` of the tenant's pending documents, oldest
        first; one the classifier cannot read is marked failed (the retry job takes it)."""
        db, tenant = ctx.deps.db, _tenant(ctx)
        pending = db.rows(
            "SELECT id, content, attempts FROM docflow_documents WHERE tenant = ? "
            "AND status = 'pending' ORDER BY created_at, id LIMIT ?",
            (tenant, batch_size),
        )
        for doc in pending:
            try:
                kind, route = classify(doc["content"], doc["attempts"])
            except ClassificationFailed:
                db.run(
                    "UPDATE docflow_documents SET status = 'failed', attempts = attempts + 1 "
                    "WHERE id = ?",
                    (doc["id"],),
                )
                continue
            db.run(
                "UPDATE docflow_documents SET status = 'classified', classification = ?, "
                "route = ?, attempts = attempts + 1 WHERE id = ?",
                (kind, route, doc["id"]),
            )
        return len(pending)

    # --- 2. failed documents: retried, then the dead letters -----------------------------

    def retry_failed_documents(
        self, ctx: Context, max_retries: int = 3, batch_size: int = 50
    ) -> int:
        """Hand up to `batch_size` failed documents to `docflow.reclassify`, one job each,
        retried by underway up to `max_retries` times; a job that fails them all ends in
        underway's dead letters (`failed`) and its document `dead_letter`."""
        tenant = _tenant(ctx)
        with self.platform.db.session() as db:
            failed = take(db, "docflow_documents", tenant, "failed", batch_size, "retrying")
        fan_out(self.reclassify, tenant, failed, "reclassify", max_attempts=max_retries)
        return len(failed)

    def reclassify_document(self, ctx: Context, document: str) -> str:
        """One more try at one document; raising lets underway retry it with backoff."""
        with self.platform.db.session() as db:
            doc = _owned(db, ctx, "docflow_documents", document, "content, attempts")
            try:
                kind, route = classify(doc["content"], doc["attempts"])
            except ClassificationFailed:
                last = ctx.job.attempt >= ctx.job.max_attempts
                db.run(
                    "UPDATE docflow_documents SET attempts = attempts + 1, status = ? WHERE id = ?",
                    ("dead_letter" if last else "retrying", document),
                )
                failed = True
            else:
                db.run(
                    "UPDATE docflow_documents SET status = 'classified', classification = ?, "
                    "route = ?, attempts = attempts + 1 WHERE id = ?",
                    (kind, route, document),
                )
                failed = False
        if failed:  # after the session committed the count: the raise must not roll it back
            raise ClassificationFailed(f"document {document} could not be classified")
        return kind

    # --- 3. usage reporting, per tenant, to the billing service --------------------------

    def report_usage(self, ctx: Context) -> dict[str, Any]:
        """POST the tenant's documents and bytes for this hour to the billing service; the
        idempotency key (tenant, slot) makes a retried report count once."""
        tenant = _tenant(ctx)
        with self.platform.db.session() as db:
            used = usage(db, tenant)
        period = (ctx.slot or now()).isoformat()
        report = {
            "tenant": tenant,
            "period": period,
            "documents": used.documents,
            "bytes": used.bytes,
        }
        headers = {"idempotency-key": f"usage:{tenant}:{period}"}
        httpx.post(
            f"{self.outside.billing_url}/usage", json=report, headers=headers, timeout=10
        ).raise_for_status()
        return report

    # --- 4. retention cleanup ------------------------------------------------------------

    def cleanup(self, ctx: Context) -> int:
        """Expire the tenant's documents past their retention date: mark them, delete their
        files, and keep an audit line for each."""
        db, tenant = ctx.deps.db, _tenant(ctx)
        expired = db.rows(
            "SELECT id FROM docflow_documents WHERE tenant = ? AND status <> "
            "'expired' AND retention_until < ?",
            (tenant, stamp(now())),
        )
        for doc in expired:
            db.run("UPDATE docflow_documents SET status = 'expired' WHERE id = ?", (doc["id"],))
            self.platform.file_of(tenant, doc["id"]).unlink(missing_ok=True)
            record(db, tenant, "expired", doc["id"])
        return len(expired)

    # --- 5. quota check ------------------------------------------------------------------

    def check_quota(self, ctx: Context) -> bool:
        """Count what the tenant stores, and block its uploads at its quota (or unblock them
        once it is back under); returns whether uploads are blocked."""
        db, tenant = ctx.deps.db, _tenant(ctx)
        used = usage(db, tenant)
        quota = db.one(
            "SELECT max_documents, max_bytes, uploads_blocked FROM docflow_tenants WHERE id = ?",
            (tenant,),
        )
        assert quota is not None
        blocked = bool(used.documents >= quota["max_documents"] or used.bytes >= quota["max_bytes"])
        db.run(
            "UPDATE docflow_tenants SET used_documents = ?, used_bytes = ?, "
            "uploads_blocked = ? WHERE id = ?",
            (used.documents, used.bytes, int(blocked), tenant),
        )
        if blocked != bool(quota["uploads_blocked"]):
            record(db, tenant, "uploads blocked" if blocked else "uploads unblocked", tenant)
        return blocked

    # --- 6. tenant suspension ------------------------------------------------------------

    def suspend_tenants(self) -> list[str]:
        """Turn tenants whose grace period ended read-only, then notify each (one job per
        tenant, carrying it, retried on its own)."""
        with self.platform.db.session() as db:
            due = [
                r["id"]
                for r in db.rows(
                    "SELECT id FROM docflow_tenants WHERE billing_status = 'grace' AND "
                    "grace_until < ? ORDER BY id",
                    (stamp(now()),),
                )
            ]
            for tenant in due:
                db.run(
                    "UPDATE docflow_tenants SET billing_status = 'read_only' WHERE id = ?",
                    (tenant,),
                )
                record(db, tenant, "suspended", tenant)
        self.notify.enqueue_many(
            self.notify.options(tenant=t, key=f"suspended:{t}").prepare(t) for t in due
        )
        return due

    def notify_suspension(self, tenant: str) -> None:
        notice = {
            "tenant": tenant,
            "kind": "suspended",
            "message": "Your payment grace period ended: the account is read-only.",
        }
        httpx.post(
            f"{self.outside.notifications_url}/notifications", json=notice, timeout=10
        ).raise_for_status()

    # --- 7. webhooks, signed by underway's callbacks -------------------------------------

    def send_webhooks(self, ctx: Context, batch_size: int = 100) -> int:
        """Hand up to `batch_size` pending events to `docflow.deliver_webhook`, one job each
        with the tenant's webhook URL as its `callback_url`: underway signs the completion
        callback (Standard Webhooks, HMAC-SHA256) and delivers it, retrying until it lands."""
        tenant = _tenant(ctx)
        with self.platform.db.session() as db:
            url = self.platform.tenant(tenant)["webhook_url"]
            mark = "queued" if url else "no endpoint"
            events = take(db, "docflow_webhook_events", tenant, "pending", batch_size, mark)
        if url:
            fan_out(self.deliver, tenant, events, "webhook", callback_url=url)
        return len(events)

    def deliver_webhook(self, ctx: Context, event: str) -> dict[str, Any]:
        """The event as the webhook's payload: the job's result, which the signed callback
        carries as `data.result`."""
        with self.platform.db.session() as db:
            row = _owned(db, ctx, "docflow_webhook_events", event, "event, data")
            db.run("UPDATE docflow_webhook_events SET status = 'sent' WHERE id = ?", (event,))
        return {"id": event, "event": row["event"], "data": json.loads(row["data"])}


def fan_out(
    task: Task[[str], Any], owner: str, ids: list[str], prefix: str,
    **options: Unpack[OptionArgs],
) -> None:  # fmt: skip
    """One job per id, each carrying the tenant `owner` and keyed by its id (an id handed
    twice while its job is unfinished is one job), all enqueued in one transaction."""
    common = task.options(**options)
    task.enqueue_many(
        common.options(tenant=owner, key=f"{prefix}:{each}").prepare(each) for each in ids
    )


def _owned(db: Session, ctx: Context, table: str, key: str, columns: str) -> dict[str, Any]:
    """The row `key` of `table` if it belongs to the job's tenant; another tenant's row is
    as good as missing (PermanentError: retrying cannot help)."""
    row = db.one(f"SELECT {columns} FROM {table} WHERE id = ? AND tenant = ?", (key, _tenant(ctx)))
    if row is None:
        raise underway.PermanentError(f"no row {key} in {table} for tenant {ctx.job.tenant}")
    return row


def _tenant(ctx: Context) -> str:
    """The tenant a job works for: every DocFlow job carries one."""
    if ctx.job.tenant is None:
        raise underway.PermanentError("a DocFlow job runs for a tenant; enqueue it with tenant=")
    return ctx.job.tenant
