"""Which store a database URL opens, and the typos that must not quietly become a SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest

from underway import ConfigurationError
from underway.settings import Settings
from underway.stores import open_store


@pytest.mark.parametrize(
    ("url", "meant"),
    [
        ("postgresql//postgres@db.example/app", "postgresql://postgres@db.example/app"),
        ("postgresql:/postgres@db.example/app", "postgresql://postgres@db.example/app"),
        ("postgresql:postgres@db.example/app", "postgresql://postgres@db.example/app"),
        ("postgres//db.example/app", "postgres://db.example/app"),
        ("POSTGRESQL:/db.example/app", "postgresql://db.example/app"),
        ("sqlite//jobs.db", "sqlite://jobs.db"),
    ],
)
def test_a_mistyped_scheme_is_refused_naming_the_url_meant(
    url: str, meant: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match="typo") as refused:
        open_store(Settings.load({}, database_url=url))
    assert meant in str(refused.value)
    assert list(tmp_path.iterdir()) == []  # no stray SQLite file was made


@pytest.mark.parametrize("form", ["sqlite:///{p}", "sqlite:{p}", "{p}"])
def test_sqlite_urls_and_bare_paths_still_open_a_file(form: str, tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    store = open_store(Settings.load({}, database_url=form.format(p=path)))
    try:
        store.migrate()
    finally:
        store.close()
    assert path.exists()
