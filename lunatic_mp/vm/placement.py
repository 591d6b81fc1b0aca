"""Where a spawned process goes, and requests that wait for another process of the runtime.

A mixin of :class:`~lunatic_mp.vm.engine.Engine`. A guest's spawn may land on another worker
(round robin, unless its environment keeps spawns local), an environment with ``max_processes``
is counted by the registry process across workers, and ``get_or_spawn`` is atomic across the
runtime. Each of these is a request through the engine's :class:`~lunatic_mp.vm.router.Router`
whose reply resumes the process that asked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from lunatic_mp.config import EnvConfig
from lunatic_mp.errors import LunaticError
from lunatic_mp.pids import REGISTRY, node_of
from lunatic_mp.vm import wasm
from lunatic_mp.vm.module import Module
from lunatic_mp.vm.native import pickle_native
from lunatic_mp.vm.process import BaseProcess

SpawnRequest = tuple[Module, str, Sequence[tuple[int, Any]], EnvConfig]
"""What a guest asks to spawn: the module, its export, the export's typed arguments, the config."""

if TYPE_CHECKING:
    from lunatic_mp.vm.environments import Environments
    from lunatic_mp.vm.native import NativeProcess
    from lunatic_mp.vm.process import Process
    from lunatic_mp.vm.router import Router
    from lunatic_mp.vm.scheduler import Scheduler


