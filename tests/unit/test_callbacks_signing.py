"""Our Standard Webhooks signatures verify with the `standardwebhooks` package from PyPI (the
independent verifier), for any message id, time and body; secrets are checked at settings
time with errors that say how to make a good one."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks import Webhook, WebhookVerificationError

from underway import ConfigurationError, Settings
from underway.callbacks import new_secret
from underway.callbacks.signing import Signer, secret_key

SECRET = new_secret()


@given(
    message_id=st.from_regex(r"msg_[0-9a-f]{32}", fullmatch=True),
    body=st.text(max_size=300),
    skew=st.integers(min_value=-240, max_value=240),
)
def test_every_signature_verifies_with_standardwebhooks(
    message_id: str, body: str, skew: int
) -> None:
    data = body.encode()
    headers = Signer.of(SECRET).headers(message_id, int(time.time()) + skew, data)
    Webhook(SECRET).verify(data, headers, json_parse=False)


@given(body=st.text(min_size=1, max_size=100), extra=st.text(min_size=1, max_size=5))
def test_a_changed_body_never_verifies(body: str, extra: str) -> None:
    headers = Signer.of(SECRET).headers("msg_1", int(time.time()), body.encode())
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify((body + extra).encode(), headers, json_parse=False)


def test_the_signature_is_the_spec_example() -> None:
    # The example of the Standard Webhooks specification.
    signer = Signer.of("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    signature = signer.signature(
        "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_new_secrets_are_fresh_and_usable() -> None:
    first, second = new_secret(), new_secret()
    assert first != second and first.startswith("whsec_")
    assert len(secret_key(first)) == 32
    assert Settings.load({"UNDERWAY_WEBHOOK_SECRET": first}).webhook_secret == first


@pytest.mark.parametrize(
    ("secret", "says"),
    [
        ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "must start with 'whsec_'"),
        ("whsec_not base64!", "valid base64"),
        ("whsec_c2hvcnQ=", "fewer than 16"),
    ],
)
def test_bad_secrets_are_refused_with_the_fix(secret: str, says: str) -> None:
    with pytest.raises(ConfigurationError, match=says) as caught:
        Settings.load(webhook_secret=secret)
    assert "new_secret()" in str(caught.value)


def test_the_secret_never_shows_in_the_settings_repr() -> None:
    assert SECRET not in repr(Settings.load(webhook_secret=SECRET))


def test_during_a_rotation_each_delivery_verifies_with_either_secret() -> None:
    new, old = new_secret(), new_secret()
    settings = Settings.load({}, webhook_secret=new, webhook_previous_secrets=[old])
    assert settings.webhook_secret is not None
    signer = Signer.of(settings.webhook_secret, settings.webhook_previous_secrets)
    body = b'{"type": "job.completed"}'
    headers = signer.headers("msg_" + "0" * 32, int(time.time()), body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (new, old):
        assert Webhook(secret).verify(body, headers) == {"type": "job.completed"}
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)
    # the old secrets come from the environment too, comma-separated
    env = {"UNDERWAY_WEBHOOK_SECRET": new, "UNDERWAY_WEBHOOK_PREVIOUS_SECRETS": f"{old}, {new}"}
    assert Settings.load(env).webhook_previous_secrets == (old, new)


def test_previous_secrets_are_checked_and_need_a_current_one() -> None:
    with pytest.raises(ConfigurationError, match="previous_secrets is set without webhook_secret"):
        Settings.load({}, webhook_previous_secrets=[new_secret()])
    with pytest.raises(ConfigurationError, match="setting webhook_previous_secrets must start"):
        Settings.load({}, webhook_secret=new_secret(), webhook_previous_secrets=["hunter2"])
    settings = Settings.load({}, webhook_secret=SECRET, webhook_previous_secrets=[new_secret()])
    assert "whsec_" not in repr(settings)
