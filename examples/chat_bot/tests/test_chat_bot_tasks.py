"""The six maintenance tasks of seed 003, each doing its work on the bot's own tables, files
and services: run by a burst worker, as the scheduler's jobs would be."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from chat_bot.app import ChatBot
from chat_bot.db import open_database
from chat_bot.services import ServiceDouble
from chat_bot.settings import MaintenanceSettings

import underway
from underway import testing

DAY = 86400.0


def finished(bot: ChatBot, job: underway.Job) -> underway.Job:
    testing.drain(bot.app)
    done = bot.app.get_job(job.id)
    assert done is not None and done.finished
    return done


def test_database_cleanup_removes_stale_transactions_and_old_audit_rows(bot: ChatBot) -> None:
    now = time.time()
    with open_database(bot.database_url) as db:
        for ident, status, age in [("t-old-pending", "pending", 40), ("t-old-paid", "paid", 40),
                                   ("t-new-pending", "pending", 1)]:  # fmt: skip
            at = now - age * DAY
            db.run("INSERT INTO cb_transactions VALUES (%s, %s, %s)", (ident, status, at))
        for ident, age in [("a-old", 31), ("a-new", 29)]:
            db.run("INSERT INTO cb_audit VALUES (%s, %s, %s)", (ident, "login", now - age * DAY))

    done = finished(bot, bot.database_cleanup.enqueue())
    assert done.status is underway.Status.COMPLETED, done.error
    assert done.result == {"transactions": 1, "audit": 1}
    with open_database(bot.database_url) as db:
        kept = db.run("SELECT id FROM cb_transactions ORDER BY id").fetchall()
        assert [row[0] for row in kept] == ["t-new-pending", "t-old-paid"]
        assert [row[0] for row in db.run("SELECT id FROM cb_audit").fetchall()] == ["a-new"]


def test_cache_and_session_cleanup_remove_only_what_expired(bot: ChatBot) -> None:
    now = time.time()
    with open_database(bot.database_url) as db:
        db.run("INSERT INTO cb_cache VALUES (%s, %s, %s)", ("reply:1", "hi", now - 5))
        db.run("INSERT INTO cb_cache VALUES (%s, %s, %s)", ("reply:2", "hello", now + 600))
        db.run("INSERT INTO cb_sessions VALUES (%s, %s, %s)", ("s1", 7, now - 1))
        db.run("INSERT INTO cb_sessions VALUES (%s, %s, %s)", ("s2", 8, now - 1))
        db.run("INSERT INTO cb_sessions VALUES (%s, %s, %s)", ("s3", 9, now + 600))

    assert finished(bot, bot.cache_cleanup.enqueue()).result == {"expired": 1}
    assert finished(bot, bot.session_cleanup.enqueue()).result == {"expired": 2}
    with open_database(bot.database_url) as db:
        assert [r[0] for r in db.run("SELECT key FROM cb_cache").fetchall()] == ["reply:2"]
        assert [r[0] for r in db.run("SELECT id FROM cb_sessions").fetchall()] == ["s3"]


def write(path: Path, size: int, hours_old: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    moment = time.time() - hours_old * 3600
    os.utime(path, (moment, moment))


def test_document_cleanup_drops_old_outputs_then_the_oldest_until_under_quota(
    bot: ChatBot, documents: Path
) -> None:
    mib = 1024 * 1024
    write(documents / "ocr" / "stale.txt", 1000, hours_old=30)  # older than 24 h
    write(documents / "a.pdf", mib // 2, hours_old=5)  # the oldest of the recent ones
    write(documents / "b.pdf", mib // 2, hours_old=3)
    write(documents / "c.pdf", mib // 4, hours_old=1)  # 1.25 MiB recent, quota 1 MiB

    done = finished(bot, bot.document_storage_cleanup.enqueue())
    assert done.status is underway.Status.COMPLETED, done.error
    assert done.result == {"expired": 1, "over_quota": 1, "bytes": mib * 3 // 4,
                           "complete": True}  # fmt: skip
    assert sorted(p.name for p in documents.rglob("*") if p.is_file()) == ["b.pdf", "c.pdf"]
    assert done.status_message == f"Removed 2 files, {mib * 3 // 4:,} bytes kept"


def test_document_cleanup_of_a_missing_folder_fails_at_once_saying_what_to_set(
    bot: ChatBot, tmp_path: Path
) -> None:
    done = finished(bot, bot.document_storage_cleanup.enqueue(folder=str(tmp_path / "none")))
    assert done.status is underway.Status.FAILED and done.attempt == 1
    assert done.error is not None and "set DOCUMENTS_DIR" in done.error.message


def test_health_check_records_each_service_and_the_database(
    bot: ChatBot, database_url: str, documents: Path, service: ServiceDouble
) -> None:
    down = ServiceDouble().start()
    down.fail()
    try:
        settings = MaintenanceSettings(services={"rate_limiter": service.url, "ocr": down.url},
                                       documents_dir=str(documents))  # fmt: skip
        other = ChatBot(database_url, settings)
        try:
            done = finished(other, other.health_check.enqueue())
        finally:
            other.close()
    finally:
        down.stop()
    assert done.status is underway.Status.COMPLETED, done.error
    assert done.result == {"rate_limiter": True, "ocr": False, "database": True}
    with open_database(bot.database_url) as db:
        seen = {h.service: (h.healthy, h.detail) for h in db.health()}
    assert seen == {"database": (True, "ok"), "ocr": (False, "answered 503"),
                    "rate_limiter": (True, "ok")}  # fmt: skip


def test_metrics_collection_keeps_each_components_stats_as_history(bot: ChatBot) -> None:
    with open_database(bot.database_url) as db:
        db.run("INSERT INTO cb_sessions VALUES (%s, %s, %s)", ("s1", 7, time.time() + 60))
    done = finished(bot, bot.metrics_collection.enqueue())
    assert done.status is underway.Status.COMPLETED, done.error
    with open_database(bot.database_url) as db:
        metrics = {m.name: m.value for m in db.metrics()}
    assert metrics == {"rate_limiter.requests": 42.0, "rate_limiter.limited": 3.0,
                       "rows.cb_sessions": 1.0, "rows.cb_cache": 0.0, "rows.cb_audit": 0.0,
                       "rows.cb_transactions": 0.0}  # fmt: skip
    assert done.result == len(metrics)


def test_settings_come_from_the_environment_and_bad_ones_say_what_to_fix() -> None:
    settings = MaintenanceSettings.from_env({"CACHE_CLEANUP_INTERVAL": "15",
                                             "DOCUMENTS_STORAGE_QUOTA_MB": "0.5"})  # fmt: skip
    assert settings.cache_cleanup_interval == 15.0
    assert settings.documents_storage_quota_mb == 0.5
    assert settings.db_cleanup_interval == 3600.0  # unset: the default
    with pytest.raises(underway.ConfigurationError, match="DB_CLEANUP_INTERVAL must be a number"):
        MaintenanceSettings.from_env({"DB_CLEANUP_INTERVAL": "hourly"})
    with pytest.raises(underway.ConfigurationError, match="name=http://host:port"):
        MaintenanceSettings.from_env({"CHAT_BOT_SERVICES": "rate_limiter"})