class Placement:
    """Spawns placed across the runtime, and requests that suspend a process (mixed into the Engine)."""

    if TYPE_CHECKING:  # the engine's, used here
        router: Router | None
        scheduler: Scheduler
        worker_id: int
        node_id: int
        _environments: Environments
        max_memory: int
        resume: Callable[..., None]

        def spawn(
            self,
            module: Module,
            function: str = "_start",
            params: Sequence[Any] = (),
            config: EnvConfig | None = None,
            *,
            link: tuple[BaseProcess | int, int] | None = None,
        ) -> Process: ...

        def spawn_native(
            self,
            function: Callable[..., Any],
            args: Sequence[Any] = (),
            kwargs: dict[str, Any] | None = None,
            config: EnvConfig | None = None,
            *,
            link: tuple[BaseProcess | int, int] | None = None,
        ) -> NativeProcess: ...

    def spawn_placed(
        self,
        parent: BaseProcess,
        link_tag: int,
        what: SpawnRequest,
        on_done: Callable[[int | str], None],
    ) -> None:
        """Spawn for ``parent`` where the runtime places it: ``on_done(pid or error message)``, at
        once (this worker) or when the other worker answers. ``link_tag`` 0: not linked."""
        worker = self.worker_id if self._stays_here(parent, what) else self.router.place()  # type: ignore[union-attr]
        if worker == self.worker_id and not what[3].limits_environment:  # most spawns
            self._spawn_here(parent, link_tag, what, on_done)
            return

        def place(done: Callable[[int | str], None]) -> None:
            if worker != self.worker_id:
                self.spawn_remote(parent, worker, what, link_tag, done)
            else:
                self._spawn_here(parent, link_tag, what, done)

        self._within_limit(parent, what[3], worker, place, on_done)

    def _stays_here(self, parent: BaseProcess, what: SpawnRequest) -> bool:
        """Whether a child of ``parent`` is spawned on this worker whatever the round robin says:
        one engine, an environment that keeps spawns local, or v128 parameters (which do not
        travel in frames)."""
        return (
            self.router is None
            or parent.config.spawn_local
            or bool(what[2] and any(kind == wasm.V128 for kind, _ in what[2]))
        )

    def spawn_here_at_once(self, parent: BaseProcess, link_tag: int, what: SpawnRequest) -> int | str | None:
        """The common spawn of a guest that keeps its children local, without callbacks: the
        child's pid (or why it failed), or None when it is placed otherwise (:meth:`spawn_placed`
        then: round robin, a limited environment)."""
        if what[3].limits_environment or not self._stays_here(parent, what):
            return None
        return self._spawn_local(parent, link_tag, what)

    def _spawn_local(self, parent: BaseProcess, link_tag: int, what: SpawnRequest) -> int | str:
        """Spawn on this engine: the child's pid, or why it could not be spawned."""
        module, function, params, config = what
        try:
            return self.spawn(
                module, function, params, config, link=(parent, link_tag) if link_tag else None
            ).pid
        except LunaticError as exc:
            return str(exc)

    def _spawn_here(
        self,
        parent: BaseProcess,
        link_tag: int,
        what: SpawnRequest,
        on_done: Callable[[int | str], None],
    ) -> None:
        on_done(self._spawn_local(parent, link_tag, what))

    def _within_limit(
        self,
        parent: BaseProcess,
        config: EnvConfig,
        worker: int,
        place: Callable[[Callable[[int | str], None]], None],
        on_done: Callable[[int | str], None],
        *,
        native: bool = False,
    ) -> None:
        """``place(on_done)`` a child of ``parent`` on ``worker`` if its environment has room
        (``config.max_processes``, ``config.max_env_memory``; a ``native`` child takes no
        memory from it), else ``on_done(why not)``. In a runtime the registry process counts
        every worker's processes of the environment: one round trip."""
        if not config.limits_environment:
            place(on_done)
            return
        environment, limit, memory_limit = config.environment_id, config.max_processes, config.max_env_memory
        memory = 0 if native else config.memory_reservation(self.max_memory)
        if self.router is None:  # one engine: the count is right here (Engine.spawn keeps it)
            error = self._environments.check(environment, limit, memory, memory_limit)
            if error is not None:
                on_done(error)
            else:
                place(on_done)
            return
        router = self.router

        def release() -> None:
            router.env_release(environment, worker, memory)

        def placed(child: int | str) -> None:
            if isinstance(child, str):
                release()  # counted, never started
            if parent.finished is None:
                on_done(child)

        def acquired(reply: Any) -> None:
            if reply is None or not reply.found:
                if parent.finished is None:
                    on_done(reply.error if reply is not None else "the registry process was lost")
            elif parent.finished is not None:
                release()
            else:
                place(placed)

        if not router.is_live(REGISTRY):  # being replaced: nobody can count
            on_done("the registry process is being replaced: cannot count the environment's processes")
            return
        router.env_acquire(parent.pid, environment, limit, worker, memory, memory_limit, acquired)

    def spawn_native_placed(
        self,
        parent: BaseProcess,
        link_tag: int,
        function: Callable[..., Any],
        args: Sequence[Any],
        kwargs: dict[str, Any],
        on_done: Callable[[int | str], None],
    ) -> None:
        """:meth:`spawn_placed` for a native process: pickled (cloudpickle) to another worker."""
        spread = self.router is not None and not parent.config.spawn_local
        worker = self.router.place() if spread else self.worker_id  # type: ignore[union-attr]

        def place(done: Callable[[int | str], None]) -> None:
            if worker == self.worker_id:
                try:
                    here = (parent, link_tag) if link_tag else None
                    child = self.spawn_native(function, args, kwargs, parent.config.copy(), link=here)
                except LunaticError as exc:
                    done(str(exc))
                    return
                done(child.pid)
                return
            try:
                payload = pickle_native(function, args, kwargs)
            except Exception as exc:  # noqa: BLE001 - cloudpickle raises many kinds
                done(f"cannot pickle {function!r} for another worker: {exc}")
                return
            assert self.router is not None
            there = (parent.pid, link_tag) if link_tag else (0, 0)
            on_reply = self._spawn_reply(parent, worker, link_tag, done)
            self.router.spawn_native(worker, parent.pid, payload, parent.config, there, on_reply)

        self._within_limit(parent, parent.config, worker, place, on_done, native=True)

    def _spawn_reply(
        self, parent: BaseProcess, worker: int, link_tag: int, on_done: Callable[[int | str], None]
    ) -> Callable[[Any], None]:
        """What to do with the reply to a spawn on ``worker``: link ``parent`` to the child (when
        ``link_tag``) and call ``on_done(pid or error message)``."""

        def reply(frame: Any) -> None:
            if frame is None:
                on_done(f"worker {worker} was lost before it spawned the process")
            elif frame.error:
                on_done(frame.error)
            else:
                if link_tag and parent.finished is None:
                    parent.links[frame.pid] = link_tag
                on_done(frame.pid)

        return reply

    def ask(
        self,
        process: BaseProcess,
        worker: int,
        request: Callable[[Callable[[Any], None]], None],
        on_reply: Callable[[Any], tuple[int, Callable[[], None] | None]],
    ) -> object:
        """Make a request of ``worker`` for ``process`` (``request(on_reply)``, a call of the
        router) and suspend it until the reply comes.

        ``on_reply(reply)`` (``reply`` None when the worker asked is lost) gives the value the
        suspended host call returns and what to do in the process just before it goes on.
        """
        assert self.router is not None

        def done(reply: Any) -> None:
            if process.finished is None:
                value, after = on_reply(reply)
                self.resume(process, value, after)

        if not self.router.is_live(worker):  # nobody to answer: as if it were lost (once suspended)
            self.scheduler.call_later(0, lambda: done(None))
        else:
            request(done)
        return wasm.PENDING

    def spawn_remote(
        self,
        parent: BaseProcess,
        worker: int,
        what: SpawnRequest,
        link_tag: int,
        on_done: Callable[[int | str], None],
    ) -> None:
        """Ask another worker to spawn; ``on_done(pid or error message)`` when it answers.

        A linked child is linked on its side before it runs; this side links when the reply
        comes (frames between two workers arrive in order, so a LinkDied cannot overtake it).
        """
        assert self.router is not None
        module, function, params, config = what
        link = (parent.pid, link_tag) if link_tag else (0, 0)
        on_reply = self._spawn_reply(parent, worker, link_tag, on_done)
        self.router.spawn(worker, parent.pid, module, function, params, config, link, on_reply)

    def get_or_spawn_remote(
        self,
        process: BaseProcess,
        name: str,
        spawn: Callable[[Callable[[int | str], None]], None],
        on_found: Callable[[int, int], None],
        on_spawned: Callable[[int, int, Callable[[], None]], None],
        on_error: Callable[[str], None],
    ) -> None:
        """``get_or_spawn`` against the registry process, atomically: the lookup reserves the
        name, so nobody else spawns it meanwhile (lookups of it wait); the reservation ends with
        a put or a remove.

        The child's pid goes to ``on_spawned`` with ``publish``, which registers the name: call
        it when the spawner goes on (it runs at its death otherwise), so that what the spawner
        sends its child right after the call leaves before anyone can find the child by name."""
        router = self.router
        assert router is not None
        reply_to = process.pid

        def looked_up(reply: Any) -> None:
            if reply is None:
                on_error("the registry process was lost")
            elif reply.error:
                on_error(reply.error)
            elif reply.found:
                on_found(reply.node, reply.pid)
            else:
                spawn(spawned)

        def spawned(child: int | str) -> None:
            if isinstance(child, str):
                router.registry_remove(reply_to, name, _ignore)
                on_error(child)
                return
            published: list[bool] = []

            def put() -> None:
                router.registry_put(reply_to, name, node_of(child), child, _ignore)

            def publish(_finished: object = None) -> None:
                if published:
                    return
                published.append(True)
                if _finished is not None:  # the spawner died first (from the on_exit loop)
                    put()
                    return
                process.on_exit.remove(publish)
                # the next round: after this round's frames, the child's first message among them
                self.scheduler.call_later(0.0, put)

            process.on_exit.append(publish)
            on_spawned(node_of(child), child, publish)

        router.registry_get(reply_to, name, True, looked_up)


def _ignore(_reply: Any) -> None:
    return None
