"""A schedule's definition as the store keeps it for schedules put at run time (JSON text), so
a scheduler that never declared the schedule can rebuild and fire it
(docs/decisions/0018-stored-schedules.md)."""

from __future__ import annotations

import json
from typing import Any

from .errors import ConfigurationError
from .schedule import CatchUp, Cron, Every, Overlap, Rule, Schedule

#: the layout of the JSON; a scheduler refuses (logs and skips) a definition of a version it
#: does not read. Version 2 adds `tenants`; a schedule without them is still written as 1, so
#: schedulers of the version before read it.
VERSION = 2
READS = (1, 2)


def dump(schedule: Schedule) -> str:
    """The definition of `schedule` as JSON text (ConfigurationError if its args are not JSON)."""
    data: dict[str, Any] = {
        "version": VERSION, "task": schedule.task, "rule": _rule(schedule.rule),
        "catch_up": schedule.catch_up.value, "max_catch_up": schedule.max_catch_up,
        "misfire_grace": schedule.misfire_grace, "overlap": schedule.overlap.value,
        "args": schedule.args, "tenant": schedule.tenant,
    }  # fmt: skip
    if schedule.tenants is not None:
        if not isinstance(schedule.tenants, tuple):
            raise ConfigurationError(
                "a stored schedule's tenants= must be a list: a function cannot be stored "
                "(a scheduler without your code fires it too); declare the schedule in code "
                "(stored=False) to give tenants=function, or store the list and put the "
                "schedule again when the tenants change"
            )
        data["tenants"] = list(schedule.tenants)
    else:
        data["version"] = 1
    try:
        return json.dumps(data, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"a stored schedule's args must be JSON (numbers, strings, lists, objects): {exc}"
        ) from None


def load(name: str, text: str) -> Schedule:
    """The schedule a definition describes (ConfigurationError if it cannot be read)."""
    try:
        data = json.loads(text)
        if data.get("version") not in READS:
            raise ConfigurationError(
                f"schedule {name!r} was stored by another version of underway "
                f"(definition version {data.get('version')!r}, this one reads {READS})"
            )
        rule = data["rule"]
        parsed: Rule = (
            Every(rule["every"], rule["initial_delay"])
            if "every" in rule
            else Cron(rule["cron"], rule["timezone"])
        )
        return Schedule(
            name=name, task=data["task"], rule=parsed, catch_up=CatchUp(data["catch_up"]),
            max_catch_up=data["max_catch_up"], misfire_grace=data["misfire_grace"],
            overlap=Overlap(data["overlap"]), args=data["args"], tenant=data["tenant"],
            tenants=tuple(data["tenants"]) if data.get("tenants") is not None else None,
        )  # fmt: skip
    except ConfigurationError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigurationError(
            f"schedule {name!r} has an unreadable definition: {exc!r}"
        ) from None


def _rule(rule: Rule) -> dict[str, Any]:
    if isinstance(rule, Cron):
        return {"cron": rule.expression, "timezone": rule.timezone}
    if rule.first_after_boot is not None:
        raise ConfigurationError(
            "first_after_boot is for schedules declared in code (each process's start moves "
            "them); a schedule put at run time counts from when it was put: use initial_delay"
        )
    return {"every": rule.seconds, "initial_delay": rule.initial_delay}
