"""`python -m voice_calls worker [--concurrency N]`: run a worker of the example's app on
VOICE_CALLS_DATABASE_URL (default: a SQLite file here)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from .jobs import make_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m voice_calls")
    parser.add_argument("command", choices=["worker"])
    parser.add_argument("--concurrency", type=int, default=None)
    options = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s pid={os.getpid()} %(levelname)s %(name)s: %(message)s",
    )
    make_app().run_worker(concurrency=options.concurrency)


if __name__ == "__main__":
    main()
