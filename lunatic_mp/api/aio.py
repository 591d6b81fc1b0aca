"""The Python API for asyncio: :class:`AsyncRuntime`, with awaitable calls that never block the loop.

A :class:`~lunatic_mp.api.runtime.Runtime` blocks its caller while it starts, stops, waits for a
spawn, a join or a message. Under asyncio each of those would stall every other task, so this
module wraps it:

- calls the runtime answers with a :class:`concurrent.futures.Future` (spawn, join) await that
  future through :func:`asyncio.wrap_future`;
- calls that only block (starting and closing the runtime, compiling a module, registry and
  ``exists`` requests) run in :func:`asyncio.to_thread`;
- the host program's mailbox is drained by one thread into a mailbox on the event loop, so that
  :meth:`AsyncRuntime.receive` is an ordinary await, cancellable and with a timeout, and never
  loses a message to a cancelled receive.

While an :class:`AsyncRuntime` is open it owns the host program's mailbox: do not call
``Runtime.receive`` on its :attr:`~AsyncRuntime.runtime` too.

``spawn`` returns an :class:`AsyncWasmProcess` handle; every call that takes a process also takes
its pid. Requests follow the convention of :mod:`lunatic_mp.api.handles`: the guest replies to the
sender with the request's tag.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from lunatic_mp.api.handles import PidHandle, Process, fresh_tag
from lunatic_mp.api.runtime import Runtime
from lunatic_mp.config import EnvConfig
from lunatic_mp.errors import EngineClosed
from lunatic_mp.vm.finished import Finished
from lunatic_mp.vm.mailbox import Message
from lunatic_mp.vm.module import Module

POLL_S = 0.05
"""How often the mailbox thread looks up from an empty mailbox to see whether it should stop."""


def _pid(process: Process | int) -> int:
    return process if isinstance(process, int) else process.id


class AsyncProcess(PidHandle):
    """A handle on a process of an :class:`AsyncRuntime`, Wasm or native (see
    :class:`lunatic_mp.api.handles.RuntimeProcess`, whose calls it mirrors with awaitables)."""

    __slots__ = ("_rt",)

    def __init__(self, rt: AsyncRuntime, pid: int) -> None:
        super().__init__(pid)
        self._rt = rt

    def _home(self) -> object:
        return self._rt

    def send(self, data: bytes = b"", tag: int = 0) -> None:
        """Send ``data`` with ``tag`` to the process (does not wait)."""
        self._rt.send(self._id, data, tag)

    async def request(
        self, data: bytes = b"", *, tag: int | None = None, timeout: float | None = 30.0
    ) -> Message:
        """Send ``data`` and await the reply with the same tag (:class:`TimeoutError` if none)."""
        return await self._rt.request(self._id, data, tag=tag, timeout=timeout)

    async def join(self, timeout: float | None = None) -> Finished | None:
        """Await how the process ends; None after ``timeout`` seconds."""
        return await self._rt.join(self._id, timeout)

    async def is_alive(self) -> bool:
        """Whether the process exists now."""
        return await self._rt.exists(self._id)

    def monitor(self) -> None:
        """A ProcessDied message arrives in the host program's mailbox when the process dies."""
        self._rt.runtime.monitor(self._id)

    def kill(self) -> None:
        """Kill the process."""
        self._rt.runtime.kill(self._id)


class AsyncWasmProcess(AsyncProcess):
    """A handle on a Wasm process of an :class:`AsyncRuntime`."""

    __slots__ = ()


class AsyncPythonProcess(AsyncProcess):
    """A handle on a native process (a Python function) of an :class:`AsyncRuntime`."""

    __slots__ = ()


class AsyncRegistry:
    """The registry with versions (see :class:`lunatic_mp.api.handles.Registry`), awaitable."""

    def __init__(self, rt: AsyncRuntime, prefix: str = "") -> None:
        if "@" in prefix:
            raise ValueError(f"a registry prefix cannot contain '@': {prefix!r}")
        self._rt = rt
        self.prefix = prefix

    def _name(self, name: str, version: str | None) -> str:
        if "@" in name:
            raise ValueError(f"pass the version separately, not in the name: {name!r}")
        return f"{self.prefix}{name}" if version is None else f"{self.prefix}{name}@{version}"

    async def put(self, name: str, version: str | None, process: Process | int) -> None:
        """Register ``process`` as version ``version`` of ``name`` (None: unversioned)."""
        await asyncio.to_thread(self._rt.runtime.registry_put, self._name(name, version), _pid(process))

    async def get(self, name: str, requirement: str | None = None) -> AsyncProcess | None:
        """The newest version of ``name`` matching ``requirement`` (None: any), or None."""
        pid = await asyncio.to_thread(self._rt.runtime.registry_get, self._name(name, requirement))
        return None if pid is None else AsyncProcess(self._rt, pid)

    async def remove(self, name: str, version: str | None = None) -> None:
        """Remove version ``version`` of ``name``, or every entry of ``name`` (None)."""
        await asyncio.to_thread(self._rt.runtime.registry_remove, self._name(name, version))


