"""Arguments are checked at enqueue: they must fit the function's signature, be plain JSON and
stay under max_args_bytes. Also: which functions receive a Context.

No `from __future__ import annotations` here on purpose: the Context detection is tested with
real annotation objects, and with string annotations written out explicitly.
"""

import decimal
import json
import math
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import underway
from underway import App, Context, InvalidArguments, Task


@pytest.fixture
def make_sqlite_app(tmp_path: Path) -> Iterator[Callable[..., App]]:
    """Apps on a real SQLite file (this file tests argument handling, not the stores)."""
    apps: list[App] = []

    def make(**settings: Any) -> App:
        app = App(f"sqlite:///{tmp_path / 'args.db'}", **settings)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


@pytest.fixture
def app(make_sqlite_app: Callable[..., App]) -> App:
    return make_sqlite_app()


@pytest.fixture
def add(app: App) -> Task[[int, int], int]:
    @app.task(name="tests.add")
    def add(a: int, b: int = 0) -> int:
        return a + b

    return add


@pytest.fixture
def keep(app: App) -> Task[[Any], None]:
    @app.task(name="tests.keep")
    def keep(value: Any) -> None:
        return None

    return keep


def stored_count(app: App) -> int:
    return app.stats().total


# --- fitting the signature ---------------------------------------------------------------------


def test_positional_and_keyword_arguments_are_stored_by_name(app: App, add: Task[..., int]) -> None:
    assert add.enqueue(1, 2).args == {"a": 1, "b": 2}
    assert add.enqueue(1, b=2).args == {"a": 1, "b": 2}
    assert add.enqueue(b=2, a=1).args == {"a": 1, "b": 2}
    assert add.enqueue(1).args == {"a": 1}  # defaults are the function's business
    assert add(2, 3) == 5  # still a plain function


@pytest.mark.parametrize(
    ("args", "kwargs", "says"),
    [
        ((1, 2, 3), {}, "too many positional arguments"),
        ((), {"a": 1, "c": 2}, "'c'"),
        ((), {"b": 2}, "'a'"),
        ((), {}, "'a'"),
        ((1,), {"a": 2}, "multiple values for argument 'a'"),
    ],
    ids=["too-many", "unknown-kwarg", "missing-arg", "nothing", "twice"],
)
def test_arguments_that_do_not_fit_are_refused(
    app: App, add: Task[..., int], args: tuple[Any, ...], kwargs: dict[str, Any], says: str
) -> None:
    with pytest.raises(InvalidArguments) as info:
        add.enqueue(*args, **kwargs)
    message = str(info.value)
    assert says in message
    assert "tests.add" in message and "(a: int, b: int = 0)" in message
    assert stored_count(app) == 0


def test_enqueue_many_refuses_the_whole_batch_when_one_call_is_bad(
    app: App, add: Task[..., int]
) -> None:
    with pytest.raises(InvalidArguments, match="'c'"):
        add.enqueue_many([{"a": 1}, {"a": 2}, {"a": 3, "c": 4}])
    with pytest.raises(InvalidArguments, match="tuples of positional ones or task"):
        add.enqueue_many([[1, 2]])  # type: ignore[list-item]
    with pytest.raises(InvalidArguments, match="unique key"):
        add.options(key="k").enqueue_many([{"a": 1}])
    assert stored_count(app) == 0


def test_bad_enqueue_options_are_refused(app: App, add: Task[..., int]) -> None:
    with pytest.raises(InvalidArguments, match="timezone"):
        add.options(run_at=datetime(2030, 1, 1)).enqueue(1)
    with pytest.raises(InvalidArguments, match="max_attempts"):
        add.options(max_attempts=0).enqueue(1)
    assert stored_count(app) == 0


def test_var_positional_arguments_can_be_enqueued(app: App) -> None:
    @app.task(name="tests.total")
    def total(*numbers: int) -> int:
        return sum(numbers)

    job = total.enqueue(1, 2, 3)
    stored = app.get_job(job.id)
    assert stored is not None
    assert total.bind_stored(stored.args) == ((1, 2, 3), {})


