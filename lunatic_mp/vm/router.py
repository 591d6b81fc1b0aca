"""How an engine inside a runtime reaches processes that are not its own.

An engine speaks to the rest of the runtime in the words of its own model: messages, links,
monitors, kills, deaths, spawns and registry requests. How they travel (frames over shared-memory
rings, :mod:`lunatic_mp.cluster.router`) is not the engine's business, so nothing under
:mod:`lunatic_mp.vm` imports the wire format. An engine on its own (tests, embedding, a
single-engine ``lunatic-mp run``) has no router: every pid is local.

A request that expects an answer takes ``on_reply``: it is called once, with the reply (an object
whose fields the request's docstring names) or with None when whoever had to answer was lost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from lunatic_mp.config import EnvConfig
    from lunatic_mp.vm.finished import Finished
    from lunatic_mp.vm.mailbox import DeathReason, Message
    from lunatic_mp.vm.module import Module

OnReply = Callable[[Any], None]
"""Called with a reply, or with None when the one asked was lost."""


class Router(Protocol):
    """The rest of the runtime, as one engine sees it."""

    # --- where things are -----------------------------------------------------------------------

    def place(self) -> int:
        """The worker id where a process spawned by a guest goes (possibly this one)."""

    def is_live(self, worker: int) -> bool:
        """Whether anything sent to ``worker`` can arrive (a worker that is lost or never was: no)."""

    def route(self, pid: int) -> int:
        """The worker that hosts ``pid`` (one of this node's), or, in a cluster, its place on
        another node (:func:`lunatic_mp.pids.destination`): what :meth:`is_live` and requests take."""

    @property
    def names_at(self) -> int:
        """Who keeps the registry's names (this node's registry process, or another node's)."""

    # --- one-way signals ------------------------------------------------------------------------

    def send_message(self, to: int, message: Message) -> None:
        """Deliver ``message`` to ``to``'s worker (its modules and streams travel with it)."""

    def link(self, to: int, other: int, tag: int) -> None:
        """``other`` (here) linked itself to ``to`` (there)."""

    def unlink(self, to: int, other: int) -> None:
        """``other`` (here) removed its link to ``to`` (there)."""

    def monitor(self, to: int, watcher: int) -> None:
        """``watcher`` (here) watches ``to`` (there)."""

    def stop_monitoring(self, to: int, watcher: int) -> None:
        """``watcher`` stopped watching ``to``, or died."""

    def kill(self, to: int, reason: str) -> None:
        """Kill ``to`` (there) with ``reason``."""

    def link_died(self, to: int, dead: int, tag: int, reason: DeathReason, cause: str) -> None:
        """``dead``, linked to ``to`` with ``tag``, died (or never was: NO_PROCESS)."""

    def process_died(self, to: int, dead: int) -> None:
        """``dead``, which ``to`` monitors, died."""

    def process_finished(self, to: int, pid: int, finished: Finished) -> None:
        """``pid`` ended, told with every detail to the host program ``to``, which watches it."""

    def mailbox_full(self, sender: int, target: int, full: bool) -> None:
        """``target``'s mailbox is full (pause ``sender``), or has room again (let it go on)."""

    def env_release(self, environment: int, worker: int, memory: int) -> None:
        """A process of a limited environment on ``worker`` ended (or never started), giving
        back the ``memory`` it reserved."""

    def process_gone(self, pid: int) -> None:
        """``pid``, which has registry names, died: the registry drops them, then answers."""

    # --- requests -------------------------------------------------------------------------------

    def env_acquire(
        self,
        asker: int,
        environment: int,
        limit: int,
        worker: int,
        memory: int,
        memory_limit: int,
        on_reply: OnReply,
    ) -> None:
        """Count one more process of ``environment`` on ``worker``, reserving ``memory`` bytes of
        its budget, if it has room (``limit`` processes, ``memory_limit`` bytes; 0: no bound);
        reply fields: ``found`` (granted), ``error``."""

    def spawn(
        self,
        worker: int,
        parent: int,
        module: Module,
        function: str,
        params: Sequence[tuple[int, Any]],
        config: EnvConfig,
        link: tuple[int, int],
        on_reply: OnReply,
    ) -> None:
        """Spawn ``module.function(*params)`` on ``worker``; ``link`` = (pid, tag) to link the
        child to before it runs, (0, 0) for none. Reply fields: ``pid``, ``error``."""

    def spawn_native(
        self,
        worker: int,
        parent: int,
        payload: bytes,
        config: EnvConfig,
        link: tuple[int, int],
        on_reply: OnReply,
    ) -> None:
        """Spawn a pickled native process on ``worker``; as :meth:`spawn`."""

    def exists(self, asker: int, pid: int, on_reply: OnReply) -> None:
        """Whether ``pid`` is alive; reply field: ``exists``."""

    def registry_get(self, asker: int, name: str, reserve: bool, on_reply: OnReply) -> None:
        """Look ``name`` up; with ``reserve``, an absent name is held for ``asker`` until its
        put or remove (``get_or_spawn``). Reply fields: ``found``, ``node``, ``pid``, ``error``."""

    def registry_put(self, asker: int, name: str, node: int, pid: int, on_reply: OnReply) -> None:
        """Register ``pid`` under ``name``; reply field: ``error``."""

    def registry_remove(self, asker: int, name: str, on_reply: OnReply) -> None:
        """Remove ``name``; reply field: ``error``."""


__all__ = ["OnReply", "Router"]
