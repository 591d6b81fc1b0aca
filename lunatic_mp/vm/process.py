"""Processes: what every process has (:class:`BaseProcess`), and a Wasm process: one store and
instance, run as a fiber, with its resources. Native processes are in :mod:`lunatic_mp.vm.native`.

A process holds state only; the engine decides what happens to it (spawn, signals, death) and
the scheduler decides when it runs.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, overload

from lunatic_mp.config import EnvConfig
from lunatic_mp.vm import wasm
from lunatic_mp.vm.finished import Finished
from lunatic_mp.vm.mailbox import Mailbox, Message

if TYPE_CHECKING:
    from lunatic_mp.vm.module import Module
    from lunatic_mp.vm.scheduler import Timer

_T = TypeVar("_T")

NO_TIMEOUT = -1
"""``u64::MAX`` as an i64: wait forever."""


class Phase(enum.Enum):
    INSTANTIATING = "instantiating"  # running the start function; spawning is refused
    RUNNING = "running"
    DONE = "done"


@dataclass(slots=True, eq=False)
class Frame:
    """A host call the process is suspended in: where its result goes, and when it is ready."""

    results: int  # the address of its result (wasm.write_result)
    kind: int
    nested: wasm.Call | None = None  # a call back into the guest (trap::catch)
    trap_out: int = 0  # the address of its trap (wasm.set_trap)
    value: int | None = None  # set when the process may resume
    on_resume: Any = None  # runs in the fiber just before it goes on (writes out-parameters)


class Resources:
    """Host objects a guest refers to by id: configs, modules and error messages; the
    process's instances of Wasm plugins (by plugin name); its sockets (``net``, made by the
    first networking call: :class:`lunatic_mp.vm.sockets.Net`)."""

    __slots__ = ("_next", "configs", "errors", "modules", "net", "plugins")

    def __init__(self) -> None:
        self.configs: dict[int, EnvConfig] = {}
        self.modules: dict[int, Module] = {}
        self.errors: dict[int, str] = {}
        self.plugins: dict[str, Any] = {}
        self.net: Any = None
        self._next = 1

    def add(self, table: dict[int, Any], value: Any) -> int:
        rid = self._next
        self._next += 1
        table[rid] = value
        return rid


class _Lazy(Generic[_T]):
    """A container a process makes on first use, kept in the slot ``_<name>`` (None until then):
    an idle process costs no empty sets, dicts or lists (issue 17), and a spawn makes fewer
    objects for the garbage collector to count. Code that only looks reads the slot."""

    def __init__(self, factory: Callable[[], _T]) -> None:
        self.factory = factory

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = "_" + name

    @overload
    def __get__(self, process: None, owner: type) -> _Lazy[_T]: ...
    @overload
    def __get__(self, process: object, owner: type) -> _T: ...
    def __get__(self, process: object | None, owner: type) -> _T | _Lazy[_T]:
        if process is None:
            return self
        value: _T | None = getattr(process, self.slot)
        if value is None:
            value = self.factory()
            setattr(process, self.slot, value)
        return value

    def __set__(self, process: object, value: _T) -> None:
        setattr(process, self.slot, value)


class BaseProcess:
    """What every process has, Wasm or native: a pid, a mailbox, links, monitors, and the flags
    the engine and the scheduler keep about it."""

    native: ClassVar[bool] = False

    __slots__ = (
        "_blocked_on",
        "_blocked_senders",
        "_links",
        "_monitored_by",
        "_monitoring",
        "_on_exit",
        "_timers",
        "config",
        "die_when_link_dies",
        "environment_id",
        "finished",
        "kill_requested",
        "mailbox",
        "parked",
        "phase",
        "pid",
        "queued",
        "registered",
        "scratch",
        "timer",
        "waiting",
    )  # fmt: skip

    def __init__(self, pid: int, config: EnvConfig) -> None:
        self.pid = pid
        self.config = config
        self.environment_id = config.environment_id
        self.phase = Phase.INSTANTIATING
        self.mailbox = Mailbox()
        self.mailbox.bound = config.max_mailbox or 0
        self.scratch: Message | None = None
        # The containers below are made on first use (_Lazy): most processes never link, monitor,
        # block or set a timer, and an empty set is 216 bytes, a dict 64, a list 56.
        self._links: dict[int, int] | None = None
        self._monitoring: set[int] | None = None
        self._monitored_by: set[int] | None = None
        self.die_when_link_dies = True
        self.waiting = False  # suspended in a host call until woken
        self.queued = False  # in the scheduler's run queue
        self.timer: Timer | None = None
        self._timers: dict[int, Timer] | None = None
        self.finished: Finished | None = None
        self._on_exit: list[Callable[[Finished], None]] | None = None
        self.kill_requested: str | None = None  # killed while its own code was running
        self.registered = False  # the registry process asked to hear when this process dies
        self.parked = False  # paused until a queue to another worker drains (backpressure)
        self._blocked_on: set[int] | None = None
        self._blocked_senders: set[int] | None = None

    links: _Lazy[dict[int, int]] = _Lazy(dict)  # linked pid -> the tag this side sees when it dies
    monitoring: _Lazy[set[int]] = _Lazy(set)  # the pids this process monitors
    monitored_by: _Lazy[set[int]] = _Lazy(set)  # the pids that monitor this process
    blocked_on: _Lazy[set[int]] = _Lazy(set)  # the full mailboxes this process waits for room in
    blocked_senders: _Lazy[set[int]] = _Lazy(set)  # the senders waiting for room in its mailbox
    timers: _Lazy[dict[int, Timer]] = _Lazy(dict)  # its send_after timers, by id (cancelled when it dies)
    on_exit: _Lazy[list[Callable[[Finished], None]]] = _Lazy(list)  # called with its Finished

    def watched(self) -> bool:
        """Whether its death concerns another process (a link or a monitor either way)."""
        return bool(self._links or self._monitored_by or self._monitoring)

    def entangled(self) -> bool:
        """Whether its death has more to undo than its own state: send_after timers, exit
        callbacks, senders waiting for room in its mailbox, links or monitors. Most processes
        have none, and their exit skips all of that on this one check."""
        return bool(
            self._timers
            or self._on_exit
            or self._blocked_senders
            or self._links
            or self._monitored_by
            or self._monitoring
        )

    def timer_ids(self) -> list[int]:
        """The ids of its send_after timers (an empty list made for none)."""
        return list(self._timers) if self._timers else []

    def exit_callbacks(self) -> list[Callable[[Finished], None]]:
        """What runs when it dies (:attr:`on_exit`), without making the list."""
        return self._on_exit or []

    def has_blocked_senders(self) -> bool:
        return bool(self._blocked_senders)

    def forget_worker(self, lost: Callable[[int], bool]) -> bool:
        """Drop the monitors and blocked senders of pids that ``lost`` says are gone, and the
        mailboxes it waited for room in; True when it waited on one of those."""
        if self._monitored_by:
            self._monitored_by = {p for p in self._monitored_by if not lost(p)}
        if self._blocked_senders:
            self._blocked_senders = {p for p in self._blocked_senders if not lost(p)}
        if self._blocked_on and any(lost(p) for p in self._blocked_on):
            self._blocked_on = {p for p in self._blocked_on if not lost(p)}
            return True
        return False

    @property
    def alive(self) -> bool:
        return self.finished is None

    def free(self) -> None:
        """Give back what the process holds (it has died)."""


class Process(BaseProcess):
    """One Wasm process (see the module docstring)."""

    __slots__ = (
        "_frames",
        "_resources",
        "call",
        "function",
        "memory",
        "module",
        "receiving",
        "store",
        "wasi_epoch",
    )  # fmt: skip

    def __init__(self, pid: int, module: Module, config: EnvConfig, function: str) -> None:
        super().__init__(pid, config)
        self.module = module
        self.function = function  # its arguments are the instantiation's (the C Call holds them)
        self.store: wasm.Store | None = None
        self.memory: wasm.Memory | None = None
        self.call: wasm.Call | None = None
        self._frames: list[Frame] | None = None
        self.receiving = False  # suspended in a C receive: Engine.resume wakes it through its store
        self._resources: Resources | None = None  # made on first use (most idle processes never do)
        self.wasi_epoch = 0.0  # time.monotonic() when its WASI clocks started: their zero

    frames: _Lazy[list[Frame]] = _Lazy(list)  # the host calls it is suspended in, innermost last

    def free(self) -> None:
        self.mailbox.stop_waiting()  # its C state goes with the store: no send may wake it now
        if self._frames:
            for frame in self._frames:
                if frame.nested is not None:
                    wasm.finish(frame.nested)
            self._frames.clear()
        if self.call is not None:
            wasm.finish(self.call)
            self.call = None
        self.memory = None
        if self.store is not None:
            self.store.close()
        self.store = None
        if self._resources is not None and self._resources.net is not None:
            self._resources.net.close(self)  # its sockets close now, not when collected
        self._resources = None

    @property
    def resources(self) -> Resources:
        """Host objects the guest refers to by id (:class:`Resources`)."""
        if self._resources is None:
            self._resources = Resources()
        return self._resources

    def __repr__(self) -> str:
        return f"<Process {self.pid} {self.module.name}:{self.function} {self.phase.value}>"