def test_var_keyword_arguments_can_be_enqueued(app: App) -> None:
    @app.task(name="tests.tags")
    def tags(name: str, **labels: str) -> None:
        return None

    job = tags.enqueue("x", color="red", size="L")
    stored = app.get_job(job.id)
    assert stored is not None
    assert tags.bind_stored(stored.args) == (("x",), {"color": "red", "size": "L"})


# --- JSON only ---------------------------------------------------------------------------------


class Opaque:
    pass


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (datetime(2024, 1, 1, tzinfo=UTC), "datetime"),
        (date(2024, 1, 1), "date"),
        ({1, 2}, "set"),
        (frozenset({1}), "frozenset"),
        ((1, 2), "tuple"),
        (b"bytes", "bytes"),
        (bytearray(b"x"), "bytearray"),
        (decimal.Decimal("1.5"), "Decimal"),
        (uuid.UUID(int=1), "UUID"),
        (Opaque(), "Opaque"),
        (1 + 2j, "complex"),
        (math.nan, "nan"),
        (math.inf, "inf"),
        (-math.inf, "inf"),
        ({1: "a"}, "int"),
        ({None: "a"}, "NoneType"),
        ({("a", "b"): 1}, "tuple"),
        (print, "builtin_function_or_method"),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, str) else v,
)
def test_non_json_values_are_refused_naming_the_argument(
    app: App, keep: Task[..., None], value: Any, says: str
) -> None:
    with pytest.raises(InvalidArguments) as info:
        keep.enqueue(value)
    message = str(info.value)
    assert "['value']" in message
    assert says in message
    assert "tests.keep" in message
    assert stored_count(app) == 0


def test_the_message_names_the_nested_path(app: App, keep: Task[..., None]) -> None:
    value = {"users": [{"name": "a"}, {"name": "b", "joined": datetime(2024, 1, 1)}]}
    with pytest.raises(InvalidArguments) as info:
        keep.enqueue(value=value)
    assert "['value']['users'][1]['joined']" in str(info.value)
    assert "datetime" in str(info.value)
    assert "ISO string" in str(info.value)  # and says what to do instead


def test_tuples_and_non_string_keys_get_a_hint(app: App, keep: Task[..., None]) -> None:
    with pytest.raises(InvalidArguments, match="pass a list instead"):
        keep.enqueue([1, (2, 3)])
    with pytest.raises(InvalidArguments, match="must be strings"):
        keep.enqueue({"ok": {7: "seven"}})


def test_enum_members_of_str_and_int_are_stored_as_their_values(
    app: App, keep: Task[..., None]
) -> None:
    import enum

    class Color(enum.StrEnum):
        RED = "red"

    class Size(enum.IntEnum):
        L = 3

    job = keep.enqueue({"color": Color.RED, "size": Size.L})
    stored = app.get_job(job.id)
    assert stored is not None and stored.args == {"value": {"color": "red", "size": 3}}


def test_lone_surrogates_are_refused_with_the_place_named(app: App, keep: Task[..., None]) -> None:
    # "\ud800" is a valid Python str but not valid Unicode text: UTF-8 cannot encode it, so no
    # store can keep it as JSON text. underway refuses it at enqueue (encoding.dumps), in a
    # value or in a key, and names where it is (the property test below: anywhere).
    with pytest.raises(InvalidArguments, match=r"\['value'\] is not valid Unicode"):
        keep.enqueue("a\ud800b")
    with pytest.raises(InvalidArguments, match=r"\['value'\]\['note'\] is not valid Unicode"):
        keep.enqueue({"note": "a\udfffb"})
    with pytest.raises(InvalidArguments, match=r"\['value'\] key '\\ud800' is not valid Unicode"):
        keep.enqueue({"\ud800": None})
    assert stored_count(app) == 0


