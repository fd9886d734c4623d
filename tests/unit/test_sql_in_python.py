"""No SQL in the stores' Python: every statement and fragment lives in a .sql file, so both
dialects can be read (and compared) side by side. Docstrings and comments may talk about SQL;
string literals may not hold any."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import underway.stores

STORES = Path(underway.stores.__file__).parent
SOURCES = sorted(STORES.rglob("*.py"))

# A statement's keywords, upper case as every statement of ours writes them; the shapes of a
# statement in any case; and bound parameters (psycopg's %(name)s, SQLite's ? and :name after a
# comparison), which give away a filter fragment such as "id < ?".
KEYWORDS = re.compile(
    r"\b(SELECT|INSERT|UPDATE|DELETE|WHERE|FROM|JOIN|VALUES|RETURNING|CREATE|ALTER|DROP"
    r"|TRUNCATE|PRAGMA|BEGIN|COMMIT|ROLLBACK|SAVEPOINT|LISTEN|NOTIFY|COPY|VACUUM|ANALYZE"
    r"|EXPLAIN|AND|OR|NOT|IN|LIMIT|ORDER|GROUP)\b"
)
SHAPES = re.compile(
    r"\bselect\b.*\bfrom\b|\binsert\s+into\b|\bupdate\s+\S+\s+set\b|\bdelete\s+from\b"
    r"|\b(create|drop|alter)\s+(table|index|schema)\b|\bpragma\s+\w+|\bpg_\w+\("
    r"|%\(\w+\)s|[=<>]\s*(\?|:\w+)",
    re.IGNORECASE | re.DOTALL,
)
# (file relative to stores/, literal) pairs allowed to hold SQL, each with its reason. None
# today: the schema and channel are composed with psycopg's sql.Identifier, which is no SQL text.
ALLOWED: set[tuple[str, str]] = set()


def docstrings(tree: ast.Module) -> set[int]:
    """ids of the docstring nodes of the module, its classes and functions."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def sql_literals(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = docstrings(tree)
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in skip
        and (KEYWORDS.search(node.value) or SHAPES.search(node.value))
        and (str(path.relative_to(STORES)), node.value) not in ALLOWED
    ]


def test_the_scan_sees_the_store_modules() -> None:
    names = {str(p.relative_to(STORES)) for p in SOURCES}
    assert {"sql.py", "sqlite/store.py", "postgres/store.py"} <= names


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(STORES)))
def test_no_sql_in_string_literals(path: Path) -> None:
    found = sql_literals(path)
    assert not found, "SQL in Python; move it to queries.sql:\n" + "\n".join(
        f"  line {line}: {text!r}" for line, text in found
    )


@pytest.mark.parametrize(
    "literal",
    ["SELECT 1", "conn.execute('select * from t')", "delete from t", "PRAGMA x", "pg_notify(",
     "AND queue = %(queue)s WHERE", "create index i on t", "id < ?", "status = :status",
     "queue = ANY(%(queues)s)"],
)  # fmt: skip
def test_the_scan_recognises_sql(literal: str) -> None:
    assert KEYWORDS.search(literal) or SHAPES.search(literal)


@pytest.mark.parametrize(
    "literal",
    ["no such table", "run `underway migrate`", "the worker updates its leases",
     "could not switch {path} to WAL mode", "select a queue to pause"],
)  # fmt: skip
def test_the_scan_passes_plain_messages(literal: str) -> None:
    assert not (KEYWORDS.search(literal) or SHAPES.search(literal))
