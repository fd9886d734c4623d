"""The JSON Schema of a task's arguments and the check an HTTP enqueue runs against it: any
parameter name works, annotations pydantic cannot describe accept any JSON, *args and
**kwargs are handled."""

from __future__ import annotations

from typing import Any

import pytest

import underway
from underway.errors import InvalidArguments
from underway.web.arguments import arguments_schema, check_arguments


class Opaque:
    """A class pydantic knows nothing about."""


@pytest.fixture
def app(tmp_path: Any) -> underway.App:
    return underway.App(f"sqlite:///{tmp_path}/args.db")


def test_parameter_names_that_pydantic_itself_uses_are_fine(app: underway.App) -> None:
    @app.task(name="odd")
    def odd(model_config: int, json: str, schema: float = 1.0, copy: bool = False) -> None: ...

    schema = arguments_schema(app.get_task("odd"))
    assert set(schema["properties"]) == {"model_config", "json", "schema", "copy"}
    assert schema["required"] == ["model_config", "json"]
    check_arguments(app.get_task("odd"), {"model_config": 1, "json": "x"})
    with pytest.raises(InvalidArguments, match="model_config: Input should be a valid integer"):
        check_arguments(app.get_task("odd"), {"model_config": "1", "json": "x"})


def test_unknown_or_missing_annotations_take_any_json(app: underway.App) -> None:
    @app.task(name="loose")
    def loose(ctx, thing: Opaque, other, *rest: int, **extra: str) -> None: ...

    task = app.get_task("loose")
    schema = arguments_schema(task)
    assert set(schema["properties"]) == {"thing", "other"}  # the Context and *rest are not
    assert schema["additionalProperties"] is True or "additionalProperties" not in schema
    check_arguments(task, {"thing": {"any": ["json"]}, "other": 3, "more": "x"})


def test_a_misfit_names_every_problem(app: underway.App) -> None:
    @app.task(name="strict")
    def strict(a: int, b: list[str]) -> None: ...

    with pytest.raises(InvalidArguments) as caught:
        check_arguments(app.get_task("strict"), {"b": [1], "c": 0})
    message = str(caught.value)
    assert "a: missing required argument" in message
    assert "b.0: Input should be a valid string" in message
    assert "c: unexpected argument" in message
