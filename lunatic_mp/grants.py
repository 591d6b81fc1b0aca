"""A config may only grant what its creator holds.

A guest that may create configs and spawn builds a config for its child; a control-socket client
sends one with ``spawn``. Neither may give more than it has itself, or a guest with no files could
give its child ``/`` and read ``/etc/shadow``. :func:`excess` says what a config grants beyond its
creator's:

- directories: each must be inside one of the creator's own preopened directories, after
  resolving ``..`` and symlinks (:func:`resolve_dirs` makes the child open the resolved path);
- network rules: each ``net_bind`` / ``net_connect`` rule must lie within one rule of the
  creator's (its addresses a subset, its ports a sub-range);
- limits (``max_memory``, ``max_fuel``, ``max_mailbox``, ``max_processes``): no looser than
  the creator's (0, unlimited, only under an unlimited creator);
- permissions (``can_spawn_processes``, ``can_compile_modules``, ``can_create_configs``) and
  host namespaces: only those the creator has.
"""

from __future__ import annotations

import os

from lunatic_mp.config import EnvConfig
from lunatic_mp.netpolicy import Rule, parse_rules

LIMITS = ("max_memory", "max_fuel", "max_mailbox", "max_processes")
PERMISSIONS = ("can_spawn_processes", "can_compile_modules", "can_create_configs")


def _within_rule(rule: Rule, outer: Rule) -> bool:
    if outer.networks and not (
        rule.networks
        and all(
            any(n.version == o.version and n.subnet_of(o) for o in outer.networks)  # type: ignore[arg-type]
            for n in rule.networks
        )
    ):
        return False
    return outer.any_port or (not rule.any_port and outer.low <= rule.low and rule.high <= outer.high)


def _inside(path: str, directories: list[str]) -> bool:
    return any(os.path.commonpath([path, directory]) == directory for directory in directories)


def excess(config: EnvConfig, creator: EnvConfig) -> str | None:
    """What ``config`` grants that ``creator`` does not hold, in words; None if nothing."""
    for name in PERMISSIONS:
        if getattr(config, name) and not getattr(creator, name):
            return f"{name} is not granted to its creator"
    for name in LIMITS:
        bound, value = getattr(creator, name), getattr(config, name)
        if bound and not 0 < value <= bound:
            return f"{name} {value or 'unlimited'} is looser than its creator's {bound}"
    extra = config.allowed_namespaces - creator.allowed_namespaces
    if extra:
        return f"namespaces {sorted(extra)} are not allowed to its creator"
    for name in ("net_bind", "net_connect"):
        outer = parse_rules(tuple(getattr(creator, name)))
        for text, rule in zip(getattr(config, name), parse_rules(tuple(getattr(config, name))), strict=True):
            if not any(_within_rule(rule, o) for o in outer):
                return (
                    f"{name} rule {text!r} is not within its creator's rules {list(getattr(creator, name))}"
                )
    own = [os.path.realpath(host) for host in creator.preopened_dirs.values()]
    for guest, host in config.preopened_dirs.items():
        try:
            inside = _inside(os.path.realpath(host), own)
        except ValueError:  # a NUL byte, or a relative path against an absolute one
            inside = False
        if not inside:
            return f"directory {host!r} (as {guest!r}) is not inside a directory its creator has"
    return None


def resolve_dirs(config: EnvConfig) -> None:
    """Make ``config`` open each directory by its resolved path (the one :func:`excess` checked)."""
    config.preopened_dirs = {guest: os.path.realpath(host) for guest, host in config.preopened_dirs.items()}


__all__ = ["LIMITS", "PERMISSIONS", "excess", "resolve_dirs"]
