"""What the processes of an environment may do and use (lunatic's ProcessConfig).

Configs are plain values: guests create and edit them through ``lunatic::process`` functions,
children inherit a copy of their parent's unless given another.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

FUEL_UNIT = 100_000
"""Guests count fuel in units of 100,000 Wasm instructions, as lunatic does."""
DEFAULT_MAX_MAILBOX = 100_000
"""Data messages a mailbox holds by default before its senders are paused: some 17 MiB of small
messages, far more than a process that keeps up ever queues, and a bound on one that does not."""

ALL_NAMESPACES: frozenset[str] = frozenset(
    {
        "process", "message", "timer", "registry", "error", "version", "trap", "wasi", "metrics",
        "networking", "distributed",
    }
)  # fmt: skip


@dataclass(slots=True)
class EnvConfig:
    """Limits and permissions of a process and the children it spawns.

    ``max_memory`` is in bytes (0: no limit beyond wasm32's 4 GiB); ``max_fuel`` in units of
    :data:`FUEL_UNIT` instructions (0: unlimited). ``allowed_namespaces`` names the
    ``lunatic::*`` host namespaces a guest may import (``wasi`` covers WASI preview1 too).
    ``preopened_dirs`` maps a guest path to a host directory. ``spawn_local`` keeps the children
    a process spawns on its own worker instead of spreading them over every worker.
    ``max_mailbox`` bounds how many data messages a process's mailbox holds: a process sending
    to a full mailbox is paused until the receiver has taken half of them (by default
    :data:`DEFAULT_MAX_MAILBOX`; 0: unbounded, as in lunatic and Erlang, where a send never
    waits). ``max_processes`` bounds the live processes of the environment ``environment_id``
    names, on every worker together: a spawn past it fails with an error for the spawner (0: no
    bound). ``max_env_memory`` bounds, the same way, the memory the environment's live
    processes may take together, in bytes: each Wasm one reserves its ``max_memory`` (the
    runtime's per-process ceiling when that is 0 or more) from the budget when it is spawned and
    gives it back when it ends (0: no budget). A runtime gives each limited environment its id;
    children inherit the environment of their parent.
    ``net_bind`` and ``net_connect`` are the addresses and ports guests may bind (listen) on and
    connect (or send datagrams) to, as rules of :mod:`lunatic_mp.netpolicy` (``"*"``: anywhere;
    ``"127.0.0.1:8000-8099"``, ``"10.0.0.0/8"``...); none (the default): no network access.
    ``program_name`` puts the module's name in front of ``args`` as WASI's argv[0], as lunatic's
    command line does for its root process; a config a guest creates has it off, so that the
    arguments it adds (``config_add_command_line_argument``) reach its children as they are.
    """

    max_memory: int = 0
    max_fuel: int = 0
    max_mailbox: int = DEFAULT_MAX_MAILBOX
    max_processes: int = 0
    max_env_memory: int = 0
    environment_id: int = 0
    can_compile_modules: bool = False
    can_create_configs: bool = False
    can_spawn_processes: bool = False
    spawn_local: bool = False
    program_name: bool = True
    allowed_namespaces: frozenset[str] = ALL_NAMESPACES
    preopened_dirs: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    net_bind: tuple[str, ...] = ()
    net_connect: tuple[str, ...] = ()

    @classmethod
    def permissive(cls, **overrides: object) -> EnvConfig:
        """Everything allowed: what ``lunatic-mp run`` gives its root process."""
        config = cls(
            can_compile_modules=True,
            can_create_configs=True,
            can_spawn_processes=True,
            net_bind=("*",),
            net_connect=("*",),
        )
        return dataclasses.replace(config, **overrides)  # type: ignore[arg-type]

    @property
    def limits_environment(self) -> bool:
        """Whether spawns into its environment are counted (``max_processes``, ``max_env_memory``)."""
        return bool(self.max_processes or self.max_env_memory)

    def memory_reservation(self, ceiling: int) -> int:
        """What a process of this config takes from ``max_env_memory``: the most its memory can
        grow to, ``max_memory`` under the engine's ``ceiling`` (all of it when 0)."""
        return min(self.max_memory, ceiling) if self.max_memory else ceiling

    def copy(self) -> EnvConfig:
        return dataclasses.replace(
            self, preopened_dirs=dict(self.preopened_dirs), args=list(self.args), env=dict(self.env)
        )

    def preopen(self, guest_path: str, host_path: str | Path | None = None) -> None:
        """Give guests access to a host directory (under ``guest_path``)."""
        host = Path(host_path if host_path is not None else guest_path)
        if not host.is_dir():
            raise NotADirectoryError(f"cannot preopen {host}: not a directory")
        self.preopened_dirs[guest_path] = str(host)
