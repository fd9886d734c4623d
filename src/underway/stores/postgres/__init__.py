"""The PostgreSQL store: any number of workers on any number of machines."""

from .store import PostgresStore

__all__ = ["PostgresStore"]
