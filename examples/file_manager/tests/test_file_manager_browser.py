"""The file manager's page in headless Chromium: it starts scans and copies through underway's
HTTP API and shows them live from its event stream (status, progress, status message,
payload), and its Cancel button stops a copy mid-way within a second, leaving no partial
file."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from file_manager.app import FileManager
from playwright.sync_api import Locator, Page, expect

expect.set_options(timeout=20_000)


@pytest.fixture
def page(chromium: Any, site: str) -> Iterator[Page]:
    """The site's page, open and following the event stream; it must log no console error."""
    context = chromium.new_context(base_url=site)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    opened.goto("/")
    expect(opened.locator("#stream")).to_have_attribute("data-state", "open")
    yield opened
    context.close()
    assert not errors, f"the page logged errors: {errors}"


def row(page: Page, task_title: str) -> Locator:
    return page.locator("#tasks tr", has=page.locator(".title", has_text=task_title)).first


def test_a_scan_started_on_the_page_is_shown_live_until_it_completes(
    page: Page, folder: Path
) -> None:
    page.fill("#scan-root", str(folder))
    page.click("#scan-form button")
    scan = row(page, "Metadata scan")
    expect(scan).to_have_attribute("data-status", "completed")
    expect(scan.locator(".message")).to_have_text("Indexed 3 files")
    expect(scan.locator(".percent")).to_have_text("100%")
    expect(scan.locator(".payload")).to_have_text(
        '{"bytes":6000,"current":"b.jpg","scanned":3,"total":3}'
    )
    expect(scan.locator(".cancel")).to_be_hidden()
    answer = page.request.get(f"/api/files?root={folder}")
    assert [f["path"] for f in answer.json()] == ["2024/c.jpg", "a.jpg", "b.jpg"]


def test_a_job_enqueued_elsewhere_appears_without_a_reload(
    page: Page, manager: FileManager, folder: Path
) -> None:
    job = manager.scan.enqueue(root=str(folder))
    shown = page.locator(f'tr[data-job="{job.id}"]')
    expect(shown).to_have_attribute("data-status", "completed")
    expect(shown.locator(".title")).to_have_text("Metadata scan")


def test_a_copy_shows_its_progress_and_cancel_stops_it_leaving_no_partial_file(
    page: Page, manager: FileManager, tmp_path: Path
) -> None:
    big = tmp_path / "video.mp4"
    big.write_bytes(b"v" * (8 * 1024 * 1024))
    target = tmp_path / "backup"
    target.mkdir()
    page.fill("#copy-src", str(big))
    page.fill("#copy-dst", str(target / "video.mp4"))
    page.fill("#copy-rate", str(1024 * 1024))  # 8 s for the whole file: surely mid-way
    page.click("#copy-form button")

    copy = row(page, "Copy operation")
    expect(copy).to_have_attribute("data-status", "running")
    expect(copy.locator(".message")).to_contain_text("Copied")  # "Copied 524,288 of ..."
    expect(copy.locator(".payload")).to_contain_text('"file":"video.mp4","total":8388608')
    progress = float(copy.locator("progress").evaluate("p => p.value"))
    assert 0 < progress < 1

    asked = time.monotonic()
    copy.locator(".cancel").click()
    expect(copy).to_have_attribute("data-status", "cancelled", timeout=10_000)
    while any(target.iterdir()) and time.monotonic() - asked < 10:
        time.sleep(0.01)
    took = time.monotonic() - asked
    assert took < 1.0, f"the copy took {took:.2f} s to stop"
    assert list(target.iterdir()) == []  # neither the file nor its temporary name
    job_id = copy.get_attribute("data-job")
    assert job_id is not None
    stopped = manager.app.get_job(job_id)
    assert stopped is not None and stopped.payload["copied"] < 8 * 1024 * 1024
