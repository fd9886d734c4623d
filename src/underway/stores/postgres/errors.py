"""PostgreSQL's errors as sentences that say what happened and what to do, on one line."""

from __future__ import annotations

import psycopg

#: What the server's refusals mean and what to do, by SQLSTATE (class 08 and no SQLSTATE at
#: all are a lost or refused connection: the default).
_REFUSALS = {
    "53300": "PostgreSQL has no connection slot left (max_connections reached): lower "
             "pool_size across the processes, or raise the server's max_connections",
    "53100": "the PostgreSQL server's disk is full: free space on the server",
    "53200": "the PostgreSQL server ran out of memory",
    "54000": "a value is too large for PostgreSQL (beyond a size its indexes can hold)",
    "25006": "PostgreSQL is read-only here (a standby, or default_transaction_read_only is "
             "on): point underway at the primary",
    "3D000": "the PostgreSQL database does not exist: create it, or fix the URL",
    "28P01": "PostgreSQL refused the password",
    "28000": "PostgreSQL refused the login (pg_hba.conf or the role)",
}  # fmt: skip


def describe_error(exc: psycopg.Error) -> str:
    """A driver error as a sentence that says what happened and what to do, on one line."""
    code = exc.sqlstate or ""
    said = said_by(exc)
    if code in _REFUSALS:
        return f"{_REFUSALS[code]} ({said})"
    if code.startswith("54"):
        return f"{_REFUSALS['54000']} ({said})"
    if any(n in said for n in ("could not translate host name", "failed to resolve host")):
        return f"the PostgreSQL host name does not resolve (DNS): check the URL's host ({said})"
    return f"PostgreSQL is unreachable or went away: {said}"


def said_by(exc: psycopg.Error) -> str:
    """What the server or libpq said, on one line: the server's primary message without the
    CONTEXT lines (an error raised in a trigger quotes the trigger's statements, a hundred
    lines of SQL in every log line), libpq's several lines joined."""
    primary = exc.diag.message_primary if exc.sqlstate else None
    return " ".join((primary or str(exc)).split())
