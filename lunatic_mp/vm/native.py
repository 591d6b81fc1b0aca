"""Native processes: Python functions run as processes, beside the Wasm ones.

A native process has what a Wasm process has, a pid, a mailbox with selective receive, links,
monitors and registry names, and the two kinds message each other freely. Its function gets a
:class:`Context` (an :class:`AsyncContext` for a coroutine function) as its first argument: the
process's own view of the runtime, as the host namespaces are a guest's.

It runs as a greenlet on its worker's thread, so it is cooperative: it hands the worker back
whenever it waits (``receive``, ``request``, ``sleep``, a spawn or registry call answered by
another process) or calls ``yield_now``. Python code that computes for long between two such
calls holds up the other processes of its worker: heavy computing belongs in Wasm, which is
preempted, or in slices with ``yield_now`` between them. A coroutine function may only await its
context's calls (the worker runs no asyncio loop).

Greenlets switch only on the scheduler's stack, never inside a Wasm fiber (where host functions
run, and where a switch would corrupt both stacks). A native process killed from there is marked
dead at once; its Python stack is unwound later, from the scheduler (:meth:`Engine.reap`).
"""

from __future__ import annotations

import inspect
import pickle
import traceback
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import cloudpickle
import greenlet
import msgpack

from lunatic_mp.config import EnvConfig
from lunatic_mp.errors import ContextError, LunaticError, SpawnError
from lunatic_mp.vm import arguments
from lunatic_mp.vm.finished import EXITED, RETURNED, Finished, Outcome
from lunatic_mp.vm.mailbox import Message, fresh_tag
from lunatic_mp.vm.params import typed_args
from lunatic_mp.vm.process import BaseProcess, Phase

if TYPE_CHECKING:
    from lunatic_mp.vm.engine import Engine
    from lunatic_mp.vm.module import Module
    from lunatic_mp.vm.router import OnReply, Router

TIMED_OUT = -1
"""The resume value of a wait that ran out of time (messages resume with their kind, >= 0)."""

MAX_TIMEOUT_MS = 2**62


class ProcessKilled(BaseException):
    """Raised inside a native process's code when the process is killed, so that its ``finally``
    blocks and context managers run. A BaseException, like SystemExit: ``except Exception``
    does not swallow it by mistake; let it propagate."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NativeProcess(BaseProcess):
    """A Python function run as a process (the engine's side of it)."""

    native: ClassVar[bool] = True

    __slots__ = ("args", "context", "engine", "function", "greenlet", "kwargs", "on_resume", "resume_value")

    def __init__(
        self,
        engine: Engine,
        pid: int,
        function: Callable[..., Any],
        args: Sequence[Any],
        kwargs: dict[str, Any],
        config: EnvConfig,
    ) -> None:
        super().__init__(pid, config)
        self.engine = engine
        self.function = function
        self.args = tuple(args)
        self.kwargs = dict(kwargs)
        self.greenlet: greenlet.greenlet | None = None  # made on the first run, on the scheduler's stack
        self.resume_value: int | None = None
        self.on_resume: Callable[[], None] | None = None
        self.context: BaseContext = (
            AsyncContext(self) if inspect.iscoroutinefunction(function) else Context(self)
        )

    def run_slice(self, engine: Engine) -> None:
        """Run the function until it waits, yields or returns (the scheduler calls this)."""
        if self.greenlet is None:
            self.phase = Phase.RUNNING
            self.greenlet = greenlet.greenlet(self._main)
        engine.current = self
        try:
            outcome = self.greenlet.switch()
        finally:
            engine.current = None
        if self.greenlet.dead:
            engine.exit(self, outcome)
        elif not self.waiting and not self.parked:
            engine.scheduler.make_ready(self)  # yielded: back of the queue

    def resume_with(self, value: int, on_resume: Callable[[], None] | None) -> None:
        self.resume_value = value
        self.on_resume = on_resume

    def free(self) -> None:
        glet, self.greenlet = self.greenlet, None
        if glet is not None and not glet.dead:
            self.engine.reap(glet)  # suspended: unwind its stack later, from the scheduler
        self.args = ()
        self.kwargs = {}

    def suspend(self) -> int:
        """Give the worker back until the engine resumes this process; the resume value."""
        self._check_killed()
        parent = self.greenlet.parent if self.greenlet is not None else None
        assert parent is not None, "a native process suspends from inside its greenlet"
        parent.switch()
        value, after = self.resume_value, self.on_resume
        self.resume_value = self.on_resume = None
        if after is not None:
            after()
        self._check_killed()
        return -1 if value is None else value

    def _check_killed(self) -> None:
        reason = self.kill_requested
        if reason is not None:
            raise ProcessKilled(reason)

    def _main(self) -> Finished:
        """The greenlet's body: run the function and say how it ended."""
        try:
            value = self.function(self.context, *self.args, **self.kwargs)
            if inspect.iscoroutine(value):
                value = _drive(value)
        except (ProcessKilled, greenlet.GreenletExit) as killed:
            return Finished(Outcome.KILLED, message=self.kill_requested or str(killed) or "killed")
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
            if code == 0:
                return EXITED
            return Finished(Outcome.FAILED, message=f"exited with code {code}", exit_code=code)
        except BaseException as exc:  # noqa: BLE001 - any failure ends this process only
            return _failure(exc)
        if value is None:
            return RETURNED
        try:
            msgpack.packb(value)
        except (TypeError, ValueError, OverflowError):
            return Finished(
                Outcome.FAILED,
                message=f"returned a {type(value).__name__}, which cannot be sent back: return None, "
                "bool, int, float, str, bytes, or lists and dicts of them",
            )
        return Finished(Outcome.NORMAL, result=(value,))

    def __repr__(self) -> str:
        name = getattr(self.function, "__qualname__", repr(self.function))
        return f"<NativeProcess {self.pid} {name} {self.phase.value}>"


def pickle_native(function: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any]) -> bytes:
    """What a native process runs, for another worker. Functions and closures travel by value
    (cloudpickle); a :class:`~lunatic_mp.vm.module.Module` travels by its digest."""
    payload: bytes = cloudpickle.dumps((function, tuple(args), dict(kwargs)))
    return payload


