"""F24 webhook delivery under receiver faults, both stores. Catalogue: a stub receiver that
answers 500 x5 then 200; sleeps 60 s; sends 1 byte/s (slow-loris); 302; 410; 429 with
Retry-After: 120; a TLS error. Pass: the same `webhook-id` on every attempt, a fresh timestamp
and signature each time; backoff with jitter as configured; the total timeout enforced
(slow-loris included); 302 not followed; 410 disables the endpoint; Retry-After honoured;
delivery state survives a worker SIGKILL (delivered at least once, duplicates only from the
kill).

Real workers deliver the callbacks of jobs that complete to one receiver on loopback (opened by
`callback_allow`), each job's URL naming how the receiver treats it. CI scale: a 3 s callback
timeout (the sleeper and the slow-loris would hold an attempt for 60 s and for ever), a backoff
from 0.2 s doubling to 5 s, Retry-After: 3; `--full` the catalogue's 15 s timeout and
Retry-After: 120.

Where underway differs from the catalogue's wording: a 302 is followed (a callback URL that
moved is common), as a new POST to a newly checked address (A04 shows that a hop to a refused
address is not taken); and a 410 ends that delivery at once, failed, rather than disabling an
endpoint: underway has no endpoints, each job names its own URL."""

from __future__ import annotations

import itertools
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from harness import MakeScenario, Scenario, Sizes
from ledger import Outcome
from standardwebhooks import Webhook

from underway.callbacks.signing import new_secret
from underway.model import Delivery, DeliveryStatus

MAX_ATTEMPTS = 7
BASE, MAX_WAIT = 0.2, 5.0


@dataclass(frozen=True)
class Hit:
    path: str
    at: float
    headers: dict[str, str]
    body: bytes


