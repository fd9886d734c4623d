"""The example's own tables: the file index a metadata scan fills, and the log of finished
copies. SQLite by default; PostgreSQL when the URL says `postgresql://` (with an optional
`?schema=` for the tables' schema, as underway's own URLs have)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql

TABLES = (
    """CREATE TABLE IF NOT EXISTS fm_files (
        root text NOT NULL,
        path text NOT NULL,
        size bigint NOT NULL,
        modified double precision NOT NULL,
        sha256 text NOT NULL,
        scan_job text NOT NULL,
        PRIMARY KEY (root, path)
    )""",
    """CREATE TABLE IF NOT EXISTS fm_copies (
        job_id text PRIMARY KEY,
        src text NOT NULL,
        dst text NOT NULL,
        size bigint NOT NULL
    )""",
)

UPSERT_FILE = """INSERT INTO fm_files (root, path, size, modified, sha256, scan_job)
    VALUES (%s, %s, %s, %s, %s, %s)
    ON CONFLICT (root, path) DO UPDATE SET size = excluded.size, modified = excluded.modified,
        sha256 = excluded.sha256, scan_job = excluded.scan_job"""
FORGET_MISSING = "DELETE FROM fm_files WHERE root = %s AND scan_job <> %s"
LIST_FILES = "SELECT root, path, size, modified, sha256 FROM fm_files WHERE root = %s ORDER BY path"
RECORD_COPY = "INSERT INTO fm_copies (job_id, src, dst, size) VALUES (%s, %s, %s, %s)"
LIST_COPIES = "SELECT job_id, src, dst, size FROM fm_copies ORDER BY job_id"


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file a scan found, relative to the scanned root."""

    root: str
    path: str
    size: int
    modified: float
    sha256: str


@dataclass(frozen=True, slots=True)
class CopyRecord:
    """A copy that finished: its file is complete at `dst`."""

    job_id: str
    src: str
    dst: str
    size: int


class FileIndex:
    """The example's tables on one open connection, inside one transaction."""

    def __init__(self, conn: Any, placeholder: str) -> None:
        self._conn = conn
        self._placeholder = placeholder

    def _run(self, statement: str, params: Sequence[Any] = ()) -> Any:
        return self._conn.execute(statement.replace("%s", self._placeholder), tuple(params))

    def create_tables(self) -> None:
        for statement in TABLES:
            self._run(statement)

    def record_scan(self, root: str, scan_job: str, entries: Sequence[FileEntry]) -> None:
        """Replace what the index knows of `root` with what this scan found."""
        for e in entries:
            self._run(UPSERT_FILE, (root, e.path, e.size, e.modified, e.sha256, scan_job))
        self._run(FORGET_MISSING, (root, scan_job))

    def files(self, root: str) -> list[FileEntry]:
        return [FileEntry(*row) for row in self._run(LIST_FILES, (root,)).fetchall()]

    def record_copy(self, record: CopyRecord) -> None:
        self._run(RECORD_COPY, (record.job_id, record.src, record.dst, record.size))

    def copies(self) -> list[CopyRecord]:
        return [CopyRecord(*row) for row in self._run(LIST_COPIES).fetchall()]


@contextlib.contextmanager
def open_index(url: str) -> Iterator[FileIndex]:
    """The index in one transaction: committed when the block ends, rolled back on an error."""
    if url.startswith("sqlite:///"):
        lite = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30)
        try:
            with lite:  # commits or rolls back
                yield FileIndex(lite, "?")
        finally:
            lite.close()
        return
    conninfo, schema = _split(url)
    with psycopg.connect(conninfo) as pg:  # commits, or rolls back on an error
        pg.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        yield FileIndex(pg, "%s")


def create_tables(url: str) -> None:
    """Create the example's tables (and, on PostgreSQL, their schema) if missing."""
    if not url.startswith("sqlite:///"):
        conninfo, schema = _split(url)
        with psycopg.connect(conninfo, autocommit=True) as pg:
            pg.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    with open_index(url) as index:
        index.create_tables()


def _split(url: str) -> tuple[str, str]:
    """A PostgreSQL URL without its `schema` parameter, and that schema ("public" if none)."""
    if not url.startswith(("postgresql://", "postgres://")):
        raise ValueError(f"the file index needs a sqlite:///path or postgresql:// URL, got {url!r}")
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    schema = next((v for k, v in query if k == "schema"), "public")
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema
