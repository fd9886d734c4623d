"""PgBouncer (Debian's package) in front of the local PostgreSQL, for F15: started on a port
of its own with the given pool mode and a small pool, stopped after. It runs as the postgres
user when the tests run as root (it refuses root), so its directory is handed to that user."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
from abuse import free_port

BINARY = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


def installed() -> bool:
    return Path(BINARY).exists()


@contextlib.contextmanager
def pgbouncer(
    mode: str = "transaction", pool_size: int = 4, server_port: int = 5432
) -> Iterator[int]:
    """PgBouncer listening on 127.0.0.1; yields its port. Its files live in a directory of
    their own under /tmp (pytest's are the test user's alone), removed after."""
    with tempfile.TemporaryDirectory(prefix="underway-pgbouncer-") as name:
        yield from _serve(Path(name), mode, pool_size, server_port)


def _serve(directory: Path, mode: str, pool_size: int, server_port: int) -> Iterator[int]:
    port = free_port()
    (directory / "userlist.txt").write_text('"postgres" ""\n')
    (directory / "pgbouncer.ini").write_text(
        f"""[databases]
* = host=127.0.0.1 port={server_port}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {directory}/userlist.txt
pool_mode = {mode}
default_pool_size = {pool_size}
max_client_conn = 2000
logfile = {directory}/pgbouncer.log
pidfile = {directory}/pgbouncer.pid
"""
    )
    command = [BINARY, str(directory / "pgbouncer.ini")]
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        for path in [directory, *directory.iterdir()]:
            os.chown(path, user.pw_uid, user.pw_gid)
        command[1:1] = ["-u", "postgres"]
    # In the foreground it logs to stderr as well as to its file: a pipe nobody reads would
    # fill, and PgBouncer would stop answering mid-run.
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/test",
                                connect_timeout=2).close()  # fmt: skip
                break
            except psycopg.Error:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log = directory / "pgbouncer.log"
                    raise RuntimeError(
                        "PgBouncer did not start: " + (log.read_text() if log.exists() else "")
                    ) from None
                time.sleep(0.1)
        yield port
    finally:
        proc.send_signal(signal.SIGINT)  # a clean shutdown
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
