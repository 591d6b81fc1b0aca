"""Process handles, environments and the registry view: the Python API over a :class:`Runtime`.

A :class:`~lunatic_mp.api.runtime.Runtime` speaks in pids; programs would rather hold an object that
knows its runtime, so that ``server.request(b"ping")`` or ``server.join()`` reads like a call. This
module gives them that, without adding state to the runtime:

- :class:`Process` is the protocol every process handle implements: an ``id`` and ``send``.
- :class:`RuntimeProcess` is a handle on any process of a runtime: messages, request/reply,
  links, monitors, kill, join. :class:`WasmProcess` and :class:`PythonProcess` (a native process,
  :mod:`lunatic_mp.vm.native`) say which kind it runs.
- :class:`Environment` spawns processes under one :class:`~lunatic_mp.config.EnvConfig` (their
  limits and permissions) and has a :class:`Registry` view.

Request/reply convention
    :meth:`RuntimeProcess.request` sends ``data`` from the host program's mailbox
    (:attr:`Runtime.pid`) with a fresh tag, unique in this Python process, then waits for a data
    message with that same tag. A guest answers a request by sending its reply to the request's
    sender (``lunatic::message::get_process_id`` of the received message) **with the request's
    tag** (``get_tag``). Fresh tags keep concurrent requests from several threads apart: each
    waits only for its own reply. A reply that arrives after its request timed out stays in the
    host program's mailbox (receive it with ``Runtime.receive(tags=[tag])`` if it matters).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from lunatic_mp.config import EnvConfig
from lunatic_mp.vm.finished import Finished
from lunatic_mp.vm.mailbox import REQUEST_TAG_BASE, Message, fresh_tag

if TYPE_CHECKING:
    from lunatic_mp.api.runtime import Runtime
    from lunatic_mp.vm.module import Module

_environment_ids = itertools.count(1)


@runtime_checkable
class Process(Protocol):
    """What every process handle offers, whatever runs the process (Wasm or native Python)."""

    @property
    def id(self) -> int:
        """The process id (pid), unique within its runtime."""
        ...

    def send(self, data: bytes = b"", tag: int = 0) -> None:
        """Send ``data`` with ``tag`` to the process, from the host program's mailbox."""
        ...


def _pid(process: Process | int) -> int:
    return process if isinstance(process, int) else process.id


class PidHandle:
    """What every handle on a process shares: its pid, equality (same pid, same runtime) and a
    readable repr. Subclasses say which runtime they belong to through :meth:`_home`."""

    __slots__ = ("_id",)

    def __init__(self, pid: int) -> None:
        self._id = pid

    @property
    def id(self) -> int:
        """The process id."""
        return self._id

    def _home(self) -> object:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        """Same pid of the same runtime: a handle that does not know the process's kind (from
        the registry) equals one that does."""
        if not isinstance(other, PidHandle):
            return NotImplemented
        return self._id == other._id and self._home() is other._home()

    def __hash__(self) -> int:
        return hash(self._id)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._id:#x}>"


class RuntimeProcess(PidHandle):
    """A handle on a process of a :class:`Runtime`, Wasm or native.

    Handles are cheap values: two handles on the same pid of the same runtime are equal. ``join``
    works for processes spawned by the host program (through this runtime) only; watch others
    with :meth:`monitor`.
    """

    __slots__ = ("_finished", "_runtime")

    def __init__(self, runtime: Runtime, pid: int) -> None:
        super().__init__(pid)
        self._runtime = runtime
        self._finished: Future[Finished] | None = None

    def _home(self) -> object:
        return self._runtime

    @property
    def runtime(self) -> Runtime:
        """The runtime the process belongs to."""
        return self._runtime

    def send(self, data: bytes = b"", tag: int = 0) -> None:
        """Send ``data`` with ``tag`` to the process (from the host program, :attr:`Runtime.pid`)."""
        self._runtime.send(self._id, data, tag)

    def request(self, data: bytes = b"", *, tag: int | None = None, timeout: float | None = 30.0) -> Message:
        """Send ``data`` and wait for the reply: a data message with the same tag.

        ``tag`` defaults to a fresh one (see the module docstring: the guest must reply to the
        sender with the request's tag). Raises :class:`TimeoutError` when no reply arrives within
        ``timeout`` seconds (None: wait forever).
        """
        tag = fresh_tag() if tag is None else tag
        self._runtime.send(self._id, data, tag)
        reply = self._runtime.receive(tags=(tag,), timeout=timeout)
        if reply is None:
            raise TimeoutError(f"process {self._id:#x} did not reply to tag {tag} within {timeout} s")
        return reply

    def link(self, other: Process | int, tag: int = 0) -> None:
        """Link this process and ``other`` (a handle, or a pid) both ways, with ``tag`` stored at
        both sides: when one dies, the other gets LinkDied with ``tag`` (and dies with it on a
        failure, unless it turned ``die_when_link_dies`` off). Passing :attr:`Runtime.pid` links
        the host program: LinkDied then arrives in its mailbox.

        Both sides are in place when this returns (it waits for each worker to have read the
        link), so a death right after it cannot be missed.
        """
        self._runtime.link(self._id, _pid(other), tag)

    def unlink(self, other: Process | int) -> None:
        """Remove the link between this process and ``other``, both sides (in place when this
        returns, as for :meth:`link`)."""
        self._runtime.unlink(self._id, _pid(other))

    def monitor(self) -> None:
        """A ProcessDied message (tag 0, ``pid`` this process) arrives in the host program's
        mailbox when this process dies (at once if it does not exist)."""
        self._runtime.monitor(self._id)

    def kill(self) -> None:
        """Kill the process (it ends with Outcome.KILLED; links see a failure)."""
        self._runtime.kill(self._id)

    def finished_future(self) -> Future[Finished]:
        """The future of how the process ends (the same future on every call of this handle).

        Its callbacks run on the runtime's pump thread: they must not wait on the runtime.
        """
        if self._finished is None:
            self._finished = self._runtime.finished_future(self._id)
        return self._finished

    def join(self, timeout: float | None = None) -> Finished | None:
        """Wait for the process to end; how it ended, or None after ``timeout`` seconds.

        May be called again after a timeout, or after it returned (it returns the same result).
        """
        try:
            return self.finished_future().result(timeout)
        except TimeoutError:
            return None

    def is_alive(self, timeout: float | None = 10.0) -> bool:
        """Whether the process exists now (asks its worker)."""
        return self._runtime.exists(self._id, timeout)


