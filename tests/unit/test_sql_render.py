"""sqlfile: named statements and the one helper that splices fragments into them."""

from __future__ import annotations

import pytest

from underway.stores.sqlfile import parse_queries, placeholders, render


def test_render_fills_every_placeholder() -> None:
    text = render("SELECT a FROM {schema}.t WHERE true {queues} {queues}", schema='"s"',
                  queues="AND q = 1")  # fmt: skip
    assert text == 'SELECT a FROM "s".t WHERE true AND q = 1 AND q = 1'


def test_render_refuses_a_placeholder_left_unfilled() -> None:
    with pytest.raises(ValueError, match=r"no fragment given for \['queues'\]"):
        render("SELECT a FROM {schema}.t WHERE true {queues}", schema='"s"')


def test_render_refuses_a_fragment_the_template_does_not_use() -> None:
    with pytest.raises(ValueError, match=r"fragments \['quues'\] have no placeholder"):
        render("SELECT a FROM t WHERE true {queues}", queues="", quues="AND q = 1")


def test_a_fragment_is_not_searched_for_placeholders_again() -> None:
    assert render("SELECT {a}", a="'{b}'") == "SELECT '{b}'"


def test_a_template_without_placeholders_renders_as_it_is() -> None:
    assert render("SELECT 1") == "SELECT 1"
    assert placeholders("SELECT 1") == frozenset()


def test_parse_queries_strips_comments_and_the_closing_semicolon() -> None:
    parsed = parse_queries(
        "-- header\n\n-- name: one\n-- why\nSELECT 1;\n\n-- name: two\nSELECT\n  2;\n"
    )
    assert dict(parsed) == {"one": "SELECT 1", "two": "SELECT\n  2"}


def test_parse_queries_refuses_a_name_given_twice() -> None:
    with pytest.raises(ValueError, match="names the statement 'one' twice"):
        parse_queries("-- name: one\nSELECT 1;\n-- name: one\nSELECT 2;\n")