def test_deep_nesting_is_refused_or_kept_never_a_recursion_error(
    app: App, keep: Task[..., None]
) -> None:
    deep: list[Any] = []
    inner = deep
    for _ in range(5_000):
        inner.append([])
        inner = inner[0]
    try:
        job = keep.enqueue(deep)
    except InvalidArguments:
        assert stored_count(app) == 0
        return
    stored = app.get_job(job.id)
    assert stored is not None and stored.args == {"value": deep}


def test_the_returned_job_does_not_change_when_the_caller_mutates_its_arguments(
    app: App, keep: Task[..., None]
) -> None:
    items = [1, 2]
    options = {"mode": "fast"}
    job = keep.enqueue({"items": items, "options": options})
    items.append(3)
    options["mode"] = "slow"
    assert job.args == {"value": {"items": [1, 2], "options": {"mode": "fast"}}}
    assert app.get_job(job.id) == job


# --- size limit --------------------------------------------------------------------------------


def test_arguments_over_max_args_bytes_are_refused(make_sqlite_app: Callable[..., App]) -> None:
    app = make_sqlite_app(max_args_bytes=100)

    @app.task(name="tests.echo")
    def echo(s: str) -> str:
        return s

    # {"s":"..."} is 8 bytes of JSON around the string.
    assert echo.enqueue("x" * 92).args == {"s": "x" * 92}  # exactly 100 bytes
    with pytest.raises(InvalidArguments) as info:
        echo.enqueue("x" * 93)
    message = str(info.value)
    assert "max_args_bytes" in message and "101" in message and "tests.echo" in message
    # The limit is in bytes of UTF-8, not characters.
    with pytest.raises(InvalidArguments, match="max_args_bytes"):
        echo.enqueue("é" * 47)  # 94 bytes of text, 102 of JSON
    with pytest.raises(InvalidArguments, match="max_args_bytes"):
        echo.enqueue_many([{"s": "small"}, {"s": "x" * 500}])
    assert stored_count(app) == 1


# --- which functions get a Context -------------------------------------------------------------


def _ctx_named(ctx, a: int) -> None: ...  # type: ignore[no-untyped-def]


def _ctx_annotated(c: Context, a: int) -> None: ...


def _ctx_annotated_qualified(job_context: underway.Context, a: int) -> None: ...


def _ctx_string_annotation(c: "Context", a: int) -> None: ...


def _ctx_string_qualified(c: "underway.Context", a: int) -> None: ...


async def _ctx_async(ctx: Context, a: int) -> None: ...


def _no_ctx_plain(a: int) -> None: ...


def _no_ctx_not_first(a: int, ctx: int = 0) -> None: ...


def _no_ctx_other_annotation(context: dict[str, Any], a: int = 0) -> None: ...


def _no_ctx_no_params() -> None: ...


def _no_ctx_var_positional(*ctx: int) -> None: ...


@pytest.mark.parametrize(
    ("fn", "wants", "params"),
    [
        (_ctx_named, True, ["a"]),
        (_ctx_annotated, True, ["a"]),
        (_ctx_annotated_qualified, True, ["a"]),
        (_ctx_string_annotation, True, ["a"]),
        (_ctx_string_qualified, True, ["a"]),
        (_ctx_async, True, ["a"]),
        (_no_ctx_plain, False, ["a"]),
        (_no_ctx_not_first, False, ["a", "ctx"]),
        (_no_ctx_other_annotation, False, ["context", "a"]),
        (_no_ctx_no_params, False, []),
        (_no_ctx_var_positional, False, ["ctx"]),
    ],
    ids=lambda v: v.__name__ if callable(v) else None,
)
def test_context_detection(
    app: App, fn: Callable[..., Any], wants: bool, params: list[str]
) -> None:
    task = app.task(fn)
    assert task.wants_context is wants
    assert list(task.signature.parameters) == params


def test_the_context_is_not_an_argument_to_enqueue(app: App) -> None:
    task = app.task(_ctx_named)
    assert task.enqueue(1).args == {"a": 1}
    assert task.enqueue(a=2).args == {"a": 2}
    with pytest.raises(InvalidArguments, match="ctx"):
        task.enqueue(ctx=None, a=1)


