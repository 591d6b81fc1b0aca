"""The Python API to a runtime: spawn, message, link, monitor, join and name processes on every
core. :class:`Runtime` is what a host program holds; the OS processes beneath it are the
supervisor's (:mod:`lunatic_mp.cluster.supervisor`).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import msgpack

from lunatic_mp.cluster import frames
from lunatic_mp.cluster.supervisor import Supervisor
from lunatic_mp.config import EnvConfig
from lunatic_mp.errors import LunaticError, PluginError, SpawnError
from lunatic_mp.pids import ANY_WORKER, REGISTRY, make_pid, node_of, place_of
from lunatic_mp.vm import arguments, wasm
from lunatic_mp.vm.engine import MAX_MESSAGE_SIZE
from lunatic_mp.vm.finished import Finished, Outcome
from lunatic_mp.vm.mailbox import Kind, Message
from lunatic_mp.vm.module import Module
from lunatic_mp.vm.native import pickle_native
from lunatic_mp.vm.params import PARAM_TYPE_BYTES, typed_args

if TYPE_CHECKING:
    from lunatic_mp.api.executor import WasmExecutor
    from lunatic_mp.api.handles import Environment, Registry
    from lunatic_mp.cluster.nodes import RayCluster

log = logging.getLogger(__name__)
T = TypeVar("T")


def _settler(future: Future[T]) -> Callable[[T | BaseException], None]:
    """The callback that resolves ``future`` with a result, or with an exception given instead."""

    def settle(outcome: T | BaseException) -> None:
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)

    return settle


class Runtime(Supervisor):
    """Processes on every core, as the host program sees them (a :class:`Supervisor` beneath).

    >>> with Runtime(workers=2) as runtime:
    ...     module = runtime.load_module(examples.path("hello.wat"))
    ...     pid = runtime.spawn(module, "_start", config=EnvConfig.permissive())
    """

    def __init__(self, workers: int | None = None, *, cluster: str | None = None, **options: Any) -> None:
        """``workers``: worker processes (one per CPU by default); ``cluster``: the address of a
        Ray cluster (``"auto"``: the one ``ray start`` made here) whose every other node this
        runtime spans, as node 1 (docs/cluster.md); the other options are the
        :class:`~lunatic_mp.cluster.supervisor.Supervisor`'s."""
        self.cluster: RayCluster | None = None
        if cluster is not None:
            from lunatic_mp.cluster.nodes import RayCluster

            self.cluster = RayCluster(cluster)
            options["gateway"] = self.cluster.gateway
        super().__init__(workers, **options)
        if self.cluster is not None:
            try:
                self.wait_started()
                self.cluster.start_agents()
            except BaseException:
                self.close()
                raise

    def nodes(self) -> dict[int, dict[str, str]]:
        """The live nodes of the cluster and their tags, this one included (none outside a cluster)."""
        with self._lock:
            return {node: dict(tags) for node, tags in self._hub.nodes.items()}

    def close(self) -> None:
        super().close()
        if self.cluster is not None:
            self.cluster.close()

    # --- the host program's API -----------------------------------------------------------------

    def load_module(self, source: str | bytes | Path, name: str | None = None) -> Module:
        """Compile a module once, for every worker (a path, Wasm bytes or WAT text)."""
        self._check_open(started=False)  # it may compile while the processes start
        module = Module.load(self._compiler, source, name)
        self.cache.store(module)
        return module

    def spawn(
        self,
        module: Module,
        function: str = "_start",
        params: Sequence[Any] = (),
        config: EnvConfig | None = None,
        *,
        worker: int | None = None,
        node: int | None = None,
        link: tuple[int, int] | None = None,
        timeout: float | None = 30.0,
    ) -> int:
        """Start ``module.function(*params)`` on a worker (round robin unless given), of this node
        or, in a cluster, of ``node``; its pid."""
        future = self.spawn_future(module, function, params, config, worker=worker, node=node, link=link)
        return future.result(timeout)

    def spawn_future(
        self,
        module: Module,
        function: str = "_start",
        params: Sequence[Any] = (),
        config: EnvConfig | None = None,
        *,
        worker: int | None = None,
        node: int | None = None,
        link: tuple[int, int] | None = None,
    ) -> Future[int]:
        """:meth:`spawn` without waiting: the future of the new pid (SpawnError, WorkerLost).

        Its callbacks run on the supervisor's pump thread: they must not wait on the runtime.
        """
        return self._spawn_request(*self._prepare_spawn(module, function, params, config, worker, node, link))

    def spawn_then(
        self,
        then: Callable[[int | BaseException], object],
        module: Module,
        function: str = "_start",
        params: Sequence[Any] = (),
        config: EnvConfig | None = None,
        *,
        worker: int | None = None,
        node: int | None = None,
        link: tuple[int, int] | None = None,
    ) -> None:
        """:meth:`spawn_future` for many spawns at a time: ``then(pid)``, or ``then(error)``
        (SpawnError, WorkerLost, EngineClosed), instead of a future, on the supervisor's pump
        thread (it must not wait on the runtime); bad arguments raise here. A Future and its lock
        cost more than a tiny job's whole spawn; :class:`~lunatic_mp.api.executor.WasmExecutor`
        uses this."""
        target, make, config = self._prepare_spawn(module, function, params, config, worker, node, link)
        if config.limits_environment:  # counted in at the registry process first: the future path
            future = self._spawn_request(target, make, config)
            future.add_done_callback(lambda done: then(done.exception() or done.result()))
        else:
            self._send_spawn(target, make, then)

    def send_jobs(
        self,
        worker: int,
        module: Module,
        function: str,
        params: Sequence[tuple[int, ...]],
        kinds: bytes,
        config: EnvConfig,
        inputs: Sequence[bytes],
        tags: Sequence[int],
        on_report: Callable[[frames.JobsDone | LunaticError], object],
    ) -> None:
        """Run ``len(params)`` processes of ``function`` on ``worker`` as one batch (one
        :class:`~lunatic_mp.cluster.frames.Jobs` frame): :class:`~lunatic_mp.api.executor.WasmExecutor`'s
        transport. ``params`` are each job's i32/i64 arguments, already checked against ``kinds``;
        ``inputs`` (with ``tags``) empty or one first message per job. ``on_report`` gets each
        :class:`~lunatic_mp.cluster.frames.JobsDone` as jobs start and end, or the error that
        ends the batch (WorkerLost, EngineClosed), on the pump thread; it must not wait on the
        runtime. The host program does not join or monitor these processes."""
        if len(params) > frames.MAX_JOBS:
            raise ValueError(f"a batch holds at most {frames.MAX_JOBS} jobs, got {len(params)}")
        module = arguments.module(module)
        flat = tuple(itertools.chain.from_iterable(params))
        encoded = frames.encode_config(config)
        batch = (module.digest, function, len(params), flat, kinds, encoded, tuple(inputs), tuple(tags))
        pid = self.pid

        def on_reply(frame: frames.JobsDone | None) -> None:
            on_report(frame if frame is not None else self._request_lost(worker))

        self._request_then(worker, lambda request: frames.Jobs(request, pid, *batch), on_reply)

    def _send_spawn(
        self, target: int, make: Callable[[int], frames.Frame], then: Callable[[Any], object]
    ) -> None:
        """Send a spawn frame; ``then(pid)`` or ``then(error)`` when it is answered."""

        def on_reply(frame: Any) -> None:
            if frame is None:
                then(self._request_lost(target))
            elif frame.error:
                then(SpawnError(frame.error))
            else:
                with self._lock:
                    self._spawned.add(frame.pid)
                then(int(frame.pid))

        self._request_then(target, make, on_reply)

    def _prepare_spawn(
        self,
        module: Module,
        function: str,
        params: Sequence[Any],
        config: EnvConfig | None,
        worker: int | None,
        node: int | None,
        link: tuple[int, int] | None,
    ) -> tuple[int, Callable[[int], frames.Frame], EnvConfig]:
        """Check a spawn's arguments; its worker, its Spawn frame (given a request id) and config."""
        self._check_open()
        module = arguments.module(module)
        signature = module.exports.get(function)
        if signature is None:
            raise SpawnError(f"{module.name} has no exported function `{function}`")
        args = typed_args(module.name, function, signature[0], params)
        if any(kind not in PARAM_TYPE_BYTES or kind == wasm.V128 for kind, _ in args):
            raise SpawnError("only i32 and i64 parameters can be passed to a process on a worker")
        target = self._place(worker, node)
        link_pid, link_tag = link or (0, 0)
        kinds = bytes(PARAM_TYPE_BYTES[kind] for kind, _ in args)
        config = self._in_environment(config or EnvConfig())
        encoded = frames.encode_config(config)
        values = tuple(v for _, v in args)
        digest, pid = module.digest, self.pid

        def make(request: int) -> frames.Frame:
            return frames.Spawn(request, pid, digest, function, values, kinds, encoded, link_pid, link_tag)

        return target, make, config

    def spawn_native(
        self,
        function: Callable[..., Any],
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        config: EnvConfig | None = None,
        *,
        worker: int | None = None,
        node: int | None = None,
        link: tuple[int, int] | None = None,
        timeout: float | None = 30.0,
    ) -> int:
        """Start ``function(context, *args, **kwargs)`` as a native process on a worker (round
        robin unless given); its pid. The function, its arguments and what it refers to are sent
        with cloudpickle; see :mod:`lunatic_mp.vm.native` for what the function can do. ``config``
        is what the Wasm processes it spawns inherit."""
        future = self.spawn_native_future(function, args, kwargs, config, worker=worker, node=node, link=link)
        return future.result(timeout)

    def spawn_native_future(
        self,
        function: Callable[..., Any],
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        config: EnvConfig | None = None,
        *,
        worker: int | None = None,
        node: int | None = None,
        link: tuple[int, int] | None = None,
    ) -> Future[int]:
        """:meth:`spawn_native` without waiting: the future of the new pid."""
        self._check_open()
        if not callable(function):
            raise SpawnError(f"a native process runs a function, got {function!r}")
        args = arguments.arguments(args, function)
        try:
            payload = pickle_native(function, args, kwargs or {})
        except Exception as exc:  # cloudpickle raises whatever pickling the objects does
            raise SpawnError(f"cannot pickle {function!r} and its arguments for a worker: {exc}") from exc
        target = self._place(worker, node)
        link_pid, link_tag = link or (0, 0)
        config = self._in_environment(config or EnvConfig())
        encoded = frames.encode_config(config)
        return self._spawn_request(
            target,
            lambda request: frames.SpawnNative(request, self.pid, payload, encoded, link_pid, link_tag),
            config,
            memory=0,  # a native process has no linear memory to reserve
        )

    def _in_environment(self, config: EnvConfig) -> EnvConfig:
        """``config``, with an environment id of its own if it bounds its processes and has none
        (:meth:`environment` gives all of an environment's spawns the same one)."""
        if config.limits_environment and not config.environment_id:
            config = config.copy()
            config.environment_id = next(self._environment_ids)
        return config

    def _place(self, worker: int | None, node: int | None = None) -> int:
        if node is not None and node != self.node_id:  # another node of the cluster: its gateway places it
            if node not in self._hub.nodes:
                raise SpawnError(f"no node {node} in the cluster (live: {sorted(self._hub.nodes)})")
            return place_of(make_pid(node, ANY_WORKER if worker is None else worker, 0))
        workers = self.worker_ids
        target = worker if worker is not None else workers[next(self._placement) % len(workers)]
        if target not in workers:
            raise SpawnError(f"no worker {target}")
        return target

    def _spawn_request(
        self,
        target: int,
        make: Callable[[int], frames.Frame],
        config: EnvConfig | None = None,
        *,
        memory: int | None = None,
    ) -> Future[int]:
        """Send a spawn frame to a worker; the future of the pid its reply carries. A spawn into
        an environment with ``max_processes`` or ``max_env_memory`` first counts itself (and
        ``memory``, by default its config's reservation) in at the registry process."""
        if config is not None and config.limits_environment:
            if memory is None:
                memory = config.memory_reservation(self._engine_options["max_memory"])
            return self._limited_spawn_request(target, make, config, memory)
        pid: Future[int] = Future()
        self._send_spawn(target, make, _settler(pid))
        return pid

    def _limited_spawn_request(
        self, target: int, make: Callable[[int], frames.Frame], config: EnvConfig, memory: int
    ) -> Future[int]:
        pid: Future[int] = Future()
        environment, limit, memory_limit = config.environment_id, config.max_processes, config.max_env_memory

        def acquired(done: Future[Any]) -> None:
            try:
                frame = done.result()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's future
                pid.set_exception(exc)
                return
            if not frame.found:
                pid.set_exception(SpawnError(frame.error))
                return
            self._spawn_request(target, make).add_done_callback(spawned)

        def spawned(done: Future[int]) -> None:
            error = done.exception()
            if error is None:
                pid.set_result(done.result())
                return
            with self._lock:  # counted in, never started
                self._hub.send(REGISTRY, frames.EnvRelease(environment, target, memory))
                self._flush()
            pid.set_exception(error)

        self._request_future(
            REGISTRY,
            lambda request: frames.EnvAcquire(
                request, self.pid, environment, limit, target, memory, memory_limit
            ),
        ).add_done_callback(acquired)
        return pid

    def join(self, pid: int, timeout: float | None = None) -> Finished | None:
        """Wait for a process spawned through this runtime to end; how it ended (None on timeout)."""
        future: Future[Finished] = Future()
        waiter = _settler(future)
        self.on_finished(pid, waiter)
        try:
            return future.result(timeout)
        except TimeoutError:
            with self._mail:  # forget this waiter, or the end would go to it and not to a later join
                waiters = self._finish_waiters.get(pid, [])
                if waiter in waiters:
                    waiters.remove(waiter)
                if not waiters:
                    self._finish_waiters.pop(pid, None)
            return future.result(0) if future.done() else None

    def finished_future(self, pid: int) -> Future[Finished]:
        """The future of how a process spawned through this runtime ends.

        Its callbacks run on the supervisor's pump thread: they must not wait on the runtime.
        """
        future: Future[Finished] = Future()
        self.on_finished(pid, _settler(future))
        return future

    def on_finished(self, pid: int, callback: Callable[[Finished | BaseException], object]) -> None:
        """Call ``callback(finished)`` when a process spawned through this runtime ends (at once if
        it has), or ``callback(EngineClosed)`` if the runtime closes first: :meth:`finished_future`
        without the Future, for many processes at a time. It runs on the supervisor's pump thread
        (or this one) and must not wait on the runtime."""
        with self._mail:
            finished = self._finished.pop(pid, None)
            if finished is None:
                self._finish_waiters.setdefault(pid, []).append(callback)
                return
            self._spawned.discard(pid)
        callback(finished)

    def send(self, pid: int, data: bytes = b"", tag: int = 0) -> None:
        """Send a message to a process (from the host program's own pid, :attr:`pid`)."""
        data = arguments.data_bytes(data)
        if not -(2**63) <= tag < 2**64:
            raise ValueError(f"tag {tag} does not fit in 64 bits")
        if len(data) > MAX_MESSAGE_SIZE:
            raise ValueError(f"message of {len(data)} bytes exceeds the {MAX_MESSAGE_SIZE}-byte limit")
        tag = tag - 2**64 if tag >= 2**63 else tag
        with self._lock:
            self._check_open()
            if self._hub.route(pid) == REGISTRY:
                return  # hosts no processes: dropped, as a message to any missing process is
            self._hub.reply(pid, frames.Message(pid, self.pid, tag, bytes(data), ()))
            self._flush()

    def receive(self, tags: Sequence[int] | None = None, timeout: float | None = None) -> Message | None:
        """The oldest message for the host program whose tag is in ``tags``; None on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._mail:
            while True:
                for index, message in enumerate(self._mailbox):
                    if tags is None or message.tag in tags:
                        return self._mailbox.pop(index)
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._mail.wait(remaining)

    def monitor(self, pid: int) -> None:
        """ProcessDied(pid) arrives in the host program's mailbox when ``pid`` dies."""
        with self._lock:
            self._check_open()
            self._monitoring.add(pid)
            if not self._hosted(pid):
                self._ended(pid, Finished(Outcome.FAILED, message="no such process"))
                return
            self._hub.reply(pid, frames.Monitor(pid, self.pid))
            self._flush()

    def link(self, pid: int, other: int, tag: int = 0) -> None:
        """Link two processes (anywhere) with ``tag``, as if one had called ``link``.

        ``other`` may be :attr:`pid`: LinkDied then arrives in the host program's mailbox. Each
        side is linked by its own worker, and both are in place when this returns (a request
        sent after each link frame has been answered), so a death right after cannot be
        missed. A side that does not exist is a NoProcess death for the other: LinkDied(NoProcess),
        or death for a process that dies with its links.
        """
        self._signal_both(pid, other, frames.Link(pid, other, tag), frames.Link(other, pid, tag))

    def unlink(self, pid: int, other: int) -> None:
        """Undo :meth:`link`, both sides (in place when this returns)."""
        self._signal_both(pid, other, frames.Unlink(pid, other), frames.Unlink(other, pid))

    def _signal_both(self, pid: int, other: int, to_pid: frames.Frame, to_other: frames.Frame) -> None:
        with self._lock:
            self._check_open()
            self._hub.reply(pid, to_pid)
            if other != self.pid:
                self._hub.reply(other, to_other)
            self._flush()
        for side in (pid, other):
            if side != self.pid:
                self.exists(side)  # a round trip behind the signal: that worker has handled it

    def executor(self, module: Module, **options: Any) -> WasmExecutor:
        """A ``concurrent.futures.Executor`` running ``module``'s exports as jobs on the workers
        (options: see :class:`~lunatic_mp.api.executor.WasmExecutor`)."""
        from lunatic_mp.api.executor import WasmExecutor

        return WasmExecutor(self, module, **options)

    def environment(
        self,
        config: EnvConfig | None = None,
        *,
        isolated_registry: bool = False,
        plugins: Iterable[str] = (),
    ) -> Environment:
        """Processes spawned through the environment get ``config``'s limits and permissions,
        and may import the namespaces of ``plugins`` (names of this runtime's plugins)."""
        from lunatic_mp.api.handles import Environment

        config = self._in_environment((config or EnvConfig()).copy())
        config.allowed_namespaces |= self.check_plugin_names(plugins)
        return Environment(self, config, isolated_registry=isolated_registry)

    def check_plugin_names(self, names: Iterable[str]) -> frozenset[str]:
        """``names``, once each is known to be one of this runtime's plugins."""
        wanted = frozenset([names] if isinstance(names, str) else names)
        unknown = sorted(wanted - set(self.plugins))
        if unknown:
            have = ", ".join(self.plugins) or "none"
            raise PluginError(f"this runtime has no plugin {', '.join(unknown)} (it has: {have})")
        return wanted

    @property
    def registry(self) -> Registry:
        """Names and versions of well-known processes, as guests see them."""
        from lunatic_mp.api.handles import Registry

        return Registry(self)

    def kill(self, pid: int, reason: str = "killed by the host program") -> None:
        with self._lock:
            self._check_open()
            self._hub.reply(pid, frames.Kill(pid, reason))
            self._flush()

    def exists(self, pid: int, timeout: float | None = 10.0) -> bool:
        self._check_open()
        if not self._hosted(pid):
            return False
        reply = self._request(self._hub.route(pid), lambda r: frames.Exists(r, self.pid, pid), timeout)
        return bool(reply.exists)

    def registry_put(self, name: str, pid: int, timeout: float | None = 10.0) -> None:
        put = lambda r: frames.RegistryPut(r, self.pid, name, node_of(pid), pid)  # noqa: E731
        reply = self._request(self._hub.names_at, put, timeout)
        if reply.error:
            raise LunaticError(reply.error)

    def registry_get(self, name: str, timeout: float | None = 10.0) -> int | None:
        reply = self._request(
            self._hub.names_at, lambda r: frames.RegistryGet(r, self.pid, name, False), timeout
        )
        if reply.error:
            raise LunaticError(reply.error)
        return int(reply.pid) if reply.found else None

    def registry_remove(self, name: str, timeout: float | None = 10.0) -> None:
        self._request(self._hub.names_at, lambda r: frames.RegistryRemove(r, self.pid, name), timeout)

    def stats(self, timeout: float | None = 10.0) -> list[dict[str, Any]]:
        """Each worker's figures: live processes, capacity and what bounds it, address space its
        arenas reserved, malformed frames, guest metrics."""
        self._check_open()
        return [
            msgpack.unpackb(self._request(w, lambda r: frames.Stats(r, self.pid), timeout).payload)
            for w in self.worker_ids
        ]

    def processes(
        self, limit: int = 10_000, timeout: float | None = 10.0
    ) -> tuple[int, list[dict[str, Any]]]:
        """How many live processes the workers hold, and at most ``limit`` of each worker's:
        maps of pid, worker, kind, module, digest, function, phase, waiting, mailbox, links, monitors
        (``Worker.process_list``). The workers are asked at once."""
        self._check_open()
        asked = [
            (w, self._request_future(w, lambda r: frames.ListProcesses(r, self.pid, limit)))
            for w in self.worker_ids
        ]
        total, rows = 0, list[dict[str, Any]]()
        for worker_id, future in asked:
            answer = msgpack.unpackb(future.result(timeout).payload)
            total += answer["total"]
            rows.extend({**row, "worker": worker_id} for row in answer["processes"])
        return total, rows

    def registry_names(self, timeout: float | None = 10.0) -> list[tuple[str, str | None, int]]:
        """Every registry entry as ``(name, version or None, pid)``, sorted by name, then version."""
        reply = self._request(self._hub.names_at, lambda r: frames.Stats(r, self.pid), timeout)
        return [(name, version, pid) for name, version, _, pid in msgpack.unpackb(reply.payload)["names"]]


__all__ = ["Kind", "Runtime"]