def unpickle_native(
    payload: bytes, find_module: Callable[[bytes], Module]
) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
    """The inverse of :func:`pickle_native`, inside a worker that finds modules by digest.

    Only frames from the runtime's own processes carry these (pickles run code when loaded).
    """
    from lunatic_mp.vm import module

    with module.resolving(find_module):
        function, args, kwargs = pickle.loads(payload)  # noqa: S301 - from the runtime's own processes
    if not callable(function):
        raise SpawnError(f"a native process runs a function, got {function!r}")
    return function, args, kwargs


def _failure(exc: BaseException) -> Finished:
    """A failed Finished with the exception and its Python backtrace, innermost frame last."""
    frames_ = traceback.extract_tb(exc.__traceback__)[1:]  # past NativeProcess._main itself
    backtrace = tuple(f"{frame.name} at {frame.filename}:{frame.lineno}" for frame in frames_)
    return Finished(Outcome.FAILED, message=f"{type(exc).__name__}: {exc}", backtrace=backtrace)


def _drive(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine whose awaits all complete at once (they switch greenlets inside)."""
    try:
        awaited = coroutine.send(None)
    except StopIteration as stop:
        return stop.value
    coroutine.close()
    raise ContextError(
        f"a native process awaited {awaited!r}: it may only await its context's calls "
        "(there is no asyncio loop in a worker)"
    )


def _pid_of(process: Any) -> int:
    pid = process if isinstance(process, int) else getattr(process, "id", None)
    if not isinstance(pid, int) or isinstance(pid, bool):
        raise TypeError(f"expected a pid or a process handle, got {process!r}")
    return pid


def _timeout_ms(timeout: float | None) -> int:
    """Seconds to the engine's milliseconds (-1: forever)."""
    if timeout is None:
        return -1
    if timeout < 0:
        raise ValueError(f"timeout must be >= 0 or None, got {timeout}")
    return min(int(timeout * 1000), MAX_TIMEOUT_MS)


class BaseContext:
    """What both contexts offer: the calls that never wait (sending, links, monitors, kills),
    and the waiting ones that :class:`Context` and :class:`AsyncContext` expose."""

    def __init__(self, process: NativeProcess) -> None:
        self._process = process

    # --- identity -------------------------------------------------------------------------------

    @property
    def id(self) -> int:
        """This process's pid."""
        return self._process.pid

    pid = id

    def _enter(self) -> NativeProcess:
        process = self._process
        if process.engine.current is not process:
            if process.finished is not None:
                raise ContextError(f"process {process.pid:#x} has ended: its context is closed")
            raise ContextError("a native process's context can only be used by that process")
        return process

    # --- messages -------------------------------------------------------------------------------

    def send(self, to: Any, data: bytes | bytearray | memoryview = b"", tag: int = 0) -> None:
        """Send ``data`` with ``tag`` to a process (a pid or a handle); the receiver sees this
        process as the sender. Sending to a dead process drops the message, as in lunatic."""
        process = self._enter()
        engine = process.engine
        if not isinstance(data, bytes | bytearray | memoryview):
            arguments.data_bytes(data)  # raises the error every send gives
        if len(data) > engine.max_message_size:
            raise ValueError(f"message of {len(data)} bytes exceeds the {engine.max_message_size}-byte limit")
        if not -(2**63) <= tag < 2**64:
            raise ValueError(f"tag {tag} does not fit in 64 bits")
        tag = tag - 2**64 if tag >= 2**63 else tag
        engine.deliver(_pid_of(to), Message(tag, bytes(data), pid=process.pid))
        if process.parked:  # the queue to the receiver's worker is full: wait until it drains
            process.suspend()
        process._check_killed()

    def _receive(self, tags: Sequence[int] | None = None, timeout: float | None = None) -> Message | None:
        """The oldest message whose tag is in ``tags`` (any if None), waiting up to ``timeout``
        seconds (None: forever); None when the time runs out.

        Messages from links and monitors arrive here too (``kind`` LINK_DIED / PROCESS_DIED).
        """
        process = self._enter()
        wanted = None if tags is None else tuple(tags)
        message = process.mailbox.take(wanted, 0)
        if message is not None:
            return message
        if timeout == 0:
            return None
        return self._wait_for(process, wanted, 0, _timeout_ms(timeout))

    def _wait_for(
        self, process: NativeProcess, tags: tuple[int, ...] | None, start: int, timeout_ms: int
    ) -> Message | None:
        process.mailbox.wait(tags, start)
        process.engine.wait(process, timeout_ms, on_timeout=TIMED_OUT)
        process.waiting = True
        if process.suspend() == TIMED_OUT:
            return None
        message, process.scratch = process.scratch, None
        return message

    def _request(
        self, to: Any, data: bytes = b"", *, tag: int | None = None, timeout: float | None = 30.0
    ) -> Message:
        """Send ``data`` and wait for the reply: a message with the same tag (a fresh one by
        default; the receiver replies to the sender with the request's tag). Raises
        :class:`TimeoutError` when none comes within ``timeout`` seconds."""
        process = self._enter()
        tag = fresh_tag() if tag is None else tag
        start = len(process.mailbox)  # only a reply can match: skip what was already there
        self.send(to, data, tag)
        reply = process.mailbox.take((tag,), start)
        if reply is None and timeout != 0:
            reply = self._wait_for(process, (tag,), start, _timeout_ms(timeout))
        if reply is None:
            raise TimeoutError(f"process {_pid_of(to):#x} did not reply to tag {tag} within {timeout} s")
        return reply

    def _sleep(self, seconds: float) -> None:
        """Let the other processes run for ``seconds``."""
        process = self._enter()
        process.engine.wait(process, _timeout_ms(max(seconds, 0.0)), on_timeout=0)
        process.waiting = True
        process.suspend()

    def _yield_now(self) -> None:
        """Let every other ready process of this worker run once, then go on."""
        process = self._enter()
        process.waiting = False
        process.suspend()

    # --- links, monitors and kills ---------------------------------------------------------------

    def link(self, other: Any, tag: int = 0) -> None:
        """Link to ``other``: when either dies of a failure the other dies too, unless it traps
        link deaths (:attr:`die_when_link_dies` False), then it gets a LINK_DIED message."""
        process = self._enter()
        process.engine.link(process, _pid_of(other), tag)
        process._check_killed()

    def unlink(self, other: Any) -> None:
        process = self._enter()
        process.engine.unlink(process, _pid_of(other))

    def monitor(self, other: Any) -> None:
        """Get a PROCESS_DIED message when ``other`` ends (at once if it is already gone)."""
        process = self._enter()
        process.engine.monitor(process, _pid_of(other))

    def stop_monitoring(self, other: Any) -> None:
        process = self._enter()
        process.engine.stop_monitoring(process, _pid_of(other))

    @property
    def die_when_link_dies(self) -> bool:
        return self._process.die_when_link_dies

    @die_when_link_dies.setter
    def die_when_link_dies(self, value: bool) -> None:
        self._enter().die_when_link_dies = bool(value)

    def kill(self, other: Any, reason: str = "killed") -> None:
        """Kill a process (this one included: it then dies at once)."""
        process = self._enter()
        process.engine.kill(_pid_of(other), reason)
        process._check_killed()

    # --- spawning ---------------------------------------------------------------------------------

    def _spawn(
        self,
        module: Module,
        function: str = "_start",
        params: Sequence[Any] = (),
        *,
        config: EnvConfig | None = None,
        link: int | None = None,
    ) -> int:
        """Start ``module.function(*params)`` where the runtime places it; its pid. ``link`` (a
        tag) links the child to this process before it runs. Raises :class:`SpawnError`."""
        process = self._enter()
        signature = module.exports.get(function)
        if signature is None:
            raise SpawnError(f"{module.name} has no exported function `{function}`")
        args = typed_args(module.name, function, signature[0], params)
        what = (module, function, args, (config or process.config).copy())
        return self._spawned(
            process, lambda done: process.engine.spawn_placed(process, link or 0, what, done)
        )

    def _spawn_native(
        self, function: Callable[..., Any], *args: Any, link: int | None = None, **kwargs: Any
    ) -> int:
        """Start ``function(context, *args, **kwargs)`` as a native process where the runtime
        places it; its pid. The function must be picklable by cloudpickle to go to another
        worker."""
        process = self._enter()
        engine = process.engine
        return self._spawned(
            process, lambda done: engine.spawn_native_placed(process, link or 0, function, args, kwargs, done)
        )

    def _spawned(self, process: NativeProcess, start: Callable[[Callable[[int | str], None]], None]) -> int:
        answered: list[int | str] = []
        suspended = False

        def done(child: int | str) -> None:
            answered.append(child)
            if suspended:
                process.engine.resume(process, 0)

        start(done)
        if not answered:
            suspended = True
            process.waiting = True
            process.suspend()
        child = answered[0]
        if isinstance(child, str):
            raise SpawnError(child)
        process._check_killed()
        return child

    def _exists(self, pid: Any) -> bool:
        """Whether a process with this pid is alive (asks its worker)."""
        process = self._enter()
        engine = process.engine
        target = _pid_of(pid)
        if engine.is_local(target) or engine.router is None:
            return target in engine.processes
        if engine._is_gone(target):
            return False
        answer: list[bool] = []

        def on_reply(reply: Any) -> tuple[int, None]:
            answer.append(reply is not None and bool(reply.exists))
            return 0, None

        router = engine.router
        engine.ask(
            process, router.route(target), lambda done: router.exists(process.pid, target, done), on_reply
        )
        process.waiting = True
        process.suspend()
        return answer[0]

    def __repr__(self) -> str:
        return f"<Context of process {self._process.pid:#x}>"


class NativeRegistry:
    """The registry as a native process sees it: the shared names, ``name@version`` semantics."""

    def __init__(self, context: BaseContext) -> None:
        self._context = context

    @staticmethod
    def _name(name: str, version: str | None) -> str:
        if "@" in name:
            raise ValueError(f"pass the version separately, not in the name: {name!r}")
        return name if version is None else f"{name}@{version}"

    def _ask(self, request: Callable[[Router, int, OnReply], None]) -> Any:
        """``request(router, my pid, on_reply)`` of the registry process; its reply, once this
        process has waited for it."""
        process = self._context._enter()
        engine = process.engine
        router = engine.router
        assert router is not None
        replies: list[Any] = []

        def on_reply(reply: Any) -> tuple[int, None]:
            replies.append(reply)
            return 0, None

        engine.ask(process, router.names_at, lambda done: request(router, process.pid, done), on_reply)
        process.waiting = True
        process.suspend()
        reply = replies[0]
        if reply is None:
            raise LunaticError("the registry process was lost before it answered")
        if reply.error:
            raise LunaticError(reply.error)
        return reply

    def put(self, name: str, version: str | None, process: Any) -> None:
        """Register ``process`` as version ``version`` of ``name`` (None: unversioned)."""
        full, pid = self._name(name, version), _pid_of(process)
        engine = self._context._enter().engine
        if engine.router is None:
            engine.registry.put(full, engine.node_id, pid)
            return
        self._ask(lambda router, me, done: router.registry_put(me, full, engine.node_id, pid, done))

    def get(self, name: str, requirement: str | None = None) -> int | None:
        """The pid of the newest version of ``name`` matching ``requirement``, or None."""
        full = self._name(name, requirement)
        engine = self._context._enter().engine
        if engine.router is None:
            engine.registry.check_name(full.split("@")[0])
            found = engine.registry.get(full)
            return None if found is None else found[1]
        reply = self._ask(lambda router, me, done: router.registry_get(me, full, False, done))
        return int(reply.pid) if reply.found else None

    def remove(self, name: str, version: str | None = None) -> None:
        """Remove version ``version`` of ``name``, or every entry of ``name`` (None)."""
        full = self._name(name, version)
        engine = self._context._enter().engine
        if engine.router is None:
            engine.registry.remove(full)
            return
        self._ask(lambda router, me, done: router.registry_remove(me, full, done))


class Context(BaseContext):
    """A native process's view of the runtime: its mailbox, its links, spawning and the registry.

    Only the process it belongs to may use it. Calls that wait give the worker to the other
    processes meanwhile; every call raises :class:`ProcessKilled` once the process is killed.
    """

    def __init__(self, process: NativeProcess) -> None:
        super().__init__(process)
        self.registry = NativeRegistry(self)

    receive = BaseContext._receive
    request = BaseContext._request
    sleep = BaseContext._sleep
    yield_now = BaseContext._yield_now
    spawn = BaseContext._spawn
    spawn_native = BaseContext._spawn_native
    exists = BaseContext._exists


class AsyncContext(BaseContext):
    """The context of a coroutine function: the same calls, the waiting ones awaitable.

    They complete without an event loop (the worker runs other processes inside them), so a
    native coroutine awaits only these.
    """

    def __init__(self, process: NativeProcess) -> None:
        super().__init__(process)
        self.registry = AsyncNativeRegistry(NativeRegistry(self))

    async def receive(
        self, tags: Sequence[int] | None = None, timeout: float | None = None
    ) -> Message | None:
        """See :meth:`Context.receive`."""
        return self._receive(tags, timeout)

    async def request(
        self, to: Any, data: bytes = b"", *, tag: int | None = None, timeout: float | None = 30.0
    ) -> Message:
        """See :meth:`Context.request`."""
        return self._request(to, data, tag=tag, timeout=timeout)

    async def sleep(self, seconds: float) -> None:
        self._sleep(seconds)

    async def yield_now(self) -> None:
        self._yield_now()

    async def spawn(
        self,
        module: Module,
        function: str = "_start",
        params: Sequence[Any] = (),
        *,
        config: EnvConfig | None = None,
        link: int | None = None,
    ) -> int:
        """See :meth:`Context.spawn`."""
        return self._spawn(module, function, params, config=config, link=link)

    async def spawn_native(
        self, function: Callable[..., Any], *args: Any, link: int | None = None, **kwargs: Any
    ) -> int:
        """See :meth:`Context.spawn_native`."""
        return self._spawn_native(function, *args, link=link, **kwargs)

    async def exists(self, pid: Any) -> bool:
        return self._exists(pid)


class AsyncNativeRegistry:
    """:class:`NativeRegistry` for a coroutine function: every call awaitable."""

    def __init__(self, registry: NativeRegistry) -> None:
        self._registry = registry

    async def put(self, name: str, version: str | None, process: Any) -> None:
        self._registry.put(name, version, process)

    async def get(self, name: str, requirement: str | None = None) -> int | None:
        return self._registry.get(name, requirement)

    async def remove(self, name: str, version: str | None = None) -> None:
        self._registry.remove(name, version)


__all__ = [
    "AsyncContext",
    "AsyncNativeRegistry",
    "BaseContext",
    "Context",
    "NativeProcess",
    "NativeRegistry",
    "ProcessKilled",
]