class WasmProcess(RuntimeProcess):
    """A handle on a Wasm process (what :meth:`Environment.spawn` returns)."""

    __slots__ = ()


class PythonProcess(RuntimeProcess):
    """A handle on a native process: a Python function run by a worker
    (:meth:`Environment.spawn_native`, :mod:`lunatic_mp.vm.native`)."""

    __slots__ = ()


class Registry:
    """The registry of named processes, seen from the host program.

    Names carry semantic versions as in ABI.md: :meth:`put` registers ``f"{name}@{version}"``;
    :meth:`get` returns the newest version matching a Cargo requirement. A view with a
    ``prefix`` stores every name as ``prefix + name``: views with different prefixes do not see
    each other's names. Guests use unprefixed names, so only the unprefixed view (the default)
    shares names with them.
    """

    def __init__(self, runtime: Runtime, prefix: str = "", *, timeout: float | None = 10.0) -> None:
        if "@" in prefix:
            raise ValueError(f"a registry prefix cannot contain '@': {prefix!r}")
        self._runtime = runtime
        self.prefix = prefix
        self.timeout = timeout

    def _name(self, name: str, version: str | None) -> str:
        if "@" in name:
            raise ValueError(f"pass the version separately, not in the name: {name!r}")
        return f"{self.prefix}{name}" if version is None else f"{self.prefix}{name}@{version}"

    def put(self, name: str, version: str | None, process: Process | int) -> None:
        """Register ``process`` as version ``version`` of ``name`` (None: unversioned),
        replacing that exact entry if any. The entry goes when the process dies."""
        self._runtime.registry_put(self._name(name, version), _pid(process), self.timeout)

    def get(self, name: str, requirement: str | None = None) -> RuntimeProcess | None:
        """The newest registered version of ``name`` matching ``requirement`` (``"^1.2"``,
        ``">=1.0, <2"``; a bare ``"1.2"`` means ``^1.2``; None: any), or None."""
        pid = self._runtime.registry_get(self._name(name, requirement), self.timeout)
        return None if pid is None else RuntimeProcess(self._runtime, pid)

    def remove(self, name: str, version: str | None = None) -> None:
        """Remove version ``version`` of ``name``, or every entry of ``name`` (None)."""
        self._runtime.registry_remove(self._name(name, version), self.timeout)


class Environment:
    """Spawns processes under one :class:`EnvConfig`: their memory and fuel limits, permissions,
    host namespaces, preopened directories, arguments and environment variables.

    The config is copied: changing it afterwards does not change the environment. Children a
    process spawns inherit its config unless given another. ``isolated_registry`` gives the
    environment a registry view of its own (names prefixed ``env<id>/``) instead of the shared
    one; guests always use the shared names.
    """

    def __init__(self, runtime: Runtime, config: EnvConfig, *, isolated_registry: bool = False) -> None:
        self.runtime = runtime
        self.config = config.copy()
        self.id = next(_environment_ids)
        self.registry = Registry(runtime, f"env{self.id}/" if isolated_registry else "")

    def spawn(
        self,
        module: Module,
        function: str = "_start",
        params: Sequence[Any] = (),
        *,
        worker: int | None = None,
        link: tuple[Process | int, int] | None = None,
        timeout: float | None = 30.0,
    ) -> WasmProcess:
        """Start ``module.function(*params)`` in this environment (on ``worker``, or the next one
        round robin), linked to ``link = (process, tag)`` if given; its handle."""
        link_pair = None if link is None else (_pid(link[0]), link[1])
        pid = self.runtime.spawn(
            module, function, params, self.config.copy(), worker=worker, link=link_pair, timeout=timeout
        )
        return WasmProcess(self.runtime, pid)

    def spawn_native(
        self,
        function: Callable[..., Any],
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        worker: int | None = None,
        link: tuple[Process | int, int] | None = None,
        timeout: float | None = 30.0,
    ) -> PythonProcess:
        """Start ``function(context, *args, **kwargs)`` as a native process in this environment
        (the Wasm processes it spawns get this environment's config); its handle. See
        :mod:`lunatic_mp.vm.native` for the context and what the function may do."""
        link_pair = None if link is None else (_pid(link[0]), link[1])
        pid = self.runtime.spawn_native(
            function, args, kwargs, self.config.copy(), worker=worker, link=link_pair, timeout=timeout
        )
        return PythonProcess(self.runtime, pid)

    def __repr__(self) -> str:
        return f"<Environment {self.id} {self.config}>"


__all__ = [
    "REQUEST_TAG_BASE",
    "Environment",
    "Process",
    "PythonProcess",
    "Registry",
    "RuntimeProcess",
    "WasmProcess",
    "fresh_tag",
]
