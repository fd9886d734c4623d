"""A task's keyword arguments as a pydantic model: the JSON Schema `/api/v1/tasks` shows, and the
check an HTTP enqueue passes before the task's own signature check.

Each parameter becomes a field under a neutral name with the parameter's name as its alias, so
no parameter name can collide with pydantic's own attributes. An annotation pydantic cannot
describe (or cannot resolve) becomes "any JSON value": the schema then says less, but never
refuses what the task would take.
"""

from __future__ import annotations

import functools
import inspect
import json
import operator
import typing
import warnings
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model

from ..errors import InvalidArguments
from ..secret import Secret
from ..tasks import Task


@functools.cache
def arguments_model(task: Task[Any, Any]) -> type[BaseModel]:
    """The model of the keyword arguments `task` takes over JSON."""
    hints = _hints(task.fn)
    fields: dict[str, Any] = {}
    extra: Literal["allow", "forbid"] = "forbid"
    for index, param in enumerate(task.signature.parameters.values()):
        if param.kind is param.VAR_KEYWORD:
            extra = "allow"
        if param.kind not in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            continue  # JSON arguments are keyword arguments: *args and positional-only are out
        annotation = _describable(hints.get(param.name, Any))
        default = ... if param.default is param.empty else param.default
        fields[f"f{index}"] = (annotation, Field(default, alias=param.name))
    config = ConfigDict(extra=extra, populate_by_name=False, protected_namespaces=())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. a default that is not JSON: left out of the schema
        model: type[BaseModel] = create_model(
            "Arguments", __config__=config, __doc__=f"Arguments of task {task.name}", **fields
        )
    return model


def arguments_schema(task: Task[Any, Any]) -> dict[str, Any]:
    """The JSON Schema of the task's keyword arguments."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        schema: dict[str, Any] = arguments_model(task).model_json_schema(by_alias=True)
    schema["title"] = task.name
    return schema


def check_arguments(task: Task[Any, Any], args: dict[str, Any]) -> None:
    """Refuse arguments whose names or JSON types do not fit the task, saying why."""
    try:
        arguments_model(task).model_validate_json(json.dumps(args), strict=True)
    except ValidationError as exc:
        reasons = "; ".join(_reason(error) for error in exc.errors())
        raise InvalidArguments(
            f"arguments do not fit task {task.name}{task.signature}: {reasons}"
        ) from None


def _reason(error: Any) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "arguments"
    if error["type"] == "extra_forbidden":
        return f"{where}: unexpected argument"
    if error["type"] == "missing":
        return f"{where}: missing required argument"
    return f"{where}: {error['msg']}"


def _hints(fn: Any) -> dict[str, Any]:
    """The function's resolved annotations; an empty dict when they cannot be resolved (each
    parameter then takes any JSON value)."""
    target = fn if inspect.isfunction(fn) or inspect.ismethod(fn) else getattr(fn, "__call__", fn)  # noqa: B004
    try:
        return typing.get_type_hints(target)
    except Exception:
        return {}


#: what a `Secret` parameter takes over JSON: the value as a string, sealed before it is stored
SECRET_TEXT = Annotated[str, Field(json_schema_extra={"format": "password", "writeOnly": True})]


def _describable(annotation: Any) -> Any:
    if annotation is Secret:
        return SECRET_TEXT
    if Secret in typing.get_args(annotation):  # Secret | None, say
        return functools.reduce(
            operator.or_, [SECRET_TEXT if a is Secret else a for a in typing.get_args(annotation)]
        )
    try:
        TypeAdapter(annotation)
    except Exception:
        return Any
    return annotation
