"""JSON is the only serializer: strict checks so a job never carries something that cannot
come back out exactly as it went in."""

from __future__ import annotations

import json
import math
from typing import Any

from .errors import InvalidArguments


def dumps(value: Any, what: str) -> str:
    """Encode `value` as compact JSON, or raise InvalidArguments naming the bad part of `what`."""
    problem = _find_problem(value, what)
    if problem:
        raise InvalidArguments(problem)
    return _encode(value)


_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _find_problem(value: Any, path: str) -> str | None:
    # Walk iteratively: deep nesting must give a clear error, not a RecursionError.
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        kind = type(item)
        if kind is str or kind is bool or kind is int or item is None:
            continue
        if kind is float:
            if not math.isfinite(item):
                return f"{where} is {item!r}; JSON has no NaN or infinity"
            continue
        if kind is list:
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(item))
            continue
        if kind is dict:
            for k, v in item.items():
                if type(k) is not str:
                    return (
                        f"{where} has the key {k!r} of type {type(k).__name__}; "
                        "JSON object keys must be strings"
                    )
                stack.append((v, f"{where}[{k!r}]"))
            continue
        if isinstance(item, (str, int)):  # str and int enums encode as their values
            continue
        if kind is tuple:
            return f"{where} is a tuple; it would come back as a list, so pass a list instead"
        return (
            f"{where} is a {kind.__name__} ({item!r:.60}), which is not JSON; "
            "pass str, int, float, bool, None, list or dict "
            "(for example an ISO string for a datetime, or str(uuid))"
        )
    return None
