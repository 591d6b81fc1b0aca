"""The control socket's methods: what ``lunatic-mp serve`` answers to a program (a mixin of
:class:`~lunatic_mp.serve.server.Server`).

The methods (params in order; ``target`` is a pid or a registry name, optionally
``name@requirement``; ``data`` bin or str):

================  ===============================================  ==========================
method            params                                           result
================  ===============================================  ==========================
ping                                                               ``"pong"``
spawn             module, function="_start", params=[], options={}  pid
send              target, data=b"", tag=0                          nil
request           target, data=b"", timeout=30                     {data, tag, pid}
join              pid, timeout=nil                                 {outcome, result, message,
                                                                   backtrace, exit_code} or nil
kill              target, reason=...                               nil
exists            target                                           bool
lookup            name, requirement=nil                            pid or nil
register          name, pid, version=nil                           nil
unregister        name, version=nil                                nil
names                                                              [[name, version, pid]]
processes         limit=10000 (per worker)                         {total, processes: [map]}
stats                                                              {workers: [map], server: map}
modules                                                            [{name, path, exports}]
reload                                                             [module names]
stop                                                               true (then it drains)
================  ===============================================  ==========================

``spawn`` options: ``worker``, ``name`` and ``version`` (register the new process), and the
keys of a config file's process ``config`` table except ``dirs``. ``join`` works for processes
spawned through this server (boot processes too); it answers nil after ``timeout`` seconds.
``request`` follows the convention of :mod:`lunatic_mp.api.handles`: the guest replies to the
sender with the request's tag.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, TypeVar

from lunatic_mp.api.runtime import Runtime
from lunatic_mp.errors import InvalidNameError, LunaticError, ServeConfigError
from lunatic_mp.serve.config import ServeConfig, bounded_spawn_config
from lunatic_mp.serve.control import CallError, ControlServer, Method, Params, lunatic_error_code
from lunatic_mp.serve.replies import Replies
from lunatic_mp.serve.rpc import Code
from lunatic_mp.vm.finished import Finished
from lunatic_mp.vm.mailbox import fresh_tag
from lunatic_mp.vm.module import Module
from lunatic_mp.vm.registry import Registry

log = logging.getLogger(__name__)

MAX_ENDS = 100_000
"""Processes spawned through the server whose end is remembered for ``join``, at most."""
DEFAULT_REQUEST_TIMEOUT = 30.0
SPAWN_TIMEOUT = 30.0

T = TypeVar("T")

_names = Registry()  # empty: only used to check names before they travel


class ControlMethods:
    """The ``rpc_*`` methods of the control socket, and what they share."""

    if TYPE_CHECKING:  # the server's, used here
        config: ServeConfig
        runtime: Runtime | None
        control: ControlServer
        modules: dict[str, Module]
        module_names: dict[bytes, str]
        ends: OrderedDict[int, Future[Finished]]
        reloads: dict[str, int]
        replies: Replies | None
        started_at: float

        def request_stop(self, why: str = "asked to stop") -> None: ...
        async def reload(self) -> list[str]: ...

    def methods(self) -> dict[str, Method]:
        return {
            "ping": Method(self.rpc_ping, while_draining=True),
            "spawn": Method(self.rpc_spawn),
            "send": Method(self.rpc_send),
            "request": Method(self.rpc_request),
            "join": Method(self.rpc_join),
            "kill": Method(self.rpc_kill),
            "exists": Method(self.rpc_exists),
            "lookup": Method(self.rpc_lookup),
            "register": Method(self.rpc_register),
            "unregister": Method(self.rpc_unregister),
            "names": Method(self.rpc_names),
            "processes": Method(self.rpc_processes),
            "stats": Method(self.rpc_stats),
            "modules": Method(self.rpc_modules),
            "reload": Method(self.rpc_reload),
            "stop": Method(self.rpc_stop, while_draining=True),
        }

    def rpc_ping(self, p: Params) -> str:
        p.at_most(0)
        return "pong"

    def rpc_spawn(self, p: Params) -> Coroutine[Any, Any, int]:
        p.at_most(4)
        name = p.text(0, "module")
        module = self.modules.get(name)
        if module is None:
            raise CallError(Code.NOT_FOUND, f"no module {name!r}; the server has {sorted(self.modules)}")
        function = p.text(1, "function", "_start")
        if function not in module.exports:
            raise CallError(Code.NOT_FOUND, f"module {name} has no export {function!r}")
        params = p.integers(2, "params", [])
        options = dict(p.mapping(3, "options", {}))
        worker = options.pop("worker", None)
        if worker is not None and type(worker) is not int:
            raise CallError(Code.BAD_PARAMS, "spawn option worker must be an integer")
        register_as = options.pop("name", None)
        version = options.pop("version", None)
        if (register_as is not None and type(register_as) is not str) or (
            version is not None and type(version) is not str
        ):
            raise CallError(Code.BAD_PARAMS, "spawn options name and version must be strings")
        if version is not None and register_as is None:
            raise CallError(Code.BAD_PARAMS, "spawn option version needs a name")
        full = None if register_as is None else full_name(register_as, version)
        if full is not None:
            self._check_name(full)
        try:
            config = bounded_spawn_config(options, self.config.control.spawn_config)
            future = self._runtime().spawn_future(module, function, params, config, worker=worker)
        except ServeConfigError as exc:
            raise CallError(Code.BAD_PARAMS, str(exc)) from None
        except LunaticError as exc:
            raise CallError(lunatic_error_code(exc), str(exc)) from None

        async def spawned() -> int:
            try:
                pid = await asyncio.wrap_future(future)
            except LunaticError as exc:
                raise CallError(lunatic_error_code(exc), str(exc)) from None
            self._remember(pid)
            if full is not None:
                await self._blocking(self._runtime().registry_put, full, pid)
            return pid

        return spawned()

    def rpc_send(self, p: Params) -> Any:
        p.at_most(3)
        target = p.target(0)
        data = p.binary(1, "data", b"")
        tag = p.integer(2, "tag", 0)
        if type(target) is int:
            self._send(target, data, tag)
            return None

        async def send_to_name() -> None:
            self._send(await self._resolve(target), data, tag)

        return send_to_name()

    def _send(self, pid: int, data: bytes, tag: int) -> None:
        try:
            self._runtime().send(pid, data, tag)
        except ValueError as exc:
            raise CallError(Code.BAD_PARAMS, str(exc)) from None
        except LunaticError as exc:
            raise CallError(lunatic_error_code(exc), str(exc)) from None

    def rpc_request(self, p: Params) -> Any:
        p.at_most(3)
        target = p.target(0)
        data = p.binary(1, "data", b"")
        timeout = p.number(2, "timeout", DEFAULT_REQUEST_TIMEOUT)
        if type(target) is int:
            return self._request(target, data, timeout)

        async def request_name() -> dict[str, Any]:
            return await self._request(await self._resolve(target), data, timeout)

        return request_name()

    def _request(self, pid: int, data: bytes, timeout: float) -> asyncio.Future[dict[str, Any]]:
        replies = self.replies
        assert replies is not None
        tag = fresh_tag()
        answer = replies.expect(tag, pid, timeout)
        try:
            self._send(pid, data, tag)
        except CallError:
            replies.forget(tag)
            raise
        return answer

    def rpc_join(self, p: Params) -> Any:
        p.at_most(2)
        pid = p.integer(0, "pid", low=1, high=2**63 - 1)
        timeout = p.number(1, "timeout", None)
        end = self.ends.get(pid)
        if end is None:
            raise CallError(Code.NOT_FOUND, f"process {pid:#x} was not spawned through this server")

        async def joined() -> dict[str, Any] | None:
            try:
                finished = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(end)), timeout)
            except TimeoutError:
                return None
            except LunaticError as exc:
                raise CallError(lunatic_error_code(exc), str(exc)) from None
            return finished_to_wire(finished)

        return joined()

    def rpc_kill(self, p: Params) -> Any:
        p.at_most(2)
        target = p.target(0)
        reason = p.text(1, "reason", "killed through the control socket")

        async def kill() -> None:
            pid = target if type(target) is int else await self._resolve(target)
            try:
                self._runtime().kill(pid, reason)
            except LunaticError as exc:
                raise CallError(lunatic_error_code(exc), str(exc)) from None

        return kill()

    async def rpc_exists(self, p: Params) -> bool:
        p.at_most(1)
        target = p.target(0)
        if type(target) is str:
            pid = await self._lookup(target)
            return pid is not None and await self._blocking(self._runtime().exists, pid)
        return await self._blocking(self._runtime().exists, target)

    def rpc_lookup(self, p: Params) -> Coroutine[Any, Any, int | None]:
        p.at_most(2)
        name = p.text(0, "name")
        requirement = p.text(1, "requirement", None)
        return self._lookup(full_name(name, requirement))

    def rpc_register(self, p: Params) -> Coroutine[Any, Any, None]:
        p.at_most(3)
        name = p.text(0, "name")
        pid = p.integer(1, "pid", low=1, high=2**63 - 1)
        full = full_name(name, p.text(2, "version", None))
        self._check_name(full)
        return self._blocking(self._runtime().registry_put, full, pid)

    def rpc_unregister(self, p: Params) -> Coroutine[Any, Any, None]:
        p.at_most(2)
        full = full_name(p.text(0, "name"), p.text(1, "version", None))
        self._check_name(full)
        return self._blocking(self._runtime().registry_remove, full)

    async def rpc_names(self, p: Params) -> list[list[Any]]:
        p.at_most(0)
        return [list(entry) for entry in await self._blocking(self._runtime().registry_names)]

    async def rpc_processes(self, p: Params) -> dict[str, Any]:
        p.at_most(1)
        limit = p.integer(0, "limit", 10_000, low=0, high=1_000_000)
        total, rows = await self._blocking(self._runtime().processes, limit)
        names: dict[int, list[str]] = {}
        for name, version, pid in await self._blocking(self._runtime().registry_names):
            names.setdefault(pid, []).append(full_name(name, version))
        for row in rows:
            row["names"] = names.get(row["pid"], [])
            row["module"] = self._module_name(row.pop("digest", b""), row["module"])
        rows.sort(key=lambda row: row["pid"])
        return {"total": total, "processes": rows}

    async def rpc_stats(self, p: Params) -> dict[str, Any]:
        p.at_most(0)
        runtime = self._runtime()
        workers = await self._blocking(runtime.stats)
        replies = self.replies
        return {
            "workers": workers,
            "server": {
                "uptime_s": round(time.time() - self.started_at, 3),
                "workers_configured": runtime.worker_count,
                "workers_lost": runtime.workers_lost,
                "modules": len(self.modules),
                "connections": len(self.control.connections),
                "in_flight": self.control.in_flight,
                "requests": dict(self.control.requests),
                "errors": dict(self.control.errors),
                "closed": dict(self.control.closed),
                "reloads": dict(self.reloads),
                "dropped_messages": 0 if replies is None else replies.dropped,
            },
        }

    def rpc_modules(self, p: Params) -> list[dict[str, Any]]:
        p.at_most(0)
        return [
            {"name": name, "path": str(self.config.modules[name]), "exports": sorted(module.exports)}
            for name, module in sorted(self.modules.items())
        ]

    def rpc_reload(self, p: Params) -> Coroutine[Any, Any, list[str]]:
        p.at_most(0)
        return self.reload()

    def rpc_stop(self, p: Params) -> bool:
        p.at_most(0)
        asyncio.get_running_loop().call_soon(self.request_stop, "asked through the control socket")
        return True

    def _runtime(self) -> Runtime:
        if self.runtime is None:
            raise CallError(Code.SHUTTING_DOWN, "the runtime is not running")
        return self.runtime

    def _remember(self, pid: int) -> None:
        """Keep the end of a process spawned here, for ``join``; forget the oldest ended ones."""
        self.ends[pid] = self._runtime().finished_future(pid)
        if len(self.ends) > MAX_ENDS:
            for old in [p for p, end in self.ends.items() if end.done()][: len(self.ends) - MAX_ENDS]:
                del self.ends[old]

    def _module_name(self, digest: bytes, fallback: str) -> str:
        """The config's name of a module, ``name (old)`` for code replaced by a reload."""
        name = self.module_names.get(digest)
        if name is None:
            return fallback
        current = self.modules.get(name)
        return name if current is not None and current.digest == digest else f"{name} (old)"

    @staticmethod
    def _check_name(full: str) -> None:
        try:
            _names.check_name(full)
        except InvalidNameError as exc:
            raise CallError(Code.INVALID_NAME, str(exc)) from None

    async def _lookup(self, name: str) -> int | None:
        try:
            _names.get(name)  # checks the name and requirement here, with a clear error
        except InvalidNameError as exc:
            raise CallError(Code.INVALID_NAME, str(exc)) from None
        return await self._blocking(self._runtime().registry_get, name)

    async def _resolve(self, name: str) -> int:
        pid = await self._lookup(name)
        if pid is None:
            raise CallError(Code.NOT_FOUND, f"no process is registered as {name!r}")
        return pid

    async def _blocking(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)``, a blocking runtime call, in a thread; runtime errors as CallError."""
        try:
            return await asyncio.to_thread(function, *args)
        except TimeoutError:
            raise CallError(Code.TIMEOUT, "the runtime did not answer in time") from None
        except LunaticError as exc:
            raise CallError(lunatic_error_code(exc), str(exc)) from None


def finished_to_wire(finished: Finished) -> dict[str, Any]:
    """How a process ended, as the ``join`` method answers it."""
    return {
        "outcome": finished.outcome.value,
        "result": [_wire_value(value) for value in finished.result],
        "message": finished.message,
        "backtrace": list(finished.backtrace),
        "exit_code": finished.exit_code,
    }


def _wire_value(value: object) -> object:
    """A process's result value as msgpack can carry it (a v128 becomes its decimal string)."""
    if isinstance(value, bool) or value is None or isinstance(value, float | str | bytes):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else str(value)
    return repr(value)


def full_name(name: str, version: str | None) -> str:
    return name if version is None else f"{name}@{version}"
