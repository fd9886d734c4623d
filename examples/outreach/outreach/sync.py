"""The Smartlead sync: six steps every two hours (and at once after each boot), resumable.

A run is its job: the id stays the same when underway hands a crashed run to another worker.
Each step reads from Smartlead, then writes its effect together with the run's checkpoint in
one transaction, so after a `kill -9` the next attempt starts at the step that was cut short
and no step's effect lands twice. The fifth step (lead conversations, the long one) commits a
checkpoint per page and resumes at the page it was on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import underway

from .database import Connection
from .smartlead import Smartlead

TASK = "outreach.sync"

STEPS = (
    "email accounts, warmup and daily stats",
    "campaigns and their email accounts",
    "campaign counts",
    "email templates",
    "lead conversations",
    "AI classification",
)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """How far a run got: its last finished step and, within step 5, the next page."""

    step: int
    lead_offset: int


def checkpoint(conn: Connection, run_id: str) -> Checkpoint:
    """The run's checkpoint, made at step 0 the first time the run is seen."""
    with conn.transaction():
        conn.execute(
            "INSERT INTO sync_runs (run_id, step, lead_offset, started_at) VALUES (?, 0, 0, ?) "
            "ON CONFLICT (run_id) DO NOTHING",
            (run_id, time.time()),
        )
        row = conn.row("SELECT step, lead_offset FROM sync_runs WHERE run_id = ?", (run_id,))
    assert row is not None
    return Checkpoint(int(row[0]), int(row[1]))


def _done(conn: Connection, run_id: str, step: int, detail: str) -> None:
    """Inside the step's transaction: the step is finished, with what it did."""
    conn.execute("UPDATE sync_runs SET step = ? WHERE run_id = ?", (step, run_id))
    conn.execute("INSERT INTO sync_log (run_id, step, detail) VALUES (?, ?, ?)",
                 (run_id, step, detail))  # fmt: skip


