"""Settings: defaults, then UNDERWAY_* variables, then keyword arguments; bad values refused."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest

import underway
from underway import App, ConfigurationError, Settings


def test_defaults() -> None:
    settings = Settings.load({})
    assert settings == Settings()
    assert settings.database_url == "sqlite:///underway.db"
    assert settings.lease_seconds == 30.0
    assert settings.heartbeat_seconds == 2.0
    assert settings.poll_seconds == 1.0
    assert settings.shutdown_grace_seconds == 10.0
    assert settings.max_rescues == 3
    assert settings.max_args_bytes == 1024 * 1024
    assert settings.concurrency == 10


def test_environment_overrides_defaults() -> None:
    env = {
        "UNDERWAY_DATABASE_URL": "sqlite:////tmp/elsewhere.db",
        "UNDERWAY_LEASE_SECONDS": "12.5",
        "UNDERWAY_CONCURRENCY": "4",
        "UNDERWAY_MAX_RESCUES": "0",
        "UNDERWAY_POLL_SECONDS": "",  # empty means unset
        "UNRELATED": "x",
    }
    settings = Settings.load(env)
    assert settings.database_url == "sqlite:////tmp/elsewhere.db"
    assert settings.lease_seconds == 12.5 and type(settings.lease_seconds) is float
    assert settings.concurrency == 4 and type(settings.concurrency) is int
    assert settings.max_rescues == 0
    assert settings.poll_seconds == Settings().poll_seconds


def test_keyword_arguments_override_the_environment() -> None:
    env = {"UNDERWAY_LEASE_SECONDS": "12", "UNDERWAY_CONCURRENCY": "4"}
    settings = Settings.load(env, lease_seconds=60, concurrency=None)
    assert settings.lease_seconds == 60.0 and type(settings.lease_seconds) is float
    assert settings.concurrency == 4  # None means "not given"


def test_os_environ_is_read_when_no_mapping_is_given(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("UNDERWAY_POLL_SECONDS", "0.5")
    assert Settings.load().poll_seconds == 0.5
    app = App(f"sqlite:///{tmp_path / 'x.db'}")
    assert app.settings.poll_seconds == 0.5
    assert app.settings.database_url == f"sqlite:///{tmp_path / 'x.db'}"


def test_settings_are_frozen() -> None:
    settings = Settings.load({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.lease_seconds = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("lease_seconds", "soon"),
        ("concurrency", "ten"),
        ("concurrency", "2.5"),
        ("max_args_bytes", "1MB"),
    ],
)
def test_a_bad_environment_value_names_the_setting_and_variable(name: str, raw: str) -> None:
    variable = f"UNDERWAY_{name.upper()}"
    with pytest.raises(ConfigurationError, match=name) as info:
        Settings.load({variable: raw})
    assert variable in str(info.value)
    assert raw in str(info.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("lease_seconds", "soon"),
        ("lease_seconds", 0),
        ("lease_seconds", -5),
        ("heartbeat_seconds", 0),
        ("poll_seconds", 0),
        ("poll_seconds", -1),
        ("wake_check_seconds", 0),
        ("progress_flush_seconds", -0.1),
        ("shutdown_grace_seconds", -1),
        ("max_rescues", -1),
        ("max_args_bytes", 0),
        ("concurrency", 0),
        ("concurrency", "many"),
    ],
)
def test_a_bad_keyword_value_names_the_setting(name: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=name):
        Settings.load({}, **{name: value})


@pytest.mark.parametrize("name", ["lease_seconds", "heartbeat_seconds", "poll_seconds"])
def test_nan_is_not_a_duration(name: str) -> None:
    # NaN passes every `<= 0` and `>=` comparison, so it needs refusing explicitly.
    with pytest.raises(ConfigurationError, match=name):
        Settings.load({}, **{name: math.nan})
    with pytest.raises(ConfigurationError, match=name):
        Settings.load({f"UNDERWAY_{name.upper()}": "nan"})


@pytest.mark.parametrize(
    ("name", "value"),
    [("lease_seconds", 1e300), ("retention_seconds", 1e10), ("poll_seconds", 2e9)],
)
def test_a_duration_no_store_can_add_to_a_time_is_refused(name: str, value: float) -> None:
    # lease_seconds=1e300 overflowed PostgreSQL's interval: every claim failed, forever.
    with pytest.raises(ConfigurationError, match=f"{name} must be a finite number of seconds"):
        Settings.load({}, **{name: value})


@pytest.mark.parametrize("concurrency", [0, -1, 2.5, True])
def test_a_worker_refuses_a_concurrency_it_cannot_run_with(
    concurrency: Any, tmp_path: Path
) -> None:
    # concurrency=0 used to mean "the default" (10), silently.
    app = App(f"sqlite:///{tmp_path / 'jobs.db'}")
    with pytest.raises(ConfigurationError, match="concurrency must be a whole number >= 1"):
        underway.Worker(app, concurrency=concurrency)


def test_a_fractional_count_is_refused_not_truncated() -> None:
    # concurrency=2.5 silently becoming 2 hides a mistake.
    with pytest.raises(ConfigurationError, match="concurrency"):
        Settings.load({}, concurrency=2.5)


def test_unknown_setting_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ConfigurationError, match="lease_secs") as info:
        Settings.load({}, lease_secs=10)
    assert "lease_seconds" in str(info.value)


@pytest.mark.parametrize(("heartbeat", "lease"), [(5.0, 5.0), (10.0, 5.0), (31.0, None)])
def test_heartbeat_must_be_shorter_than_the_lease(heartbeat: float, lease: float | None) -> None:
    with pytest.raises(ConfigurationError, match="heartbeat_seconds") as info:
        Settings.load({}, heartbeat_seconds=heartbeat, lease_seconds=lease)
    assert "lease_seconds" in str(info.value)


def test_heartbeat_shorter_than_lease_is_fine() -> None:
    settings = Settings.load({}, heartbeat_seconds=0.05, lease_seconds=0.2)
    assert (settings.heartbeat_seconds, settings.lease_seconds) == (0.05, 0.2)


def test_app_refuses_bad_settings_before_touching_the_store(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    with pytest.raises(ConfigurationError, match="lease_seconds"):
        App(f"sqlite:///{path}", lease_seconds=-1)
    with pytest.raises(ConfigurationError, match="bogus"):
        App(f"sqlite:///{path}", bogus=1)
    assert not path.exists()


# --- tenant quotas ---------------------------------------------------------------------------


def test_tenant_quotas_are_off_by_default_and_the_burst_defaults_to_the_rate_rounded_up() -> None:
    assert Settings.load({}).tenant_enqueue_rate == 0.0
    assert not App("sqlite:///:memory:").producer.quotas.active
    quota = App("sqlite:///:memory:", tenant_enqueue_rate=2.5).producer.quotas.of("acme")
    assert quota == underway.TenantQuota(per_second=2.5, burst=3)
    small = App("sqlite:///:memory:", tenant_enqueue_rate=0.1).producer.quotas.of("acme")
    assert small is not None and small.burst == 1
    env = {"UNDERWAY_TENANT_ENQUEUE_RATE": "10", "UNDERWAY_TENANT_ENQUEUE_BURST": "40"}
    loaded = Settings.load(env)
    assert (loaded.tenant_enqueue_rate, loaded.tenant_enqueue_burst) == (10.0, 40)


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"tenant_enqueue_rate": -1}, "tenant_enqueue_rate must be >= 0"),
        ({"tenant_enqueue_rate": math.nan}, "tenant_enqueue_rate must be a float"),
        ({"tenant_enqueue_rate": math.inf}, "tenant_enqueue_rate must be a float"),
        ({"tenant_enqueue_rate": "fast"}, "tenant_enqueue_rate must be a float"),
        ({"tenant_enqueue_burst": -1}, "tenant_enqueue_burst must be a whole number"),
        ({"tenant_enqueue_burst": 2.5}, "tenant_enqueue_burst must be an int"),
    ],
)
def test_bad_quota_settings_are_refused(overrides: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigurationError, match=needle):
        Settings.load({}, **overrides)


def test_quota_settings_built_directly_are_checked_too() -> None:
    with pytest.raises(ConfigurationError, match="finite number of jobs per second"):
        Settings(tenant_enqueue_rate=math.nan).check()


@pytest.mark.parametrize(
    ("per_second", "burst", "needle"),
    [
        (-1, 5, "must be > 0"),
        (0, 5, "map it to None"),
        (math.nan, 5, "finite number"),
        (math.inf, 5, "finite number"),
        ("10", 5, "finite number"),
        (True, 5, "finite number"),
        (1, 0, "burst=...\\) must be a whole number of jobs >= 1"),
        (1, 2.0, "whole number"),
        (1, None, "whole number"),
    ],
)
def test_a_bad_tenant_quota_is_refused(per_second: Any, burst: Any, needle: str) -> None:
    with pytest.raises(ConfigurationError, match=needle):
        underway.TenantQuota(per_second=per_second, burst=burst)


@pytest.mark.parametrize(
    ("quotas", "needle"),
    [
        ([("acme", None)], "must map tenant names"),
        ({"": None}, "keys must be tenant names"),
        ({3: None}, "keys must be tenant names"),
        ({"acme": 10}, "must be an underway.TenantQuota"),
    ],
)
def test_bad_tenant_quotas_of_an_app_are_refused(quotas: Any, needle: str) -> None:
    with pytest.raises(ConfigurationError, match=needle):
        App("sqlite:///:memory:", tenant_quotas=quotas)
