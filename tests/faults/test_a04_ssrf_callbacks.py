"""A04 SSRF through callback URLs, both stores. Catalogue: 169.254.169.254/latest/meta-data/,
127.0.0.1:5432, [::1], [::ffff:169.254.169.254], 0x7f000001, 2130706433, `localhost.`,
metadata.google.internal, 100.100.100.200, a ULA address, a name resolving to 10.0.0.5, a
rebinding resolver (public first, 127.0.0.1 next), a public URL that 302s to an internal one.
Pass: 100% rejected at registration or at send; a sinkhole on loopback and a fake metadata
server record 0 connections; no redirect followed; the private-target opt-in needs an
explicit setting and logs a warning.

Real worker processes send the callbacks of jobs that complete. Their resolver answers from a
table for the scenario's names (egress.py), and every TCP connection their Python code opens
is recorded, so "0 connections" is shown for every refused address, not only for the
sinkhole: the sinkhole listens on loopback where the loopback URLs point, and the record shows
that no worker ever connected to 169.254.169.254, 10.0.0.5 or any other refused address. The
"public" side is played by receivers on 127.0.0.3, which `callback_allow` opens (the
explicit opt-in, which the workers must log): one answers 302 to the sinkhole, one 302 to the
metadata address, and the rebinding name resolves to it first, to 127.0.0.1 after. A URL
whose host is no address at all (`0177.0.0.1`) is refused at registration."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from egress import EGRESS_VAR, RESOLVE_VAR
from harness import MakeScenario
from ledger import Outcome

import underway
from callback_receiver import Receiver
from underway.callbacks.signing import new_secret
from underway.model import DeliveryStatus

PUBLIC = "127.0.0.3"  # plays the public internet: allowed by callback_allow
REBIND = "rebind.a04.test"
INTERNAL = "internal.a04.test"


class Sinkhole:
    """Listens on loopback (IPv4 and, where the machine has it, IPv6) on one port and counts
    every connection it accepts."""

    def __init__(self) -> None:
        self.accepted: list[str] = []
        self.closed = False
        self.sockets = [socket.create_server(("127.0.0.1", 0))]
        self.port = self.sockets[0].getsockname()[1]
        # Without IPv6 loopback here, [::1] refuses at connect, and the record still shows it.
        with suppress(OSError):
            self.sockets.append(socket.create_server(("::1", self.port), family=socket.AF_INET6))
        for sock in self.sockets:
            sock.settimeout(0.2)
            threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    def _accept(self, sock: socket.socket) -> None:
        while not self.closed:
            try:
                conn, peer = sock.accept()
            except OSError:
                continue
            self.accepted.append(str(peer))
            conn.close()

    def close(self) -> None:
        self.closed = True
        for sock in self.sockets:
            sock.close()


@contextmanager
def receivers() -> Iterator[tuple[Sinkhole, Receiver, Receiver, Receiver]]:
    sink = Sinkhole()
    to_sink = Receiver(
        host=PUBLIC, answers=[(302, {"location": f"http://127.0.0.1:{sink.port}/"})] * 20
    )
    to_metadata = Receiver(
        host=PUBLIC, answers=[(302, {"location": "http://169.254.169.254/latest/meta-data/"})] * 20
    )
    rebinder = Receiver(host=PUBLIC, answers=[(500, {})] * 20)
    with to_sink, to_metadata, rebinder:
        try:
            yield sink, to_sink, to_metadata, rebinder
        finally:
            sink.close()


def test_a04_callbacks_never_reach_internal_addresses(
    scenario: MakeScenario, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with receivers() as (sink, to_sink, to_metadata, rebinder):
        port = sink.port
        urls = {
            "metadata": "http://169.254.169.254/latest/meta-data/",
            "database port": "http://127.0.0.1:5432/",
            "loopback": f"http://127.0.0.1:{port}/",
            "IPv6 loopback": f"http://[::1]:{port}/",
            "mapped metadata": "http://[::ffff:169.254.169.254]/",
            "hex loopback": f"http://0x7f000001:{port}/",
            "decimal loopback": f"http://2130706433:{port}/",
            "localhost.": f"http://localhost.:{port}/",
            "metadata name": "http://metadata.google.internal/computeMetadata/v1/",
            "Alibaba metadata": "http://100.100.100.200/latest/meta-data/",
            "unique-local": "http://[fd12:3456:789a::1]/",
            "name to 10.0.0.5": f"http://{INTERNAL}/",
            "rebinding": f"http://{REBIND}:{rebinder.port}/hooks",
            "302 to loopback": to_sink.url,
            "302 to metadata": to_metadata.url,
        }
        egress_log = tmp_path / "egress.log"
        monkeypatch.setenv(RESOLVE_VAR, json.dumps(
            {INTERNAL: [["10.0.0.5"]], REBIND: [[PUBLIC], ["127.0.0.1"]]}))  # fmt: skip
        monkeypatch.setenv(EGRESS_VAR, str(egress_log))
        s = scenario(
            "A04 SSRF callback URLs", webhook_secret=new_secret(),
            callback_allow=f"{PUBLIC}/32", callback_max_attempts=4,
            callback_backoff_base_seconds=0.2, callback_backoff_max_seconds=0.5,
            callback_timeout_seconds=3.0,
        )  # fmt: skip
        probe = s.app.tasks["faults.probe"]
        jobs = {}
        for what, url in urls.items():
            job = probe.options(callback_url=url).enqueue()
            s.client.record(str(job.id), Outcome.OK)
            jobs[what] = job.id
        with pytest.raises(underway.InvalidArguments, match="not a valid URL"):
            probe.options(callback_url="http://0177.0.0.1/").enqueue()
        s.fault(f"{len(urls)} jobs with callbacks to internal addresses (and one refused at "
                "registration), sent by 2 workers")  # fmt: skip
        s.fleet.start_many(2, concurrency=4)
        settled = s.settle(timeout=60)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            owed = {w: s.app.deliveries(j) for w, j in jobs.items()}
            if all(d and d[0].status is not DeliveryStatus.PENDING for d in owed.values()):
                break
            time.sleep(0.2)
        hops = {"302 to loopback": to_sink, "302 to metadata": to_metadata, "rebinding": rebinder}
        received = {what: len(r.received()) for what, r in hops.items()}

    deliveries = {what: d[0] for what, d in owed.items()}
    not_refused = {w: (d.status.value, d.last_error) for w, d in deliveries.items()
                   if d.status is not DeliveryStatus.FAILED
                   or "refused" not in (d.last_error or "")}  # fmt: skip
    retried = {w: len(d.attempts) for w, d in deliveries.items()
               if w != "rebinding" and len(d.attempts) != 1}  # fmt: skip
    connects = egress_log.read_text().split("\n") if egress_log.exists() else []
    reached = sorted({line.split()[0] for line in connects if line})
    logs = s.fleet.logs(tail=10**8)  # all of it
    verdict = s.verdict(allow_duplicates="none")
    (
        verdict.require("every callback refused at send, with the reason",
                        settled and not not_refused, f"not refused: {not_refused}")
        .require("a refusal is final (one attempt), except the rebinding name's first answer",
                 not retried, f"{retried}")
        .require("the rebinding name is refused once it answers 127.0.0.1",
                 len(deliveries["rebinding"].attempts) >= 2
                 and "127.0.0.1" in (deliveries["rebinding"].last_error or ""),
                 f"{len(deliveries['rebinding'].attempts)} attempts: "
                 f"{deliveries['rebinding'].last_error}")
        .require("no redirect followed: the sinkhole and every refused address saw 0 connections",
                 not sink.accepted and reached == [PUBLIC],
                 f"sinkhole accepted {sink.accepted}; workers connected to {reached}")
        .require("the 'public' receivers were reached (the record is live)",
                 all(n >= 1 for n in received.values()), f"{received}")
        .require("the opt-in is logged by the workers",
                 f"callback_allow lets completion callbacks reach {PUBLIC}/32" in logs,
                 "warning missing from the workers' logs")
    )  # fmt: skip
    verdict.check()
