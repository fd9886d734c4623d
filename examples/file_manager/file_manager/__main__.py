"""`python -m file_manager`: the site and a worker in one process, on 127.0.0.1."""

from __future__ import annotations

import argparse

import uvicorn

from .app import FileManager
from .web import create_site


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m file_manager", description=__doc__)
    parser.add_argument("--port", type=int, default=8004)
    parser.add_argument(
        "--database", default="sqlite:///file_manager.db",
        help="underway's store and the example's tables: sqlite:///path or postgresql://...",
    )  # fmt: skip
    options = parser.parse_args()
    manager = FileManager(options.database)
    try:
        # Loopback only: the page's API has no keys (see web.py).
        uvicorn.run(create_site(manager), host="127.0.0.1", port=options.port)
    finally:
        manager.close()


if __name__ == "__main__":
    main()
