"""Secret arguments (underway.secret): sealing and opening with the app's key and its previous
keys, what people are shown, and what is cut out of error texts."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from underway import ConfigurationError, Secret
from underway.secret import (
    MARK,
    Sealer,
    is_credential_name,
    is_sealed_anywhere,
    scrub,
    sensitive_values,
    shown,
)

KEY, OLD = "k" * 32, "o" * 32


def test_a_secret_never_shows_its_value() -> None:
    secret = Secret("sk_live_123")
    assert repr(secret) == str(secret) == f"{secret}" == "Secret('********')"
    assert secret.reveal() == "sk_live_123"
    assert secret == Secret("sk_live_123") and secret != Secret("other")
    assert len({secret, Secret("sk_live_123")}) == 1
    with pytest.raises(TypeError, match="not pickled"):
        pickle.dumps(secret)
    with pytest.raises(TypeError, match="holds a str"):
        Secret(123)  # type: ignore[arg-type]


def test_sealed_arguments_hold_no_plaintext_and_open_to_secrets() -> None:
    sealer = Sealer(KEY)
    sealed = sealer.seal({"api_key": Secret("sk_live_123"), "cents": 5,
                          "more": [{"k": Secret("inner")}]})  # fmt: skip
    assert "sk_live_123" not in repr(sealed) and "inner" not in repr(sealed)
    assert set(sealed["api_key"]) == {MARK} and sealed["cents"] == 5
    assert is_sealed_anywhere(sealed) and not is_sealed_anywhere({"a": {"b": 1}})
    opened = Sealer(KEY).open(sealed)
    assert opened == {"api_key": Secret("sk_live_123"), "cents": 5,
                      "more": [{"k": Secret("inner")}]}  # fmt: skip
    # Fernet: a fresh IV each time, so equal values do not look equal when stored
    assert sealer.seal({"a": Secret("x")}) != sealer.seal({"a": Secret("x")})


def test_a_rotated_key_still_opens_what_the_old_one_sealed_and_a_stranger_cannot() -> None:
    sealed = Sealer(OLD).seal({"a": Secret("v")})
    assert Sealer(KEY, [OLD]).open(sealed) == {"a": Secret("v")}
    with pytest.raises(ConfigurationError, match="sealed with another key"):
        Sealer(KEY).open(sealed)


def test_sealing_without_a_key_says_which_setting_to_set() -> None:
    with pytest.raises(ConfigurationError, match="UNDERWAY_SECRET_KEY"):
        Sealer(None).seal({"a": Secret("v")})
    assert Sealer(None).seal({"a": 1}) == {"a": 1}  # no Secret: no key needed


@pytest.mark.parametrize(
    "name",
    ["api_token", "password", "apiKey", "X-Api-Key", "APIKEY", "client_secret", "auth_token",
     "privateKey", "db_password", "Authorization", "session_cookie", "webhookSecret"],
)  # fmt: skip
def test_credential_names_are_recognised(name: str) -> None:
    assert is_credential_name(name)


@pytest.mark.parametrize("name", ["user_id", "amount", "max_tokens", "keyword", "monkey", "path"])
def test_other_names_are_not(name: str) -> None:
    assert not is_credential_name(name)


def test_people_see_secrets_and_credentials_as_placeholders() -> None:
    stored = Sealer(KEY).seal({
        "api_key": Secret("s"), "password": "hunter22", "user": "ann",
        "nested": {"token": "t0k3n", "n": [1]}, "empty_token": None,
    })  # fmt: skip
    assert shown(stored) == {
        "api_key": "[secret]", "password": "[redacted]", "user": "ann",
        "nested": {"token": "[redacted]", "n": [1]}, "empty_token": None,
    }  # fmt: skip


def test_error_texts_lose_every_sensitive_value() -> None:
    values = sensitive_values({"api_key": Secret("sk_live_123"), "api_token": "tok_abcdef",
                               "user": "ann", "pin_token": 12})  # fmt: skip
    assert values == ["sk_live_123", "tok_abcdef"]  # longest first; too short: left alone
    text = "refused sk_live_123 for tok_abcdef by ann"
    assert scrub(text, values) == "refused [redacted] for [redacted] by ann"


#: what keys and tokens are made of; a secret holding "[" or "]" could be spelled again by the
#: placeholder and the text beside it
KEYLIKE = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzABCXYZ0123456789_-"), min_size=4)


@given(KEYLIKE, st.text(max_size=60), st.text(max_size=60))
def test_scrub_leaves_no_occurrence(secret: str, before: str, after: str) -> None:
    text = scrub(before + secret + after + secret, sensitive_values({"k": Secret(secret)}))
    assert secret not in text or secret in "[redacted]"


def test_a_cycle_in_arguments_is_refused_and_a_shared_value_is_not() -> None:
    from underway import App, InvalidArguments

    looped: dict[str, object] = {"name": "x"}
    looped["self"] = looped
    app = App("sqlite:///:memory:")
    task = app.task(name="tests.looped")(lambda data: None)
    with pytest.raises(
        InvalidArguments, match=r"argument of task tests.looped\['data'\]\['self'\] holds itself"
    ):
        task.enqueue(looped)
    shared = {"k": 1}
    assert task.enqueue({"a": shared, "b": shared}).args == {"data": {"a": {"k": 1}, "b": {"k": 1}}}
