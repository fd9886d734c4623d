"""`python -m voice_calls worker [--concurrency N]`: a worker of the example's app on
VOICE_CALLS_DATABASE_URL (default: a SQLite file here), using the cache service at
VOICE_CALLS_CACHE_URL if set. `python -m voice_calls cache [--port N]`: that cache service."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading

from .cache import CacheService
from .jobs import make_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m voice_calls")
    parser.add_argument("command", choices=["worker", "cache"])
    parser.add_argument("--concurrency", type=int, default=None, help="worker: jobs at once")
    parser.add_argument("--port", type=int, default=8765, help="cache: the port to serve on")
    options = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s pid={os.getpid()} %(levelname)s %(name)s: %(message)s",
    )
    if options.command == "cache":
        service = CacheService(port=options.port).start()
        print(f"cache service at {service.url}; set VOICE_CALLS_CACHE_URL={service.url}")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            service.stop()
        return
    make_app().run_worker(concurrency=options.concurrency)


if __name__ == "__main__":
    main()
