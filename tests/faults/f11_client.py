"""The application of F11, run as its own process: `python f11_client.py URL PLAN RESULTS
START`. For each planned transaction from index START on, it inserts a business row into
`orders` and enqueues its job on the same connection, then commits, rolls back, SIGKILLs
itself before the commit, or has its connection terminated before the commit, as planned.
Each outcome is one appended line of RESULTS: `<index> <id> <outcome> <time the commit was
sent>` (outcome ok, rolled_back, killed, unknown)."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import faultapp
import psycopg
from psycopg import sql

from underway.stores.postgres.store import _split_url


def main() -> None:
    url, plan_path, results, start = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    plan = json.loads(Path(plan_path).read_text())
    conninfo, schema = _split_url(url)
    orders = sql.Identifier(schema or "public", "orders")
    app = faultapp.make_app(url)
    probe = app.tasks["faults.probe"]

    def log(index: int, probe_id: str, outcome: str, sent: float) -> None:
        fd = os.open(results, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(fd, f"{index} {probe_id} {outcome} {sent:.6f}\n".encode())
        os.close(fd)

    with psycopg.connect(conninfo) as conn:
        for index in range(start, len(plan)):
            probe_id, action = plan[index]
            conn.execute(sql.SQL("INSERT INTO {} (id) VALUES (%s)").format(orders), (probe_id,))
            probe.options(connection=conn, id=probe_id).enqueue(seconds=0.0)
            if action == "rollback":
                conn.rollback()
                log(index, probe_id, "rolled_back", 0.0)
            elif action == "kill":
                log(index, probe_id, "killed", 0.0)
                os.kill(os.getpid(), signal.SIGKILL)
            else:
                if action == "reset":
                    pid = conn.info.backend_pid
                    with psycopg.connect(conninfo, autocommit=True) as other:
                        other.execute("SELECT pg_terminate_backend(%s)", (pid,))
                sent = time.time()
                try:
                    conn.commit()
                except psycopg.Error:
                    log(index, probe_id, "unknown", sent)
                    return  # the connection is gone: the test starts us again after it
                log(index, probe_id, "ok", sent)


if __name__ == "__main__":
    main()
