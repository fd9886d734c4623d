"""Named SQL statements kept in `.sql` files, one file per backend with the same names, and the
one way to splice fragments into them."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from types import MappingProxyType

from ..errors import StoreError

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def load_queries(package: str, filename: str = "queries.sql") -> Mapping[str, str]:
    """The named statements of `package`'s .sql file."""
    text = resources.files(package).joinpath(filename).read_text(encoding="utf-8")
    return parse_queries(text, f"{package}/{filename}")


def parse_queries(text: str, where: str = "queries.sql") -> Mapping[str, str]:
    """Parse `-- name: x` blocks into a read-only mapping of name -> statement, without the
    comment lines and the closing semicolon."""
    parts = _NAME.split(text)
    queries = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"{where} names the statement {name!r} twice")
        lines = [ln for ln in body.strip().splitlines() if not ln.lstrip().startswith("--")]
        queries[name] = "\n".join(lines).strip().rstrip(";")
    return MappingProxyType(queries)


def load_migrations(package: str) -> list[tuple[int, str, str]]:
    """`migrations/NNNN_name.sql` files as (version, name, sql), in order."""
    folder = resources.files(package).joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        match = re.fullmatch(r"(\d{4})_(\w+)\.sql", entry.name)
        if match:
            found.append((int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    return sorted(found)


def unapplied(
    migrations: Sequence[tuple[int, str, str]], applied: Iterable[int], where: str
) -> list[tuple[int, str, str]]:
    """The migrations not applied yet, in order. Each is applied by its own number, not by
    the highest applied one, so numbers need not be contiguous nor land in order: a branch's
    0009 applied before another's 0008 is merged still gets 0008 later. A number this
    underway does not know means a newer underway migrated `where`: refused."""
    done = set(applied)
    unknown = done - {version for version, _, _ in migrations}
    if unknown:
        raise StoreError(
            f"{where} has schema migration {max(unknown)}, which this underway does not know "
            "(a newer underway migrated it); upgrade underway"
        )
    return [m for m in migrations if m[0] not in done]


def placeholders(template: str) -> frozenset[str]:
    """The `{name}` placeholders of a statement.

    >>> sorted(placeholders("SELECT * FROM {schema}.t WHERE true {filters}"))
    ['filters', 'schema']
    """
    return frozenset(_PLACEHOLDER.findall(template))


def render(template: str, **fragments: str) -> str:
    """`template` with each `{name}` replaced by `fragments[name]`, in one pass (a fragment's
    own text is not searched again). Refuses a placeholder left unfilled and a fragment the
    template does not use, so a misspelt name on either side fails where it is made.

    >>> render("SELECT 1 FROM jobs WHERE true {queues}", queues="AND queue = :queue")
    'SELECT 1 FROM jobs WHERE true AND queue = :queue'
    """
    used = placeholders(template)
    missing = used - fragments.keys()
    if missing:
        raise ValueError(f"no fragment given for {sorted(missing)} in: {template[:80]!r}...")
    unused = fragments.keys() - used
    if unused:
        raise ValueError(f"fragments {sorted(unused)} have no placeholder in: {template[:80]!r}...")
    return _PLACEHOLDER.sub(lambda match: fragments[match[1]], template)
