"""The APP argument: importing `module:attribute` and checking that it is an underway.App."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..app import App

F = TypeVar("F", bound=Callable[..., Any])


def app_argument(fn: F) -> F:
    """The APP argument every command takes (or reads from UNDERWAY_APP), as `app_path`."""
    return click.argument("app_path", metavar="APP", envvar="UNDERWAY_APP")(fn)


def load_app(path: str) -> App:
    """Import `module:attribute` (the current directory first on sys.path) and check that it
    is an underway.App. Raises click.BadParameter with a plain explanation otherwise."""
    module_name, sep, attribute = path.partition(":")
    if not sep or not module_name or not attribute:
        raise click.BadParameter(
            f"{path!r} is not of the form module:attribute (for example myproject.jobs:app)",
            param_hint="APP",
        )
    if not all(part.isidentifier() for part in module_name.split(".")):
        dotted = module_name.removesuffix(".py").strip("./").replace("/", ".")
        raise click.BadParameter(
            f"{module_name!r} is not a module name; write it as Python imports it, "
            f"for example {dotted or 'myproject.jobs'}:{attribute}",
            param_hint="APP",
        )
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            raise click.BadParameter(
                f"cannot import {module_name!r}: there is no such module in {cwd} or on sys.path",
                param_hint="APP",
            ) from None
        raise  # the module exists but imports something that does not: show where
    value: Any = module
    for part in attribute.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise click.BadParameter(
                f"module {module_name!r} has no attribute {attribute!r}", param_hint="APP"
            ) from None
    if not isinstance(value, App):
        raise click.BadParameter(
            f"{path} is {_a(type(value).__name__)}, not an underway.App", param_hint="APP"
        )
    return value


def _a(noun: str) -> str:
    return f"an {noun}" if noun[:1].lower() in "aeiou" else f"a {noun}"


class AppRef:
    """The APP argument of a group, imported only when a command needs it (so that
    `underway jobs APP list --help` works even when APP does not)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._app: App | None = None

    @property
    def app(self) -> App:
        if self._app is None:
            self._app = load_app(self.path)
        return self._app

    def close(self) -> None:
        if self._app is not None:
            self._app.close()


def bind_app(ctx: click.Context, path: str) -> AppRef:
    """Make APP the group's object for its commands (`@click.pass_obj`), closed at the end."""
    ref = AppRef(path)
    ctx.obj = ref
    ctx.call_on_close(ref.close)
    return ref
