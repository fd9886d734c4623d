"""Two producer processes sharing one tenant's enqueue quota, on every store: together they get
no more than burst + rate * elapsed (+1) jobs in, since the bucket lives in the store."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import underway

PRODUCER = Path(__file__).resolve().parent / "quota_producer.py"
RATE, BURST, SECONDS = 20.0, 5, 1.5


def test_two_producer_processes_together_stay_within_one_quota(database_url: str) -> None:
    underway.App(database_url).migrate()  # once, before they race to
    args = [sys.executable, str(PRODUCER), database_url, str(SECONDS), str(RATE), str(BURST)]
    procs = [
        subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    started = time.monotonic()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    counts = [int(proc.communicate(timeout=60)[0].strip()) for proc in procs]
    elapsed = time.monotonic() - started  # longer than the producers ran: a looser bound
    assert all(proc.returncode == 0 for proc in procs)
    with underway.App(database_url) as app:
        stored = len(app.list_jobs(tenant="acme", limit=10_000).jobs)
    assert stored == sum(counts)
    assert sum(counts) <= BURST + RATE * elapsed + 1
    # both got some in: the bucket is shared, not handed to one process
    assert all(count > 0 for count in counts)
    # and the quota was used, not just refused: at least half the sustained rate got through
    assert sum(counts) >= RATE * SECONDS / 2
