"""Which addresses guests may bind and connect to: the ``net_bind`` / ``net_connect`` rules of an
:class:`~lunatic_mp.config.EnvConfig`.

A rule is text, so that configs stay plain values that cross workers and TOML files:

- ``*``: any address, any port;
- ``HOST:PORT``, ``HOST`` being ``*``, ``localhost`` (127.0.0.0/8 and ::1), an IPv4 address or
  CIDR (``10.0.0.0/8``), or an IPv6 address or CIDR in brackets (``[::1]``, ``[fd00::/8]``), and
  ``PORT`` being ``*``, a port (``8080``) or an inclusive range (``8000-8099``);
- ``HOST`` alone (an IPv6 one may go without brackets): any port of that host.

Port 0 (let the system choose) is matched only by a ``*`` port: the system may pick any port.
No rules at all means no network access: every networking call that would reach the network
fails with an error saying so (DNS resolution needs at least one rule of either kind).
"""

from __future__ import annotations

import functools
import ipaddress
from typing import NamedTuple

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_LOCALHOST = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


class Rule(NamedTuple):
    networks: tuple[IPNetwork, ...]  # empty: any address
    low: int
    high: int  # inclusive; (0, 65535) with any_port
    any_port: bool


def parse_rule(text: str) -> Rule:
    """One rule (see the module docstring); ValueError saying what is wrong."""
    if not isinstance(text, str):
        raise ValueError(f"a network rule is a string, got {type(text).__name__}")
    rule = text.strip()
    if rule == "*":
        return Rule((), 0, 65535, True)
    if rule.startswith("["):
        end = rule.find("]")
        if end < 0:
            raise ValueError(f"network rule {text!r}: no ']' after the IPv6 address")
        host, rest = rule[1:end], rule[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(f"network rule {text!r}: expected ':PORT' after ']'")
        port = rest[1:] if rest else "*"
    elif rule.count(":") > 1:  # a bare IPv6 address or network
        host, port = rule, "*"
    elif ":" in rule:
        host, port = rule.split(":", 1)
    else:
        host, port = rule, "*"
    networks = _hosts(text, host)
    low, high, any_port = _ports(text, port)
    return Rule(networks, low, high, any_port)


def _hosts(text: str, host: str) -> tuple[IPNetwork, ...]:
    if host == "*":
        return ()
    if host == "localhost":
        return _LOCALHOST
    try:
        return (ipaddress.ip_network(host, strict=False),)
    except ValueError:
        raise ValueError(
            f"network rule {text!r}: {host!r} is not *, localhost, an IP address or a CIDR network"
        ) from None


def _ports(text: str, port: str) -> tuple[int, int, bool]:
    if port == "*":
        return 0, 65535, True
    low_text, _, high_text = port.partition("-")
    try:
        low = int(low_text)
        high = int(high_text) if high_text else low
    except ValueError:
        raise ValueError(f"network rule {text!r}: port {port!r} is not *, N or N-M") from None
    if not 0 <= low <= high <= 65535:
        raise ValueError(f"network rule {text!r}: ports must be 0-65535, low to high")
    return low, high, False


@functools.lru_cache(maxsize=256)
def parse_rules(rules: tuple[str, ...]) -> tuple[Rule, ...]:
    return tuple(parse_rule(rule) for rule in rules)


def check_rules(rules: object, what: str) -> tuple[str, ...]:
    """``rules`` as a tuple of valid rule strings; ValueError naming ``what`` otherwise."""
    if isinstance(rules, str) or not isinstance(rules, tuple | list):
        raise ValueError(f"{what} must be a list of rules like '127.0.0.1:8080', got {rules!r}")
    values = tuple(rules)
    try:
        parse_rules(values)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None
    return values


def allows(rules: tuple[str, ...], address: str, port: int) -> bool:
    """Whether some rule lets a guest use ``address`` (an IP, as text) and ``port``."""
    if not rules:
        return False
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    for rule in parse_rules(rules):
        if not rule.any_port and (port == 0 or not rule.low <= port <= rule.high):
            continue
        if not rule.networks or any(ip.version == n.version and ip in n for n in rule.networks):
            return True
    return False
