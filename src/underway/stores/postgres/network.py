"""libpq settings underway gives its connections unless the URL sets them: TCP keepalives, so
the kernel notices a network path that died without a FIN or RST (a pulled cable, a dropped
NAT entry, a firewall that starts dropping), and a connect to an unreachable host that gives
up. Without them a connection waiting for an answer that will never come waits for hours."""

from __future__ import annotations

from psycopg.conninfo import conninfo_to_dict, make_conninfo

#: every connection: a path silent for 10 s is probed every 5 s and given up after 3 misses
KEEPALIVES = {
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "connect_timeout": "10",
}

#: the pool's connections also give up on data the server has not acknowledged for 30 s (a
#: listening connection only reads, so this would never fire for it)
POOLED = {**KEEPALIVES, "tcp_user_timeout": "30000"}


def with_defaults(conninfo: str, defaults: dict[str, str]) -> str:
    """`conninfo` with `defaults` for what it does not set itself."""
    return make_conninfo("", **{**defaults, **conninfo_to_dict(conninfo)})
