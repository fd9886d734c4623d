"""An app node of F12, run as its own process: `python f12_client.py URL THREADS CALLS SECONDS
KEYS RESULTS`. THREADS threads each enqueue `faults.probe` under one of the comma-separated
KEYS (at random), each call with an id chosen here, CALLS times or until SECONDS passed. Each
call is one appended line of RESULTS: `<key> <chosen id> <returned id>` when it returned, or
`<key> <chosen id> error <exception type>: <message>` when it raised."""

from __future__ import annotations

import os
import random
import sys
import threading
import time

import faultapp

from underway.ids import uuid7


def main() -> None:
    url, threads, calls, seconds, keys, results = sys.argv[1:7]
    app = faultapp.make_app(url, pool_size=int(threads))
    probe = app.tasks["faults.probe"]
    names = keys.split(",")
    deadline = time.monotonic() + float(seconds)
    fd = os.open(results, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def client(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(int(calls)):
            if time.monotonic() > deadline:
                return
            key, chosen = rng.choice(names), str(uuid7())
            try:
                job = probe.options(key=key, id=chosen).enqueue(seconds=rng.uniform(0, 0.02))
                line = f"{key} {chosen} {job.id}"
            except Exception as exc:
                line = f"{key} {chosen} error {type(exc).__name__}: {exc}".replace("\n", " ")
            os.write(fd, (line + "\n").encode())  # one write per line: lines never interleave

    workers = [threading.Thread(target=client, args=(os.getpid() * 1000 + n,))
               for n in range(int(threads))]  # fmt: skip
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    os.close(fd)
    app.close()


if __name__ == "__main__":
    main()
