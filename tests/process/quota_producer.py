"""A producer process of the quota test: enqueues jobs of tenant acme one at a time for
`seconds`, as fast as the quota lets it, and prints how many got in.

    python quota_producer.py DATABASE_URL SECONDS RATE BURST
"""

from __future__ import annotations

import sys
import time

import underway


def main(url: str, seconds: float, rate: float, burst: int) -> None:
    app = underway.App(url, tenant_enqueue_rate=rate, tenant_enqueue_burst=burst)

    @app.task(name="tests.quota_job")
    def job() -> None: ...

    app.migrate()
    print("ready", flush=True)
    sys.stdin.readline()  # both processes start together
    acme = job.options(tenant="acme")
    done, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            acme.enqueue()
            done += 1
        except underway.QuotaExceeded as exc:
            time.sleep(min(exc.retry_after or 0.01, 0.01))
    print(done, flush=True)
    app.close()


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]))