@dataclass
class SyncRun:
    """One run of the six steps for `run_id`, reading from `smartlead`, writing to `conn`."""

    conn: Connection
    smartlead: Smartlead
    run_id: str
    page_size: int

    def steps(self) -> list[Callable[[Checkpoint], str]]:
        return [self.email_accounts, self.campaigns, self.campaign_counts, self.templates,
                self.lead_conversations, self.classification]  # fmt: skip

    def email_accounts(self, at: Checkpoint) -> str:
        accounts = self.smartlead.email_accounts()
        with self.conn.transaction():
            for a in accounts:
                self.conn.execute(
                    "INSERT INTO email_accounts (id, address, warmup_reputation, sent_today) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                    "address = excluded.address, warmup_reputation = excluded.warmup_reputation, "
                    "sent_today = excluded.sent_today",
                    (a["id"], a["from_email"], a["warmup_details"]["warmup_reputation"],
                     a["daily_sent_count"]),
                )  # fmt: skip
            _done(self.conn, self.run_id, 1, f"{len(accounts)} email accounts")
        return f"{len(accounts)} email accounts"

    def campaigns(self, at: Checkpoint) -> str:
        campaigns = self.smartlead.campaigns()
        with self.conn.transaction():
            for c in campaigns:
                self.conn.execute(
                    "INSERT INTO campaigns (id, name, status, started_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (id) DO UPDATE SET name = excluded.name, status = excluded.status",
                    (c["id"], c["name"], c["status"], time.time()),
                )
                self.conn.execute("DELETE FROM campaign_accounts WHERE campaign_id = ?", (c["id"],))
                for account in c["email_account_ids"]:
                    self.conn.execute(
                        "INSERT INTO campaign_accounts (campaign_id, account_id) VALUES (?, ?)",
                        (c["id"], account),
                    )
            _done(self.conn, self.run_id, 2, f"{len(campaigns)} campaigns")
        return f"{len(campaigns)} campaigns"

    def _campaign_ids(self) -> list[str]:
        return [str(row[0]) for row in self.conn.rows("SELECT id FROM campaigns ORDER BY id")]

    def campaign_counts(self, at: Checkpoint) -> str:
        counts = {cid: self.smartlead.analytics(cid) for cid in self._campaign_ids()}
        with self.conn.transaction():
            for cid, n in counts.items():
                self.conn.execute(
                    "UPDATE campaigns SET started_at = ?, sent = ?, replies = ?, "
                    "positive_replies = ?, bounces = ?, last_reply_at = ?, "
                    "last_positive_reply_at = ? WHERE id = ?",
                    (n["started_at"], n["sent_count"], n["reply_count"],
                     n["positive_reply_count"], n["bounce_count"], n["last_reply_at"],
                     n["last_positive_reply_at"], cid),
                )  # fmt: skip
            _done(self.conn, self.run_id, 3, f"counts of {len(counts)} campaigns")
        return f"counts of {len(counts)} campaigns"

    def templates(self, at: Checkpoint) -> str:
        found = {cid: self.smartlead.sequences(cid) for cid in self._campaign_ids()}
        with self.conn.transaction():
            for cid, sequences in found.items():
                for s in sequences:
                    self.conn.execute(
                        "INSERT INTO templates (campaign_id, seq, subject) VALUES (?, ?, ?) "
                        "ON CONFLICT (campaign_id, seq) DO UPDATE SET subject = excluded.subject",
                        (cid, s["seq_number"], s["subject"]),
                    )
            total = sum(len(s) for s in found.values())
            _done(self.conn, self.run_id, 4, f"{total} templates")
        return f"{total} templates"

    def lead_conversations(self, at: Checkpoint) -> str:
        offset: int | None = at.lead_offset
        pages = 0
        while offset is not None:
            leads, following = self.smartlead.leads(offset, self.page_size)
            with self.conn.transaction():
                for lead in leads:
                    self.conn.execute(
                        # A conversation that changed is classified again in step 6.
                        "INSERT INTO leads (id, campaign_id, conversation) VALUES (?, ?, ?) "
                        "ON CONFLICT (id) DO UPDATE SET conversation = excluded.conversation, "
                        "category = CASE WHEN leads.conversation = excluded.conversation "
                        "THEN leads.category END",
                        (lead["id"], lead["campaign_id"], lead["conversation"]),
                    )
                self.conn.execute(
                    "INSERT INTO sync_log (run_id, step, detail) VALUES (?, 5, ?)",
                    (self.run_id, f"page at offset {offset}: {len(leads)} leads"),
                )
                self.conn.execute("UPDATE sync_runs SET lead_offset = ? WHERE run_id = ?",
                                  (following or 0, self.run_id))  # fmt: skip
                if following is None:
                    _done(self.conn, self.run_id, 5, "lead conversations")
            offset, pages = following, pages + 1
        return f"{pages} pages of leads"

    def classification(self, at: Checkpoint) -> str:
        # Resumable by its nature: a lead classified before a crash has its category.
        unclassified = self.conn.rows(
            "SELECT id, conversation FROM leads WHERE category IS NULL ORDER BY id"
        )
        for lead_id, text in unclassified:
            category = self.smartlead.classify(text)
            with self.conn.transaction():
                self.conn.execute("UPDATE leads SET category = ? WHERE id = ?",
                                  (category, lead_id))  # fmt: skip
        with self.conn.transaction():
            _done(self.conn, self.run_id, 6, f"{len(unclassified)} leads classified")
        return f"{len(unclassified)} leads classified"


def run(ctx: underway.Context, sync: SyncRun) -> dict[str, Any]:
    """Run the steps after the checkpoint, reporting each; returns what each one did now."""
    at = checkpoint(sync.conn, sync.run_id)
    did: list[dict[str, Any]] = []
    for number, (name, step) in enumerate(zip(STEPS, sync.steps(), strict=True), start=1):
        if number <= at.step:
            continue
        ctx.report_progress((number - 1) / len(STEPS), f"step {number} of 6: {name}")
        did.append({"step": number, "did": step(at)})
    with sync.conn.transaction():
        sync.conn.execute("UPDATE sync_runs SET finished_at = ? WHERE run_id = ?",
                          (time.time(), sync.run_id))  # fmt: skip
    ctx.report_progress(1.0, "synced")
    return {"resumed_after_step": at.step, "steps": did}


def declare(app: underway.App, deps: dict[str, Any], page_size: int) -> underway.Task[..., Any]:
    # At once after every boot (the seed's startup loop), then every two hours; a slot due
    # while a run is unfinished (a crashed one waiting for its rescue) is skipped.
    @app.periodic(every=timedelta(hours=2), first_after_boot=0, overlap="skip", name=TASK,
                  deps=deps)  # fmt: skip
    def sync(ctx: underway.Context) -> dict[str, Any]:
        return run(ctx, SyncRun(ctx.deps.db, ctx.deps.smartlead, str(ctx.job.id), page_size))

    return sync
