"""The control socket's calls, once for both clients: what each sends, how long it waits, and how
its answer reads. :class:`~lunatic_mp.serve.client.Client` runs a :class:`Call` and returns what it
reads; :class:`~lunatic_mp.serve.client.AsyncClient` awaits it. A new call is written here once,
with a one-line method in each client.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from lunatic_mp.api.handles import Process
from lunatic_mp.config import EnvConfig
from lunatic_mp.vm.finished import Finished, Outcome
from lunatic_mp.vm.mailbox import Message

T = TypeVar("T")

WAIT: Any = object()
"""A call's timeout: the client's default."""


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One call of a control-socket method."""

    method: str
    params: tuple[Any, ...]
    read: Callable[[Any], T]
    """The answer as the caller gets it."""
    timeout: Any = WAIT


def _none(_answer: Any) -> None:
    return None


def _as_is(answer: Any) -> Any:
    return answer


def _pid_or_none(found: Any) -> int | None:
    return None if found is None else int(found)


def ping() -> Call[None]:
    return Call("ping", (), _none)


def spawn(
    module: str,
    function: str,
    params: Any,
    config: EnvConfig | None,
    worker: int | None,
    name: str | None,
    version: str | None,
) -> Call[int]:
    return Call("spawn", tuple(_spawn_params(module, function, params, config, worker, name, version)), int)


def send(process: Process | int | str, data: bytes | str, tag: int) -> Call[None]:
    return Call("send", (_target(process), data, tag), _none)


def request(process: Process | int | str, data: bytes | str, timeout: float, margin: float) -> Call[Message]:
    """The server waits ``timeout`` seconds for the reply; the client ``margin`` more."""
    return Call("request", (_target(process), data, timeout), _message, timeout + margin)


def join(pid: Process | int, timeout: float | None, margin: float) -> Call[Finished | None]:
    wait = None if timeout is None else timeout + margin
    return Call("join", (_target(pid), timeout), _finished, wait)


def kill(process: Process | int | str, reason: str | None) -> Call[None]:
    return Call("kill", (_target(process), reason), _none)


def exists(process: Process | int | str) -> Call[bool]:
    return Call("exists", (_target(process),), bool)


def register(name: str, version: str | None, process: Process | int) -> Call[None]:
    return Call("register", (name, _target(process), version), _none)


def lookup(name: str, requirement: str | None) -> Call[int | None]:
    return Call("lookup", (name, requirement), _pid_or_none)


def unregister(name: str, version: str | None) -> Call[None]:
    return Call("unregister", (name, version), _none)


def registry_put(name: str, pid: Process | int) -> Call[None]:
    """``name@version`` registers a version."""
    base, _, version = name.partition("@")
    return register(base, version or None, pid)


def registry_get(name: str) -> Call[int | None]:
    """``name@requirement`` finds the newest matching version."""
    base, _, requirement = name.partition("@")
    return lookup(base, requirement or None)


def registry_remove(name: str) -> Call[None]:
    base, _, version = name.partition("@")
    return unregister(base, version or None)


def registry_names() -> Call[list[tuple[str, str | None, int]]]:
    return Call("names", (), _names)


def processes(limit: int) -> Call[tuple[int, list[ProcessInfo]]]:
    return Call("processes", (limit,), _processes)


def stats() -> Call[dict[str, Any]]:
    return Call("stats", (), _as_is)


def modules() -> Call[list[dict[str, Any]]]:
    return Call("modules", (), _as_is)


def reload() -> Call[list[str]]:
    return Call("reload", (), list)


def stop() -> Call[None]:
    return Call("stop", (), _none)


@dataclass(frozen=True)
class ProcessInfo:
    """A live process, as ``processes`` lists it."""

    pid: int
    worker: int
    kind: str
    """``wasm`` or ``native``."""
    module: str
    function: str
    phase: str
    waiting: bool
    """Suspended in a host call (receive, sleep, ...)."""
    mailbox: int
    links: int
    monitors: int
    names: tuple[str, ...]
    """Its registry names (``name@version``)."""

    @classmethod
    def from_wire(cls, row: dict[str, Any]) -> ProcessInfo:
        return cls(
            pid=row["pid"],
            worker=row["worker"],
            kind=row["kind"],
            module=row["module"],
            function=row["function"],
            phase=row["phase"],
            waiting=row["waiting"],
            mailbox=row["mailbox"],
            links=row["links"],
            monitors=row["monitors"],
            names=tuple(row.get("names", ())),
        )


def _target(process: Process | int | str) -> int | str:
    if isinstance(process, int | str):
        return process
    return process.id


def _full_name(name: str, version: str | None) -> str:
    if "@" in name and version is not None:
        raise ValueError(f"pass the version separately, not in the name: {name!r}")
    return name if version is None else f"{name}@{version}"


def _config_options(config: EnvConfig | None) -> dict[str, Any]:
    """A config as ``spawn`` options (a remote client cannot preopen the server's directories)."""
    if config is None:
        return {}
    if config.preopened_dirs:
        raise ValueError("directories cannot be preopened through the control socket (use a config file)")
    return {
        "max_memory": config.max_memory,
        "max_fuel": config.max_fuel,
        "can_compile_modules": config.can_compile_modules,
        "can_create_configs": config.can_create_configs,
        "can_spawn_processes": config.can_spawn_processes,
        "spawn_local": config.spawn_local,
        "allowed_namespaces": sorted(config.allowed_namespaces),
        "args": list(config.args),
        "env": dict(config.env),
    }


def _spawn_params(
    module: str,
    function: str,
    params: Any,
    config: EnvConfig | None,
    worker: int | None,
    name: str | None,
    version: str | None,
) -> list[Any]:
    options = _config_options(config)
    if worker is not None:
        options["worker"] = worker
    if name is not None:
        options["name"] = name
    if version is not None:
        options["version"] = version
    return [module, function, list(params), options]


def _message(answer: dict[str, Any]) -> Message:
    return Message(answer["tag"], answer["data"], pid=answer["pid"])


def _finished(answer: dict[str, Any] | None) -> Finished | None:
    if answer is None:
        return None
    return Finished(
        Outcome(answer["outcome"]),
        tuple(answer["result"]),
        answer["message"],
        tuple(answer["backtrace"]),
        answer["exit_code"],
    )


def _names(answer: list[list[Any]]) -> list[tuple[str, str | None, int]]:
    return [(name, version, pid) for name, version, pid in answer]


def _processes(answer: dict[str, Any]) -> tuple[int, list[ProcessInfo]]:
    return answer["total"], [ProcessInfo.from_wire(row) for row in answer["processes"]]


__all__ = ["WAIT", "Call", "ProcessInfo"]
