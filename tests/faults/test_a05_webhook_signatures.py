"""A05 webhook signature, replay and rotation, both stores. Catalogue: the receiver is the
official `standardwebhooks` verifier. Pass: valid deliveries verify; a replay at +5 min +1 s is
rejected ("too old"); a timestamp +5 min +1 s ahead is rejected; a 1-byte body change is
rejected; during a rotation a header with two signatures verifies with either secret; secrets
are 24-64 random bytes as `whsec_`, shown once, encrypted at rest.

Real workers send the callbacks of 40 jobs to a receiver on loopback, mid-rotation (the new
secret in `webhook_secret`, the old one in `webhook_previous_secrets`); the receiver fails the
first 15 requests with 500, so some deliveries are retried. Every request it got is then put
to the verifier: with the new and the old secret (and not with a third), with one byte of its
body changed, and with the verifier's clock moved 5 min 1 s later (a replay) and earlier (a
timestamp from the future), each against a 4 min 59 s control that must still verify. Each
job's retries keep one `webhook-id`, and each job gets exactly one 2xx delivery.

Where underway differs from the catalogue's wording: it has no receiver-side helper of its own
(receivers use a Standard Webhooks library, whose verifier compares with
`hmac.compare_digest`), and the secret is the app's configuration, not something underway
stores or shows: `new_secret()` makes one of 32 random bytes, and the check here is that
neither secret appears in any worker's log."""

from __future__ import annotations

import base64
import json
import time
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import standardwebhooks.webhooks
from harness import MakeScenario
from ledger import Outcome
from standardwebhooks import Webhook, WebhookVerificationError

from callback_receiver import Receiver
from underway.callbacks.signing import PREFIX, new_secret
from underway.model import DeliveryStatus

JOBS, FAILING = 40, 15
TOLERANCE = 300  # the verifier's five minutes


def verdict_of(secret: str, body: bytes, headers: dict[str, str], shift: float = 0.0) -> str:
    """What the verifier says of one request, its clock moved by `shift` seconds."""

    class Shifted(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return datetime.now(tz) + timedelta(seconds=shift)

    standardwebhooks.webhooks.datetime = Shifted  # type: ignore[misc]
    try:
        Webhook(secret).verify(body, headers)
        return "ok"
    except WebhookVerificationError as exc:
        return str(exc)
    finally:
        standardwebhooks.webhooks.datetime = datetime  # type: ignore[misc]


#: each way a request is put to the verifier, and the check it stands for
CHECKS = {
    "unverified": "valid deliveries verify",
    "with_old": "mid-rotation they verify with the old secret too",
    "stranger_ok": "never with a third secret",
    "tampered": "a 1-byte body change is rejected",
    "replayed": "a replay at +5 min +1 s is rejected as too old",
    "future": "a timestamp +5 min +1 s ahead is rejected as too new",
    "controls": "4 min 59 s either way still verifies (the control)",
}


def failures(requests: list[Any], new: str, old: str, stranger: str) -> dict[str, list[Any]]:
    """Each request put to the verifier every way; per way, the webhook-ids that came out
    wrong."""
    found: dict[str, list[Any]] = defaultdict(list)
    for r in requests:
        headers = {k: v for k, v in r.headers.items() if k.startswith("webhook-")}
        wid = headers["webhook-id"]
        flipped = bytearray(r.body)
        flipped[len(flipped) // 2] ^= 0x01
        # the tolerance counts from the signing time; the request came a moment after it
        age = time.time() - int(headers["webhook-timestamp"])
        wrong = {
            "unverified": verdict_of(new, r.body, headers) != "ok",
            "with_old": verdict_of(old, r.body, headers) != "ok",
            "stranger_ok": verdict_of(stranger, r.body, headers) == "ok",
            "tampered": verdict_of(new, bytes(flipped), headers) == "ok",
            "replayed": verdict_of(new, r.body, headers, TOLERANCE + 1 - age)
            != "Message timestamp too old",
            "future": verdict_of(new, r.body, headers, -(TOLERANCE + 1) - age)
            != "Message timestamp too new",
            "controls": any(verdict_of(new, r.body, headers, shift) != "ok"
                            for shift in (TOLERANCE - 1 - age, -(TOLERANCE - 1) - age)),
        }  # fmt: skip
        for way, bad in wrong.items():
            if bad:
                found[way].append(wid)
    return found


def test_a05_signatures_verify_and_replays_and_tampering_do_not(
    scenario: MakeScenario,
) -> None:
    new, old, stranger = new_secret(), new_secret(), new_secret()
    with Receiver(answers=[500] * FAILING) as receiver:
        s = scenario(
            "A05 webhook signature, replay, rotation", webhook_secret=new,
            webhook_previous_secrets=old, callback_allow="127.0.0.1/32",
            callback_backoff_base_seconds=0.2, callback_backoff_max_seconds=0.5,
        )  # fmt: skip
        probe = s.app.tasks["faults.probe"]
        jobs = [probe.options(callback_url=receiver.url).enqueue() for _ in range(JOBS)]
        for job in jobs:
            s.client.record(str(job.id), Outcome.OK)
        s.fault(f"{JOBS} callbacks mid-rotation (two secrets); the receiver fails the first "
                f"{FAILING} requests; replayed, tampered and future-dated copies")  # fmt: skip
        s.fleet.start_many(2, concurrency=4)
        settled = s.settle(timeout=60)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            owed = [s.app.deliveries(job.id) for job in jobs]
            if all(d and d[0].status is not DeliveryStatus.PENDING for d in owed):
                break
            time.sleep(0.2)
        requests = receiver.received()

    found = failures(requests, new, old, stranger)
    attempts: dict[str, list[Any]] = defaultdict(list)
    for r in requests:
        attempts[r.headers["webhook-id"]].append(r)
    successes = {i: sum(200 <= a.status < 300 for a in rs) for i, rs in attempts.items()}
    jobs_by_id = {i: {json.loads(r.body)["data"]["id"] for r in rs} for i, rs in attempts.items()}
    delivered = [d[0].status is DeliveryStatus.DELIVERED for d in owed]
    logs = s.fleet.logs(tail=10**8)  # all of it
    leaked = [name for name, secret in (("new", new), ("old", old))
              if secret in logs or secret[len(PREFIX):] in logs]  # fmt: skip
    key_bytes = len(base64.b64decode(new[len(PREFIX) :]))
    verdict = s.verdict(allow_duplicates="none")
    (
        verdict.require("every delivery delivered, once", settled and all(delivered)
                        and len(successes) == JOBS and set(successes.values()) == {1},
                        f"{sum(delivered)} of {JOBS} delivered; 2xx per webhook-id: "
                        f"{sorted(set(successes.values()))}; {len(requests)} requests")
        .require("retries happened, each keeping its webhook-id",
                 len(requests) > JOBS and all(len(v) == 1 for v in jobs_by_id.values()),
                 f"{len(requests) - JOBS} retries")
    )  # fmt: skip
    for way, name in CHECKS.items():
        verdict.require(name, not found[way], f"wrong for {found[way][:3]}")
    verdict.require(
        "secrets: 24-64 random bytes, never in the logs",
        24 <= key_bytes <= 64 and not leaked,
        f"{key_bytes} bytes; in logs: {leaked}",
    )
    verdict.check()
