"""Network rules (:mod:`lunatic_mp.netpolicy`) and where configs carry them (frames, serve)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lunatic_mp import EnvConfig
from lunatic_mp.cluster.frames import FrameError, decode_config, encode_config
from lunatic_mp.netpolicy import allows, check_rules, parse_rule
from lunatic_mp.serve.config import ServeConfigError, env_config


@pytest.mark.parametrize(
    ("rules", "address", "port", "allowed"),
    [
        ((), "127.0.0.1", 80, False),
        (("*",), "8.8.8.8", 53, True),
        (("*",), "127.0.0.1", 0, True),
        (("127.0.0.1:8080",), "127.0.0.1", 8080, True),
        (("127.0.0.1:8080",), "127.0.0.1", 8081, False),
        (("127.0.0.1:8080",), "127.0.0.2", 8080, False),
        (("127.0.0.1:8000-8099",), "127.0.0.1", 8099, True),
        (("127.0.0.1:8000-8099",), "127.0.0.1", 0, False),
        (("10.0.0.0/8",), "10.1.2.3", 22, True),
        (("10.0.0.0/8",), "11.0.0.1", 22, False),
        (("localhost",), "127.9.9.9", 1, True),
        (("localhost",), "::1", 1, True),
        (("[::1]:443",), "::1", 443, True),
        (("[fd00::/8]:*",), "fd12::1", 9, True),
        (("fd00::/8",), "fe80::1", 9, False),
        (("*:53",), "1.1.1.1", 53, True),
        (("*:53",), "::1", 54, False),
        (("10.0.0.0/8", "*:443"), "1.2.3.4", 443, True),
    ],
)
def test_allows(rules: tuple[str, ...], address: str, port: int, allowed: bool) -> None:
    assert allows(rules, address, port) is allowed


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ("example.com:80", "is not *, localhost, an IP address or a CIDR network"),
        ("127.0.0.1:http", "port 'http' is not *, N or N-M"),
        ("127.0.0.1:90-80", "ports must be 0-65535, low to high"),
        ("127.0.0.1:70000", "ports must be 0-65535"),
        ("[::1", "no ']'"),
        ("[::1]80", "expected ':PORT' after ']'"),
    ],
)
def test_bad_rules_say_what_is_wrong(rule: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem.replace("*", r"\*")):
        parse_rule(rule)


def test_check_rules_wants_a_list() -> None:
    with pytest.raises(ValueError, match="must be a list of rules"):
        check_rules("127.0.0.1:80", "net_connect")
    assert check_rules(["*"], "x") == ("*",)


def test_defaults_deny_and_permissive_allows() -> None:
    assert EnvConfig().net_bind == () and EnvConfig().net_connect == ()
    assert EnvConfig.permissive().net_bind == ("*",) == EnvConfig.permissive().net_connect
    assert "networking" in EnvConfig().allowed_namespaces


def test_configs_carry_their_rules_between_workers() -> None:
    config = EnvConfig(net_bind=("127.0.0.1:8080",), net_connect=("10.0.0.0/8", "*:443"))
    assert decode_config(encode_config(config)) == config
    bad = EnvConfig(net_connect=("nowhere",))
    with pytest.raises(FrameError, match=r"config\.net_connect: network rule 'nowhere'"):
        decode_config(encode_config(bad))


def test_serve_configs_take_rules(tmp_path: Path) -> None:
    config = env_config({"net_bind": ["127.0.0.1:8080"], "net_connect": ["*"]}, "p", tmp_path)
    assert (config.net_bind, config.net_connect) == (("127.0.0.1:8080",), ("*",))
    with pytest.raises(ServeConfigError, match=r"p\.net_connect: network rule 'x:y'"):
        env_config({"net_connect": ["x:y"]}, "p", tmp_path)