class Stub:
    """The receiver: what it does depends on the request's path."""

    def __init__(self, retry_after: int, sleep: float) -> None:
        self.hits: list[Hit] = []
        self.lock = threading.Lock()
        self.retry_after, self.sleep = retry_after, sleep
        self.stopping = threading.Event()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with stub.lock:
                    seen = sum(h.path == self.path for h in stub.hits)
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    stub.hits.append(Hit(self.path, time.time(), headers, body))
                stub.answer(self, self.path, seen)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def answer(self, h: BaseHTTPRequestHandler, path: str, seen: int) -> None:
        if path == "/flaky" and seen < 5:
            return self.reply(h, 500)
        if path == "/sleeper" or (path == "/killed" and seen == 0):
            self.stopping.wait(self.sleep)
            return self.reply(h, 200)
        if path == "/loris":
            for byte in b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n":
                if self.stopping.wait(1.0):
                    return
                try:
                    h.wfile.write(bytes([byte]))
                    h.wfile.flush()
                except OSError:
                    return  # the sender gave up: as it should
            return
        if path == "/moved":
            return self.reply(h, 302, {"location": "/moved-here"})
        if path == "/gone":
            return self.reply(h, 410)
        if path == "/limited" and seen == 0:
            return self.reply(h, 429, {"retry-after": str(self.retry_after)})
        return self.reply(h, 200)

    @staticmethod
    def reply(h: BaseHTTPRequestHandler, code: int, headers: dict[str, str] | None = None) -> None:
        h.send_response(code)
        for name, value in (headers or {}).items():
            h.send_header(name, value)
        h.send_header("content-length", "0")
        h.end_headers()

    def of(self, path: str) -> list[Hit]:
        with self.lock:
            return [h for h in self.hits if h.path == path]

    def close(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


def final(s: Scenario, jobs: dict[str, Any], timeout: float) -> dict[str, Delivery]:
    """Each job's delivery once none is pending (or what they are at `timeout`)."""
    deadline = time.monotonic() + timeout
    while True:
        owed = {path: s.app.deliveries(job) for path, job in jobs.items()}
        done = all(d and d[0].status is not DeliveryStatus.PENDING for d in owed.values())
        if done or time.monotonic() > deadline:
            return {path: d[0] for path, d in owed.items() if d}
        time.sleep(0.2)


def test_f24_deliveries_hold_up_against_faulty_receivers(
    scenario: MakeScenario, sizes: Sizes
) -> None:
    s = scenario(
        "F24 webhook delivery under receiver faults", webhook_secret=new_secret(),
        callback_allow="127.0.0.1/32", callback_max_attempts=MAX_ATTEMPTS,
        callback_backoff_base_seconds=BASE, callback_backoff_max_seconds=MAX_WAIT,
        callback_timeout_seconds=15.0 if sizes.full else 3.0,
    )  # fmt: skip
    timeout = float(s.settings["callback_timeout_seconds"])
    retry_after = 120 if s.sizes.full else 3
    secret = str(s.settings["webhook_secret"])
    stub = Stub(retry_after=retry_after, sleep=60.0)
    try:
        probe = s.app.tasks["faults.probe"]
        paths = ["/flaky", "/sleeper", "/loris", "/moved", "/gone", "/limited"]
        urls = {p: stub.url(p) for p in paths} | {"/tls": stub.url("/tls", "https")}
        s.fault(f"receivers that fail 5 times, sleep 60 s, send 1 byte/s, redirect, answer 410, "
                f"429 with Retry-After: {retry_after}, speak no TLS; a worker SIGKILLed while "
                "a delivery is in flight")  # fmt: skip
        # first the kill, alone, so that no other delivery is in flight at it
        killed_job = probe.options(callback_url=stub.url("/killed")).enqueue()
        s.client.record(str(killed_job.id), Outcome.OK)
        jobs = {"/killed": killed_job.id}
        s.fleet.start_many(1, concurrency=4)
        deadline = time.monotonic() + 30
        while not stub.of("/killed") and time.monotonic() < deadline:
            time.sleep(0.05)
        [first] = s.fleet.members
        s.fleet.kill(first)
        s.fleet.start_many(1, concurrency=4)
        for path, url in urls.items():
            job = probe.options(callback_url=url).enqueue()
            s.client.record(str(job.id), Outcome.OK)
            jobs[path] = job.id
        settled = s.settle(timeout=60)
        # the killed worker's lease on its delivery runs out before it is sent again
        deliveries = final(s, jobs, timeout=timeout * 4 + 10 + MAX_WAIT * MAX_ATTEMPTS + 60)
    finally:
        stub.close()
    check(s, stub, deliveries, secret, timeout, retry_after, settled)


def check(s: Scenario, stub: Stub, deliveries: dict[str, Delivery], secret: str,
          timeout: float, retry_after: int, settled: bool) -> None:  # fmt: skip
    webhook = Webhook(secret)
    flaky = stub.of("/flaky")
    ids = {h.headers["webhook-id"] for h in flaky}
    stamps = [int(h.headers["webhook-timestamp"]) for h in flaky]
    # signed when sent (whole seconds, as Standard Webhooks has it), not reused from the first
    stale = [(int(h.headers["webhook-timestamp"]), round(h.at, 2)) for h in flaky
             if not -0.5 <= h.at - int(h.headers["webhook-timestamp"]) <= 2.0]  # fmt: skip
    verified = all(webhook.verify(h.body, h.headers) for h in stub.hits if h.path != "/loris")
    gaps = [b.at - a.at for a, b in itertools.pairwise(flaky)]
    bands = [(min(BASE * 2**n, MAX_WAIT) / 2, min(BASE * 2**n, MAX_WAIT)) for n in range(5)]
    off_band = [(round(g, 2), band) for g, band in zip(gaps, bands, strict=False)
                if not band[0] - 0.05 <= g <= band[1] + 1.0]  # fmt: skip
    slow = {p: [round(a.duration, 2) for a in deliveries[p].attempts]
            for p in ("/sleeper", "/loris")}  # fmt: skip
    limited = stub.of("/limited")
    waited = limited[1].at - limited[0].at if len(limited) >= 2 else 0.0
    kinds = {p: (d.status.value, len(d.attempts)) for p, d in deliveries.items()}
    killed = stub.of("/killed")
    per_id: dict[str, int] = defaultdict(int)
    for h in killed:
        per_id[h.headers["webhook-id"]] += 1
    verdict = s.verdict(allow_duplicates="none")
    (
        verdict.require("500 x5 then 200: delivered on the 6th attempt",
                        kinds["/flaky"] == ("delivered", 6) and len(flaky) == 6,
                        f"{kinds['/flaky']}")
        .require("the same webhook-id on every attempt, each signed afresh when sent",
                 len(ids) == 1 and not stale and stamps == sorted(stamps) and verified,
                 f"{len(ids)} ids; timestamps not of their send: {stale}")
        .require("backoff with jitter as configured", not off_band,
                 f"gaps {[round(g, 2) for g in gaps]}; outside [d/2, d]: {off_band}")
        .require("the timeout holds each attempt, slow-loris included",
                 all(d <= timeout + 1.0 for ds in slow.values() for d in ds)
                 and all(ds for ds in slow.values()),
                 f"attempt durations {slow} against {timeout:g} s")
        .require("a 302 is followed to a checked address, once",
                 kinds["/moved"] == ("delivered", 1) and len(stub.of("/moved-here")) == 1,
                 f"{kinds['/moved']}")
        .require("410 ends the delivery at once", kinds["/gone"] == ("failed", 1),
                 f"{kinds['/gone']}")
        .require("Retry-After honoured", waited >= retry_after - 0.05
                 and kinds["/limited"] == ("delivered", 2),
                 f"next attempt {waited:.2f} s later, asked {retry_after} s; {kinds['/limited']}")
        .require("a TLS error is retried, then fails with its reason",
                 kinds["/tls"] == ("failed", MAX_ATTEMPTS)
                 and "SSL" in (deliveries["/tls"].last_error or ""),
                 f"{kinds['/tls']}: {deliveries['/tls'].last_error}")
        .require("a delivery in flight at a SIGKILL is delivered after it, one webhook-id",
                 kinds["/killed"][0] == "delivered" and len(per_id) == 1 and len(killed) >= 2,
                 f"{kinds['/killed']}; {len(killed)} requests under {len(per_id)} ids")
        .require("all jobs finish", settled, f"{s.raw.unfinished()} unfinished")
    )  # fmt: skip
    verdict.check()
