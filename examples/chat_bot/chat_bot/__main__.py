"""`python -m chat_bot`: run the bot's maintenance (a worker with its scheduler) until Ctrl-C;
`python -m chat_bot stats` lists the tasks as `get_all_stats()` sees them, and
`stop|start|restart NAME` controls one, for every running process of the bot."""

from __future__ import annotations

import argparse

from .app import ChatBot
from .manager import TaskManager


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m chat_bot", description=__doc__)
    parser.add_argument("command", nargs="?", default="run",
                        choices=["run", "stats", "stop", "start", "restart"])  # fmt: skip
    parser.add_argument("name", nargs="?", help="the task to stop, start or restart")
    parser.add_argument(
        "--database", default="sqlite:///chat_bot.db",
        help="underway's store and the bot's tables: sqlite:///path or postgresql://...",
    )  # fmt: skip
    options = parser.parse_args()
    bot = ChatBot(options.database)  # intervals and services from the environment
    try:
        bot.prepare()
        manager = TaskManager(bot.app)
        if options.command == "run":
            bot.app.run_worker(concurrency=6)
        elif options.command == "stats":
            for s in manager.get_all_stats().values():
                print(f"{s.name:26} {s.state:12} last {s.last_run} next {s.next_run} "
                      f"runs {s.runs} failures {s.failures}")  # fmt: skip
        elif options.name is None:
            parser.error(f"{options.command} needs the task's name (see `stats`)")
        else:
            verbs = {"stop": manager.stop_task, "start": manager.start_task,
                     "restart": manager.restart_task}  # fmt: skip
            verbs[options.command](options.name)
    finally:
        bot.close()


if __name__ == "__main__":
    main()