class AsyncRuntime:
    """A :class:`Runtime` for asyncio programs.

    >>> async def main() -> None:
    ...     async with AsyncRuntime(workers=2) as rt:
    ...         module = await rt.load_module(examples.path("hello.wat"))
    ...         process = await rt.spawn(module, "_start", config=EnvConfig.permissive())
    ...         print(await process.join())

    The keyword arguments are those of :class:`Runtime`. Use it from one event loop.
    """

    def __init__(self, workers: int | None = None, **options: Any) -> None:
        self._workers = workers
        self._options = options
        self._runtime: Runtime | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._mailbox: list[Message] = []
        self._waiters: list[tuple[tuple[int, ...] | None, asyncio.Future[Message | None]]] = []
        self._joins: dict[int, Future[Finished]] = {}
        self._stopping = threading.Event()
        self._drainer: threading.Thread | None = None
        self.registry = AsyncRegistry(self)
        """The shared registry view (the names guests see)."""

    # --- starting and stopping ---------------------------------------------------------------

    async def start(self) -> AsyncRuntime:
        """Start the runtime's processes (in a thread: it takes a while)."""
        if self._runtime is not None:
            return self
        self._loop = asyncio.get_running_loop()
        self._runtime = await asyncio.to_thread(Runtime, self._workers, **self._options)
        self._drainer = threading.Thread(target=self._drain, name="lunatic-mp-aio-mailbox", daemon=True)
        self._drainer.start()
        return self

    async def close(self) -> None:
        """Stop every process of the runtime; pending receives return None."""
        if self._runtime is None:
            return
        self._stopping.set()
        if self._drainer is not None:
            await asyncio.to_thread(self._drainer.join)
        await asyncio.to_thread(self._runtime.close)
        for _, waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def __aenter__(self) -> AsyncRuntime:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def runtime(self) -> Runtime:
        """The synchronous runtime underneath (for calls that do not block)."""
        if self._runtime is None:
            raise EngineClosed("the AsyncRuntime is not started: use `async with AsyncRuntime()`")
        return self._runtime

    @property
    def pid(self) -> int:
        """The host program's own pid: guests reply to it."""
        return self.runtime.pid

    # --- the mailbox -------------------------------------------------------------------------

    def _drain(self) -> None:
        """Move every message of the host program's mailbox to the event loop (own thread)."""
        runtime, loop = self._runtime, self._loop
        assert runtime is not None and loop is not None
        while not self._stopping.is_set():
            message = runtime.receive(None, POLL_S)
            if message is not None:
                try:
                    loop.call_soon_threadsafe(self._deliver, message)
                except RuntimeError:  # the loop is closed: nobody can receive it any more
                    return

    def _deliver(self, message: Message) -> None:
        """On the loop: hand ``message`` to the oldest receive waiting for its tag, or keep it."""
        for index, (tags, waiter) in enumerate(self._waiters):
            if not waiter.done() and (tags is None or message.tag in tags):
                del self._waiters[index]
                waiter.set_result(message)
                return
        self._mailbox.append(message)

    async def receive(
        self, tags: Sequence[int] | None = None, timeout: float | None = None
    ) -> Message | None:
        """The oldest message for the host program whose tag is in ``tags`` (any if None);
        None after ``timeout`` seconds. A cancelled receive takes no message."""
        wanted = None if tags is None else tuple(tags)
        for index, message in enumerate(self._mailbox):
            if wanted is None or message.tag in wanted:
                return self._mailbox.pop(index)
        if (timeout is not None and timeout <= 0) or self._stopping.is_set():
            return None
        waiter: asyncio.Future[Message | None] = asyncio.get_running_loop().create_future()
        entry = (wanted, waiter)
        self._waiters.append(entry)
        expiry = None
        if timeout is not None:
            expiry = asyncio.get_running_loop().call_later(
                timeout, lambda: None if waiter.done() else waiter.set_result(None)
            )
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and (late := waiter.result()) is not None:
                self._mailbox.insert(0, late)  # delivered just as we were cancelled: keep it
            raise
        finally:
            if expiry is not None:
                expiry.cancel()
            with contextlib.suppress(ValueError):
                self._waiters.remove(entry)

    def send(self, process: Process | int, data: bytes = b"", tag: int = 0) -> None:
        """Send ``data`` with ``tag`` to a process (does not wait)."""
        self.runtime.send(_pid(process), data, tag)

    async def request(
        self,
        process: Process | int,
        data: bytes = b"",
        *,
        tag: int | None = None,
        timeout: float | None = 30.0,
    ) -> Message:
        """Send ``data`` and await the reply with the same tag (a fresh tag unless given);
        :class:`TimeoutError` when none comes within ``timeout`` seconds."""
        tag = fresh_tag() if tag is None else tag
        self.send(process, data, tag)
        reply = await self.receive((tag,), timeout)
        if reply is None:
            raise TimeoutError(f"process {_pid(process):#x} did not reply to tag {tag} within {timeout} s")
        return reply

    # --- modules and processes ---------------------------------------------------------------

    async def load_module(self, source: str | bytes | Path, name: str | None = None) -> Module:
        """Compile a module for every worker (a path, Wasm bytes or WAT text), in a thread."""
        return await asyncio.to_thread(self.runtime.load_module, source, name)

    async def spawn(
        self,
        module: Module,
        function: str = "_start",
        params: Sequence[Any] = (),
        config: EnvConfig | None = None,
        *,
        worker: int | None = None,
        link: tuple[Process | int, int] | None = None,
    ) -> AsyncWasmProcess:
        """Start ``module.function(*params)`` under ``config`` (default: everything denied);
        its handle."""
        link_pair = None if link is None else (_pid(link[0]), link[1])
        future = self.runtime.spawn_future(module, function, params, config, worker=worker, link=link_pair)
        return AsyncWasmProcess(self, await asyncio.wrap_future(future))

    async def spawn_native(
        self,
        function: Callable[..., Any],
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        config: EnvConfig | None = None,
        *,
        worker: int | None = None,
        link: tuple[Process | int, int] | None = None,
    ) -> AsyncPythonProcess:
        """Start ``function(context, *args, **kwargs)`` as a native process (see
        :meth:`Runtime.spawn_native`); its handle."""
        link_pair = None if link is None else (_pid(link[0]), link[1])
        future = self.runtime.spawn_native_future(
            function, args, kwargs, config, worker=worker, link=link_pair
        )
        return AsyncPythonProcess(self, await asyncio.wrap_future(future))

    async def join(self, process: Process | int, timeout: float | None = None) -> Finished | None:
        """Await how a process spawned through this runtime ends; None after ``timeout``
        seconds (and a later join still gets the result)."""
        pid = _pid(process)
        future = self._joins.get(pid)
        if future is None:
            future = self._joins[pid] = self.runtime.finished_future(pid)
        try:
            finished = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), timeout)
        except TimeoutError:
            return None
        self._joins.pop(pid, None)
        return finished

    async def exists(self, process: Process | int) -> bool:
        """Whether the process exists now."""
        return await asyncio.to_thread(self.runtime.exists, _pid(process))

    def kill(self, process: Process | int) -> None:
        """Kill a process."""
        self.runtime.kill(_pid(process))

    def monitor(self, process: Process | int) -> None:
        """A ProcessDied message arrives in the host program's mailbox when the process dies."""
        self.runtime.monitor(_pid(process))

    def environment(self, config: EnvConfig, *, plugins: Iterable[str] = ()) -> AsyncEnvironment:
        """An environment: processes spawned into it get ``config``, and may import the
        namespaces of ``plugins`` (see :meth:`Runtime.environment`)."""
        config = config.copy()
        config.allowed_namespaces |= self.runtime.check_plugin_names(plugins)
        return AsyncEnvironment(self, config)


class AsyncEnvironment:
    """Spawns processes of an :class:`AsyncRuntime` under one :class:`EnvConfig` (copied)."""

    def __init__(self, rt: AsyncRuntime, config: EnvConfig) -> None:
        self.rt = rt
        self.config = config.copy()

    async def spawn(
        self,
        module: Module,
        function: str = "_start",
        params: Sequence[Any] = (),
        *,
        worker: int | None = None,
        link: tuple[Process | int, int] | None = None,
    ) -> AsyncWasmProcess:
        """Start ``module.function(*params)`` in this environment; its handle."""
        return await self.rt.spawn(module, function, params, self.config.copy(), worker=worker, link=link)

    async def spawn_native(
        self,
        function: Callable[..., Any],
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        worker: int | None = None,
        link: tuple[Process | int, int] | None = None,
    ) -> AsyncPythonProcess:
        """Start a native process in this environment; its handle."""
        return await self.rt.spawn_native(
            function, args, kwargs, self.config.copy(), worker=worker, link=link
        )


__all__ = [
    "AsyncEnvironment",
    "AsyncProcess",
    "AsyncPythonProcess",
    "AsyncRegistry",
    "AsyncRuntime",
    "AsyncWasmProcess",
]
