"""A02 oversized args, both stores, against `underway serve` in a process of its own (so its
memory can be read). Catalogue: args at the limit + 1 byte, 10 MiB, a 1 GiB stream, a
10^6-element list.

Pass: args exactly at the limit (max_args_bytes, 1 MiB by default) are taken; one byte more,
10 MiB, a 10^6-element list (with and without Content-Length) and 1 GiB bodies (declared, and
chunked without a length), both sent slowly, are refused with 413 and no row, the large ones
before the body is read (the answer comes while the client is still sending, after less than
16 MiB of it); the server's RSS grows by less than 2x the limit over the whole barrage; every
NOTIFY sent meanwhile carries an id or nothing, under 8000 bytes (PostgreSQL; and every
pg_notify in the migrations and queries sends '' or an id); the dashboard shows the 1 MiB
arguments cut to at most 4 KiB. CI size = full size."""

from __future__ import annotations

import html
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
from abuse import WEB, abuse_verdict, raw_request
from web_support import free_port
from webapp import declare

import underway
from underway import encoding
from underway.stores.postgres.liveness import PING_PREFIX, is_ping
from underway.stores.sqlfile import load_queries

LIMIT = 1024 * 1024  # the default max_args_bytes
MIB = 1024 * 1024
SRC = Path(underway.__file__).resolve().parent


def serve(url: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "underway", "serve", "webapp:app", "--port", str(port)],
        cwd=WEB, env={**_env(), "UNDERWAY_DATABASE_URL": url},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=2)
            return process, port
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError(f"underway serve did not start: {process.communicate()[1][-2000:]!r}")


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("UNDERWAY_")}


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def body_of_size(size: int) -> bytes:
    """An enqueue of web.greet whose arguments are exactly `size` bytes of JSON."""
    padding = size - len(encoding.dumps({"name": ""}, "args"))
    return b'{"task":"web.greet","args":{"name":"' + b"x" * padding + b'"}}'


def head(key: str, length: int | None) -> str:
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return (
        f"POST /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\n{framing}\r\n\r\n"
    )


