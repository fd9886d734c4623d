"""The SSRF guard's rules, address by address, and the callback settings that feed it."""

from __future__ import annotations

import asyncio
import ipaddress

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from underway import ConfigurationError, InvalidArguments, Settings
from underway.callbacks.guard import Allow, parse_url, refusal, resolve
from underway.errors import CallbackRefused


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"),
        ("10.0.0.1", "private"), ("172.16.5.4", "private"), ("192.168.1.1", "private"),
        ("169.254.1.1", "link-local"), ("fe80::1", "link-local"),
        ("169.254.169.254", "metadata"), ("fd00:ec2::254", "metadata"),
        ("168.63.129.16", "metadata"), ("100.100.100.200", "metadata"),
        ("fd12:3456::1", "unique-local"), ("224.0.0.1", "multicast"), ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"), ("::", "unspecified"), ("240.0.0.1", "reserved"),
        ("100.64.0.1", "not public"), ("::ffff:127.0.0.1", "loopback IPv4 address inside IPv6"),
        ("::ffff:10.0.0.1", "private IPv4"), ("64:ff9b::a00:1", "private IPv4"),
        ("2002:7f00:1::", "loopback IPv4"),
    ],
)  # fmt: skip
def test_addresses_that_are_not_public_are_refused(address: str, kind: str) -> None:
    reason = refusal(ipaddress.ip_address(address))
    assert reason is not None and kind in reason


@pytest.mark.parametrize("address", ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


@given(st.ip_addresses(network="10.0.0.0/8") | st.ip_addresses(network="fc00::/7"))
def test_an_allowed_network_permits_its_addresses_and_no_others(ip: ipaddress._BaseAddress) -> None:
    allow = Allow.parse(["10.0.0.0/8", "fc00::/7"])
    assert refusal(ip, allow) is None  # type: ignore[arg-type]
    assert refusal(ipaddress.ip_address("192.168.0.1"), allow) is not None


def test_allow_entries_are_networks_or_host_names() -> None:
    allow = Allow.parse(["127.0.0.1/32", "10.1.2.3", "Hooks.Internal.", " ::1/128 "])
    assert [str(n) for n in allow.networks] == ["127.0.0.1/32", "10.1.2.3/32", "::1/128"]
    assert allow.hosts == {"hooks.internal"}
    with pytest.raises(ConfigurationError, match="callback_allow entry 'a b'"):
        Allow.parse(["a b"])


def test_what_an_allow_list_opens_is_its_non_public_networks_and_its_names() -> None:
    allow = Allow.parse(["10.0.0.0/8", "8.8.8.0/24", "::1", "hooks.internal"])
    assert allow.opened() == ["10.0.0.0/8", "::1/128", "hooks.internal"]
    assert Allow.parse(["8.8.8.0/24"]).opened() == []  # public: reachable anyway


def test_the_allow_list_comes_from_the_environment_comma_separated() -> None:
    env = {"UNDERWAY_CALLBACK_ALLOW": "127.0.0.1/32, hooks.internal,,"}
    assert Settings.load(env).callback_allow == ("127.0.0.1/32", "hooks.internal")
    assert Settings.load(callback_allow=["10.0.0.0/8"]).callback_allow == ("10.0.0.0/8",)
    with pytest.raises(ConfigurationError, match="callback_allow"):
        Settings.load(callback_allow="10.0.0.0/8, not/a/host")


@pytest.mark.parametrize("url", ["ftp://example.com/", "example.com/hook", "https://", "http:x"])
def test_only_http_urls_with_a_host_can_be_callbacks(url: str) -> None:
    with pytest.raises(InvalidArguments, match="http"):
        parse_url(url)


def test_a_checked_target_connects_to_the_address_and_keeps_the_name_for_tls() -> None:
    url = httpx.URL("https://localhost:8443/hooks?x=1")
    target = asyncio.run(resolve(url, Allow.parse(["127.0.0.0/8", "::1/128"])))
    assert target.url.host == target.address and target.address in ("127.0.0.1", "::1")
    assert (target.url.path, target.url.query) == ("/hooks", b"x=1")
    assert target.host_header == "localhost:8443"
    assert target.extensions == {"sni_hostname": "localhost"}


def test_metadata_names_are_refused_before_any_lookup() -> None:
    with pytest.raises(CallbackRefused, match="metadata"):
        asyncio.run(resolve(httpx.URL("http://metadata.google.internal/"), Allow()))