def test_a_ctx_that_is_not_first_is_an_ordinary_argument(app: App) -> None:
    task = app.task(_no_ctx_not_first)
    assert task.enqueue(1, ctx=5).args == {"a": 1, "ctx": 5}


# --- any JSON value round-trips ----------------------------------------------------------------

# Valid Unicode text: no surrogate code points (category Cs; a lone one is refused, below), and
# no NUL (PostgreSQL cannot store it, so underway refuses it on every store, below).
valid_characters = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
valid_text = st.text(alphabet=valid_characters)
valid_keys = st.text(alphabet=valid_characters, max_size=10)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | valid_text,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(valid_keys, children, max_size=5)
    ),
    max_leaves=25,
)

# Valid text with one lone surrogate (U+D800..U+DFFF) somewhere in it.
text_with_a_lone_surrogate = st.builds(
    lambda before, surrogate, after: before + surrogate + after,
    valid_text,
    st.characters(categories=("Cs",)),
    valid_text,
)


def _in_a_list(items: tuple[list[Any], Any, list[Any]]) -> list[Any]:
    before, bad, after = items
    return [*before, bad, *after]


def _as_a_value(items: tuple[dict[str, Any], str, Any]) -> dict[str, Any]:
    others, key, bad = items
    return {**others, key: bad}


def _as_a_key(items: tuple[dict[str, Any], str, Any]) -> dict[str, Any]:
    others, bad_key, value = items
    return {**others, bad_key: value}


# JSON values with a lone surrogate somewhere: the string itself, or nested at any depth in a
# list item, a dict value or a dict key, among valid values. Every level keeps the bad string
# (a bad key cannot collide with the valid ones), so every example holds one.
json_values_with_a_lone_surrogate = st.recursive(
    text_with_a_lone_surrogate,
    lambda bad: (
        st.tuples(st.lists(json_values, max_size=3), bad, st.lists(json_values, max_size=3)).map(
            _in_a_list
        )
        | st.tuples(st.dictionaries(valid_keys, json_values, max_size=3), valid_keys, bad).map(
            _as_a_value
        )
        | st.tuples(
            st.dictionaries(valid_keys, json_values, max_size=3),
            text_with_a_lone_surrogate,
            json_values,
        ).map(_as_a_key)
    ),
    max_leaves=8,
)


def holds_a_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, list):
        return any(holds_a_lone_surrogate(v) for v in value)
    if isinstance(value, dict):
        return any(holds_a_lone_surrogate(k) or holds_a_lone_surrogate(v) for k, v in value.items())
    return False


def same_json(a: Any, b: Any) -> bool:
    """Equal and of the same JSON types all the way down (1 is not 1.0, False is not 0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    return bool(a == b)


@settings(
    max_examples=75,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(value=json_values)
def test_any_json_value_round_trips_through_enqueue(
    app: App, keep: Task[..., None], value: Any
) -> None:
    assert not holds_a_lone_surrogate(value)
    expected = json.loads(json.dumps(value))  # what JSON itself gives back
    assert same_json(expected, value)
    job = keep.enqueue(value=value)
    assert same_json(job.args, {"value": value})
    stored = app.get_job(job.id)
    assert stored is not None
    assert same_json(stored.args, {"value": value})


@settings(
    max_examples=75,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(value=json_values_with_a_lone_surrogate)
def test_any_json_value_holding_a_lone_surrogate_is_refused_and_nothing_stored(
    app: App, keep: Task[..., None], value: Any
) -> None:
    assert holds_a_lone_surrogate(value)
    with pytest.raises(InvalidArguments, match=r"\['value'\].* is not valid Unicode"):
        keep.enqueue(value=value)
    with pytest.raises(InvalidArguments, match="is not valid Unicode"):
        keep.enqueue_many([{"value": "fine"}, {"value": value}])  # the whole batch
    assert stored_count(app) == 0


def test_nul_characters_are_refused_with_the_place_named(app: App, keep: Task[..., None]) -> None:
    with pytest.raises(InvalidArguments, match=r"\['value'\]\['note'\].*NUL"):
        keep.enqueue({"note": "a\x00b"})
