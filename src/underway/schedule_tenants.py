"""Schedules run once per tenant (docs/decisions/0020-tenants-in-bulk.md): the tenants a slot
fires for, checked, and how the store and listings name them."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Awaitable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .errors import ConfigurationError, InvalidArguments
from .schedule import Schedule, TenantLister
from .tasks import check_options


def static_tenants(tenants: Iterable[str]) -> tuple[str, ...]:
    """A `tenants=` list as a schedule keeps it: at least one, each a non-empty string, no
    repeats (ConfigurationError says which is wrong)."""
    if isinstance(tenants, str | bytes):
        raise ConfigurationError(
            f"tenants= takes a list of tenants, got the string {tenants!r}; for one tenant "
            "give tenant=..."
        )
    listed = tuple(tenants)
    if not listed:
        raise ConfigurationError(
            "tenants= needs at least one tenant (a schedule for nobody would never fire)"
        )
    for tenant in listed:
        _check(tenant, ConfigurationError)
    repeated = sorted({t for t in listed if listed.count(t) > 1})
    if repeated:
        raise ConfigurationError(f"tenants= lists {', '.join(repeated)} more than once")
    return listed


def slot_tenants(schedule: Schedule) -> list[str | None]:
    """The tenants one slot of `schedule` fires a job for: its one tenant (or None) unless it
    runs per tenant; a lister is called now, and what it lists is checked (ConfigurationError)
    and kept once each, in its order."""
    tenants = schedule.tenants
    if tenants is None:
        return [schedule.tenant]
    if isinstance(tenants, tuple):
        return list(tenants)
    listed = _call(tenants)
    if isinstance(listed, str | bytes) or not isinstance(listed, Iterable):
        raise ConfigurationError(
            f"schedule {schedule.name}: its tenants function {lister_name(tenants)} must "
            f"return a list of tenants, got {type(listed).__name__}"
        )
    seen: dict[str | None, None] = {}
    for tenant in listed:
        _check(tenant, ConfigurationError, f"schedule {schedule.name}: ")
        seen[tenant] = None
    return list(seen)


def dump(schedule: Schedule) -> str | None:
    """Whom the schedule runs for, as the store keeps it for listings (None: not per tenant)."""
    tenants = schedule.tenants
    if tenants is None:
        return None
    return json.dumps(list(tenants) if isinstance(tenants, tuple) else lister_name(tenants))


def load(text: str | None) -> tuple[tuple[str, ...] | None, str | None]:
    """The stored form back: (the tenants listed, or the name of the function listing them)."""
    if text is None:
        return None, None
    value = json.loads(text)
    return (None, value) if isinstance(value, str) else (tuple(value), None)


def describe(tenants: tuple[str, ...] | TenantLister | None) -> tuple[tuple[str, ...] | None,
                                                                    str | None]:  # fmt: skip
    """(the tenants listed, or the name of the function listing them), as listings show them."""
    if tenants is None or isinstance(tenants, tuple):
        return tenants, None
    return None, lister_name(tenants)


def check_trigger(schedule: Schedule, tenant: str | None) -> str | None:
    """The tenant a run triggered by hand carries (InvalidArguments when it does not fit)."""
    if schedule.tenants is None:
        if tenant is not None and tenant != schedule.tenant:
            raise InvalidArguments(
                f"schedule {schedule.name} is not run per tenant; trigger it without tenant="
            )
        return schedule.tenant
    if tenant is None:
        raise InvalidArguments(
            f"schedule {schedule.name} runs once per tenant; trigger it for one: "
            "trigger_schedule(name, tenant=...)"
        )
    _check(tenant, InvalidArguments)
    if isinstance(schedule.tenants, tuple) and tenant not in schedule.tenants:
        raise InvalidArguments(
            f"schedule {schedule.name} does not run for tenant {tenant!r}; its tenants are "
            f"{', '.join(schedule.tenants)}"
        )
    return tenant


def lister_name(lister: TenantLister) -> str:
    """The dotted name of a tenants function, as listings show it."""
    module = getattr(lister, "__module__", None) or ""
    name = getattr(lister, "__qualname__", None) or type(lister).__qualname__
    return f"{module}.{name}" if module else name


def _check(tenant: object, error: type[Exception], where: str = "") -> None:
    if not isinstance(tenant, str) or not tenant:
        raise error(f"{where}a tenant must be a non-empty string, got {tenant!r}")
    try:
        check_options(tenant=tenant)
    except InvalidArguments as exc:
        raise error(f"{where}{exc}") from None


def _call(lister: TenantLister) -> Any:
    listed = lister()
    if not inspect.isawaitable(listed):
        return listed
    return _wait(listed)


def _wait(awaitable: Awaitable[Any]) -> Any:
    """Await on a loop of its own: the scheduler ticks on a store thread, where none runs; a
    tick called from async code (a test's) gets a thread of its own for it."""

    async def main() -> Any:
        return await awaitable

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result()
