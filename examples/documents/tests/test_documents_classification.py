"""Jobs 1 and 2: minutely batch classification per tenant (batch size 100), and failed
documents retried up to 3 times, then in the dead letters. Runs on each store."""

from __future__ import annotations

from datetime import timedelta

from docflow_support import Running

from underway import testing

KEEP = timedelta(days=30)


def classified_by_tenant(docflow: Running, tenant: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for doc in docflow.flow.platform.documents(tenant):
        counts[doc["status"]] = counts.get(doc["status"], 0) + 1
    return counts


def test_each_minute_classifies_a_batch_of_each_tenants_pending_documents(
    docflow: Running,
) -> None:
    platform = docflow.flow.platform
    kinds = ("Invoice 2031-{n}", "Service contract {n}", "Meeting notes {n}")
    for n in range(150):
        platform.upload("acme", f"doc-{n}", kinds[n % 3].format(n=n), KEEP)
    globex = platform.upload("globex", "g-1", "Invoice for globex", KEEP)
    clock = testing.Clock()
    scheduler = docflow.scheduler(clock)

    scheduler.tick()
    docflow.settle()
    assert classified_by_tenant(docflow, "acme") == {"classified": 100, "pending": 50}
    assert classified_by_tenant(docflow, "globex") == {"classified": 1}
    assert (platform.document(globex)["classification"], platform.document(globex)["route"]) == (
        "invoice",
        "finance",
    )
    runs = docflow.app.list_jobs(task="docflow.classify").jobs
    assert sorted((job.tenant, job.result) for job in runs) == [("acme", 100), ("globex", 1)]

    clock.advance(60)
    scheduler.tick()
    docflow.settle()
    docs = platform.documents("acme")
    assert {doc["status"] for doc in docs} == {"classified"}
    routes = {(doc["classification"], doc["route"]) for doc in docs}
    assert routes == {("invoice", "finance"), ("contract", "legal"), ("other", "inbox")}


def test_a_failed_document_is_retried_and_one_failing_three_retries_is_a_dead_letter(
    docflow: Running,
) -> None:
    platform = docflow.flow.platform
    flaky = platform.upload("acme", "scan", "flaky invoice scan", KEEP)
    unreadable = platform.upload("acme", "blot", "unreadable", KEEP)
    fine = platform.upload("globex", "fine", "a contract", KEEP)
    clock = testing.Clock()
    scheduler = docflow.scheduler(clock)
    # The classification fails both; the retry job of this minute or the next (the two run
    # in either order) hands them to underway's retries.
    for _ in range(2):
        scheduler.tick()
        docflow.settle()
        clock.advance(60)
    assert platform.document(flaky)["status"] == "classified"
    assert platform.document(flaky)["attempts"] == 3  # failed twice, then worked
    dead = platform.document(unreadable)
    assert (dead["status"], dead["attempts"]) == ("dead_letter", 4)  # 1 try + 3 retries
    assert platform.document(fine)["status"] == "classified"

    # underway's dead letters: the reclassify job of the dead document, failed for good
    letters = docflow.app.list_jobs(status="failed", tenant="acme").jobs
    assert [(j.task, j.args, j.attempt, j.key) for j in letters] == [
        ("docflow.reclassify", {"document": unreadable}, 3, f"reclassify:{unreadable}")
    ]
    assert letters[0].error is not None and "could not be classified" in letters[0].error.message
    assert docflow.app.list_jobs(status="failed", tenant="globex").jobs == []

    scheduler.tick()  # nothing failed is left: no new retry
    docflow.settle()
    assert len(docflow.app.list_jobs(task="docflow.reclassify").jobs) == 2