def slowly(total: int, chunked: bool, piece: int = 64 * 1024) -> Iterator[bytes]:
    """`total` bytes of a JSON body (a 10^6-element list of nothing much), 64 KiB at a time
    with a pause between pieces; chunked transfer encoding when `chunked`."""
    start = b'{"task":"web.greet","args":{"name":"x","tags":['
    sent = 0
    while sent < total:
        data = start if sent == 0 else b'"x",' * (piece // 4)
        sent += len(data)
        yield b"%x\r\n%s\r\n" % (len(data), data) if chunked else data
        time.sleep(0.002)


Sent = tuple[int | None, int, int]  # the answer's status, body bytes sent before it, of total


def oversized(port: int, key: str) -> dict[str, Sent]:
    """Each oversized request, sent slowly: (status, body bytes sent before the answer came,
    the body's whole size)."""
    huge_list = b'{"task":"web.greet","args":{"name":"x","tags":[' + b'"x",' * (10**6) + b'"x"]}}'
    ten_mib = body_of_size(10 * MIB)
    chunked_list = _chunks(huge_list, 64 * 1024)
    return {
        "limit + 1 byte": _whole(port, key, body_of_size(LIMIT + 1)),
        "10 MiB": _whole(port, key, ten_mib),
        "10^6-element list": _whole(port, key, huge_list),
        "10^6-element list, chunked": _sent(port, head(key, None), chunked_list, len(huge_list)),
        "1 GiB declared": _sent(port, head(key, 1 << 30), slowly(1 << 30, False), 1 << 30),
        "1 GiB chunked": _sent(port, head(key, None), slowly(1 << 30, True), 1 << 30),
    }


def _sent(port: int, request: str, chunks: Iterator[bytes], total: int) -> Sent:
    status, sent, _ = raw_request(port, request, chunks)
    return status, sent, total


def _whole(port: int, key: str, body: bytes) -> Sent:
    return _sent(port, head(key, len(body)), _chunks(body, 64 * 1024, framed=False), len(body))


def _chunks(body: bytes, size: int, framed: bool = True) -> Iterator[bytes]:
    """`body` in pieces of `size`, a pause between them; in chunked framing if `framed`."""
    for i in range(0, len(body), size):
        part = body[i : i + size]
        yield b"%x\r\n%s\r\n" % (len(part), part) if framed else part
        time.sleep(0.002)
    if framed:
        yield b"0\r\n\r\n"


class Notices:
    """Every NOTIFY on the store's channels while it runs (PostgreSQL only)."""

    def __init__(self, app: underway.App) -> None:
        self.payloads: list[str] = []
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        store = app.store
        if hasattr(store, "conninfo"):
            from underway.stores.postgres.listener import topic_channel

            channels = [store.channel, *(topic_channel(t, store.schema) for t in
                                         ("changes", "cancels"))]  # fmt: skip
            self.thread = threading.Thread(target=self._listen, args=(store.conninfo, channels))
            self.thread.start()
            time.sleep(0.5)

    def _listen(self, conninfo: str, channels: list[str]) -> None:
        import psycopg

        with psycopg.connect(conninfo, autocommit=True) as conn:
            for channel in channels:
                conn.execute(f'LISTEN "{channel}"')  # type: ignore[arg-type]
            while not self.stop.is_set():
                for notice in conn.notifies(timeout=0.2):
                    self.payloads.append(notice.payload)

    def close(self) -> list[str]:
        """The payloads that were not an id or empty, or were 8000 bytes or more."""
        self.stop.set()
        if self.thread is not None:
            self.thread.join(10)
        return [p[:100] for p in self.payloads if len(p.encode()) >= 8000 or not _is_id(p)]


def _is_id(payload: str) -> bool:
    """'' or a job id, or a listener's health-check ping (`underway-ping:` and the listener's
    own random id): no job data either way."""
    if payload == "":
        return True
    if is_ping(payload):
        payload = payload.removeprefix(PING_PREFIX)
    try:
        uuid.UUID(payload)
    except ValueError:
        return False
    return True


def notify_payloads_in_sql() -> list[str]:
    """Every pg_notify in the PostgreSQL store's SQL whose payload is not '' or an id (or the
    listeners' ping statement, whose payload liveness.py makes: a prefix and a random id)."""
    postgres = SRC / "stores" / "postgres"
    ping = load_queries("underway.stores.postgres")["ping"]
    found = []
    for path in [*postgres.glob("migrations/*.sql"), *postgres.glob("*.sql")]:
        text = path.read_text().replace(ping, "")
        for call in re.findall(r"pg_notify\(([^;]*?)\)\s*(?:;|FROM|$)", text, re.M):
            payload = call.rsplit(",", 1)[1].strip() if "," in call else ""
            if payload not in ("''", "n.id::text"):
                found.append(f"{path.name}: pg_notify({call})")
    return found


def shown_args(port: int, key: str, job: str) -> tuple[int, int]:
    """The dashboard's page of `job`: the bytes of its arguments shown, and the page's size."""
    page = httpx.get(
        f"http://127.0.0.1:{port}/jobs/{job}", cookies={"underway_session": key}, timeout=30
    )
    assert page.status_code == 200, page.text[:300]
    blocks = re.findall(r'<pre class="code">(.*?)</pre>', page.text, re.S)
    return max(len(html.unescape(b).encode()) for b in blocks), len(page.content)


def all_read(refused: dict[str, Sent]) -> dict[str, str]:
    """The large requests whose body was all sent before the answer, or more than 16 MiB."""
    return {
        name: f"{sent:,} of {total:,}" for name, (_, sent, total) in refused.items()
        if name != "limit + 1 byte" and (sent >= total or sent > 16 * MIB)
    }  # fmt: skip


def test_a02_oversized_args_are_refused_unread(
    make_app: Callable[..., underway.App], store_kind: str
) -> None:
    app = declare(make_app())
    app.migrate()
    _, key = app.create_key(name="admin")
    notices = Notices(app)
    process, port = serve(app.settings.database_url)
    try:
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60,
                           headers={"Authorization": f"Bearer {key}"})  # fmt: skip
        at_limit = api.post("/api/v1/jobs", content=body_of_size(LIMIT),
                            headers={"Content-Type": "application/json"})  # fmt: skip
        before_rows = len(app.list_jobs(limit=1000).jobs)
        oversized(port, key)  # once to warm up: the growth measured is the second barrage's
        before_rss = rss(process.pid)
        refused = oversized(port, key)
        grown = rss(process.pid) - before_rss
        rows = len(app.list_jobs(limit=1000).jobs)
        shown, page_size = shown_args(port, key, at_limit.json()["id"])
        api.close()
    finally:
        process.terminate()
        _, err = process.communicate(timeout=30)
        bad_notices = notices.close()
    heard = bool(notices.payloads) or store_kind != "postgresql"
    wrong = {k: v for k, v in refused.items() if v[0] != 413}
    read_whole = all_read(refused)
    sql = notify_payloads_in_sql()
    errors = [line for line in err.decode().splitlines() if "Traceback" in line or " 500 " in line]
    (
        abuse_verdict("A02 oversized args", store_kind, 1 + 2 * len(refused), [
            "args at the limit and +1 byte, 10 MiB, a 10^6-element list (with and without a "
            "length), 1 GiB declared and 1 GiB chunked sent slowly; twice",
        ])
        .require("args at the limit are taken (201)", at_limit.status_code == 201,
                 f"{at_limit.status_code} {at_limit.text[:200]}")
        .require("every oversized request is 413", not wrong, f"{wrong}")
        .require("no row for a refused request", rows == before_rows, f"{before_rows} -> {rows}")
        .require("large bodies refused while still being sent (< 16 MiB)", not read_whole,
                 f"{read_whole}")
        .require("server RSS grew < 2x the limit", grown < 2 * LIMIT, f"{grown:,} bytes")
        .require("NOTIFY carries ids only, < 8000 bytes", heard and not bad_notices and not sql,
                 f"heard {len(notices.payloads)}: {bad_notices[:3]} {sql}")
        .require("the dashboard shows args cut to <= 4 KiB", shown <= 4096 and
                 page_size < 64 * 1024, f"{shown} bytes shown, page {page_size:,} bytes")
        .require("the server logged no error", not errors, f"{errors[:3]}")
        .check()
    )  # fmt: skip
