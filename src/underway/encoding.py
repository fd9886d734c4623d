"""JSON is the only serializer: strict checks so a job never carries something that cannot
come back out exactly as it went in."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from .errors import InvalidArguments


def dumps(value: Any, what: str) -> str:
    """Encode `value` as compact JSON, or raise InvalidArguments naming the bad part of `what`."""
    problem = _find_problem(value, what)
    if problem:
        raise InvalidArguments(problem)
    try:
        text = _encode(value)
        text.encode()  # lone surrogates cannot be stored: find them here, not in the driver
        culprit = "\\u0000" in text and _find_string(value, what, _has_nul)
        if culprit:
            # PostgreSQL cannot store NUL in JSON; refuse it on every store alike.
            raise InvalidArguments(
                f"{culprit} holds a NUL character (\\x00), which PostgreSQL "
                "cannot store; remove it or encode the data (e.g. base64)"
            )
    except RecursionError:
        raise InvalidArguments(f"{what} is nested too deeply to encode as JSON") from None
    except UnicodeEncodeError:
        culprit = _find_string(value, what, _not_utf8) or what
        raise InvalidArguments(
            f"{culprit} is not valid Unicode (it holds a lone surrogate, such as '\\ud800'); "
            "it cannot be stored as JSON text"
        ) from None
    return text


def _find_string(value: Any, path: str, bad: Callable[[str], bool]) -> str | None:
    """Where the first string (value or key) for which `bad` is true sits, or None. Only
    used on error paths, to name the culprit."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if bad(item):
                return where
        elif isinstance(item, list):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(item))
        elif isinstance(item, dict):
            for k, v in item.items():
                stack.append((k, f"{where} key {k!r}"))
                stack.append((v, f"{where}[{k!r}]"))
    return None


def _has_nul(text: str) -> bool:
    return "\x00" in text


def _not_utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


def clean_text(text: str) -> str:
    """Text safe for every store: NUL (which PostgreSQL refuses) shown as \\0."""
    return text.replace("\x00", "\\0") if "\x00" in text else text


_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _find_problem(value: Any, path: str) -> str | None:
    # Walk iteratively: deep nesting must give a clear error, not a RecursionError. A list or
    # dict met again inside itself is a cycle (the walk would never end); met again beside
    # itself it is only shared, which JSON writes twice.
    stack: list[tuple[Any, str | None]] = [(value, path)]
    inside: set[int] = set()  # the containers on the path to the item being looked at
    while stack:
        item, where = stack.pop()
        if where is None:  # the container below has been looked at whole
            inside.discard(id(item))
            continue
        kind = type(item)
        if kind is list or kind is dict:
            if id(item) in inside:
                return f"{where} holds itself (a cycle), which JSON cannot hold"
            inside.add(id(item))
            stack.append((item, None))
            problem = _push_items(item, where, stack)
        else:
            problem = _leaf_problem(item, kind, where)
        if problem:
            return problem
    return None


def _push_items(item: Any, where: str, stack: list[tuple[Any, str | None]]) -> str | None:
    if type(item) is list:
        stack.extend((v, f"{where}[{i}]") for i, v in enumerate(item))
        return None
    for k, v in item.items():
        if type(k) is not str:
            return (
                f"{where} has the key {k!r} of type {type(k).__name__}; "
                "JSON object keys must be strings"
            )
        stack.append((v, f"{where}[{k!r}]"))
    return None


def _leaf_problem(item: Any, kind: type, where: str) -> str | None:
    if kind is str or kind is bool or kind is int or item is None:
        return None
    if kind is float:
        return None if math.isfinite(item) else f"{where} is {item!r}; JSON has no NaN or infinity"
    if isinstance(item, (str, int)):  # str and int enums encode as their values
        return None
    if kind is tuple:
        return f"{where} is a tuple; it would come back as a list, so pass a list instead"
    return (
        f"{where} is a {kind.__name__} ({item!r:.60}), which is not JSON; "
        "pass str, int, float, bool, None, list or dict "
        "(for example an ISO string for a datetime, or str(uuid))"
    )
