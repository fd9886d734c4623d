"""The SQLite store: one file, WAL mode, any number of processes on one machine."""

from .store import SqliteStore

__all__ = ["SqliteStore"]
