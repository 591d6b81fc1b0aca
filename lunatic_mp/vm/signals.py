"""Links, monitors, kills and deaths: what lunatic's signals do to the processes of one engine.

A mixin of :class:`~lunatic_mp.vm.engine.Engine`, kept apart because it is one concern with its
own rules: a normal death, a failure and a kill each travel differently over links and monitors,
deaths cascade through links, and a process with registry names is announced dead only once the
registry has dropped them. Signals for processes of other workers go through the engine's
:class:`~lunatic_mp.vm.router.Router`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from lunatic_mp.pids import REGISTRY, SUPERVISOR, make_pid, node_of, node_of_place, place_of, worker_of
from lunatic_mp.vm.finished import Finished, Outcome
from lunatic_mp.vm.mailbox import DeathReason, Message
from lunatic_mp.vm.process import BaseProcess, Phase

if TYPE_CHECKING:
    from lunatic_mp.vm.environments import Environments
    from lunatic_mp.vm.registry import Registry
    from lunatic_mp.vm.router import Router

MAX_CAUSE = 400
"""Longest death reason quoted in a linked process's: a chain of deaths stays readable."""


class Signals:
    """Links, monitors, kills and deaths of an engine's processes (mixed into the Engine)."""

    if TYPE_CHECKING:  # the engine's, used here
        processes: dict[int, BaseProcess]
        router: Router | None
        registry: Registry
        worker_id: int
        node_id: int
        current: BaseProcess | None
        _held: dict[int, tuple[BaseProcess, Finished]]
        _environments: Environments
        _reservation: Callable[[BaseProcess], int]
        is_local: Callable[[int], bool]
        _is_gone: Callable[[int], bool]
        deliver: Callable[[int, Message], bool]
        unpark: Callable[[int], None]
        _make_room: Callable[[BaseProcess], None]
        cancel_timer: Callable[[int, BaseProcess | None], bool]

    def link(self, process: BaseProcess, other_pid: int, tag: int) -> None:
        if self._is_gone(other_pid):
            self._link_to_nothing(process, other_pid, tag)
            return
        if not self.is_local(other_pid):
            process.links[other_pid] = tag
            self.router.link(other_pid, process.pid, tag)  # type: ignore[union-attr]  # not local
            return
        other = self.processes.get(other_pid)
        if other is None:
            self._link_to_nothing(process, other_pid, tag)
            return
        process.links[other_pid] = tag
        other.links[process.pid] = tag

    def _link_to_nothing(self, process: BaseProcess, other_pid: int, tag: int) -> None:
        """A link to a pid with no process: NoProcess, which kills a process that dies with its
        links (as in lunatic 0.13) and otherwise arrives as LinkDied."""
        process.links[other_pid] = tag
        doomed = self._on_link_death(process, other_pid, DeathReason.NO_PROCESS, "no such process")
        if doomed is not None:
            self.kill(process.pid, doomed)

    def unlink(self, process: BaseProcess, other_pid: int) -> None:
        process.links.pop(other_pid, None)
        if not self.is_local(other_pid):
            self.router.unlink(other_pid, process.pid)  # type: ignore[union-attr]
            return
        other = self.processes.get(other_pid)
        if other is not None:
            other.links.pop(process.pid, None)

    def monitor(self, process: BaseProcess, other_pid: int) -> None:
        if self._is_gone(other_pid):
            self.deliver(process.pid, Message.process_died(other_pid))
            return
        if not self.is_local(other_pid):
            process.monitoring.add(other_pid)
            self.router.monitor(other_pid, process.pid)  # type: ignore[union-attr]
            return
        other = self.processes.get(other_pid)
        if other is None:
            self.deliver(process.pid, Message.process_died(other_pid))
            return
        process.monitoring.add(other_pid)
        other.monitored_by.add(process.pid)

    def stop_monitoring(self, process: BaseProcess, other_pid: int) -> None:
        process.monitoring.discard(other_pid)
        if not self.is_local(other_pid):
            self.router.stop_monitoring(other_pid, process.pid)  # type: ignore[union-attr]
            return
        other = self.processes.get(other_pid)
        if other is not None:
            other.monitored_by.discard(process.pid)

    def kill(self, pid: int, reason: str = "killed") -> bool:
        """Kill a process. One killing itself dies when its current host call returns."""
        process = self.processes.get(pid)
        if process is None:
            if self.is_local(pid) or self._is_gone(pid):
                return False
            self.router.kill(pid, reason)  # type: ignore[union-attr]
            return True
        if process is self.current:
            process.kill_requested = reason
        else:
            self.exit(process, Finished(Outcome.KILLED, message=reason))
        return True

    def accept_link(self, pid: int, other_pid: int, tag: int) -> None:
        """``other_pid`` (on another worker) linked itself to local ``pid``."""
        process = self.processes.get(pid)
        if process is None:
            self.router.link_died(other_pid, pid, tag, DeathReason.NO_PROCESS, "no such process")  # type: ignore[union-attr]
            return
        process.links[other_pid] = tag

    def accept_unlink(self, pid: int, other_pid: int) -> None:
        process = self.processes.get(pid)
        if process is not None:
            process.links.pop(other_pid, None)

    def accept_monitor(self, pid: int, watcher_pid: int) -> None:
        process = self.processes.get(pid)
        if process is None:
            self.router.process_died(watcher_pid, pid)  # type: ignore[union-attr]
            return
        process.monitored_by.add(watcher_pid)

    def accept_stop_monitoring(self, pid: int, watcher_pid: int) -> None:
        process = self.processes.get(pid)
        if process is not None:
            process.monitored_by.discard(watcher_pid)

    def link_died(self, pid: int, dead_pid: int, reason: DeathReason, cause: str) -> None:
        """A process linked to local ``pid`` died elsewhere (or its worker was lost)."""
        process = self.processes.get(pid)
        if process is None or dead_pid not in process.links:
            return  # unlinked meanwhile, or dead too
        doomed = self._on_link_death(process, dead_pid, reason, cause)
        if doomed is not None:
            self.kill(pid, doomed)

    def process_died(self, pid: int, dead_pid: int) -> None:
        """A process that local ``pid`` monitors died elsewhere."""
        process = self.processes.get(pid)
        if process is not None:
            process.monitoring.discard(dead_pid)
            self.deliver(pid, Message.process_died(dead_pid))

    def worker_lost(self, worker: int) -> None:
        """Every link and monitor into a lost worker of this node fires; requests to it fail."""
        place = place_of(make_pid(self.node_id, worker, 0))
        self.places_lost(
            lambda pid: pid >> 32 == place, f"worker {worker} lost", names_gone=worker == REGISTRY
        )

    def node_lost(self, node: int, worker: int, cause: str) -> None:
        """Every link and monitor into a lost node of the cluster (``worker`` 0), or into one lost
        worker of it, fires."""
        if worker:
            place = place_of(make_pid(node, worker, 0))
            self.places_lost(lambda pid: pid >> 32 == place, cause, names_gone=False)
        else:
            names_lost = self.router is not None and node_of_place(self.router.names_at) == node
            self.places_lost(lambda pid: node_of(pid) == node, cause, names_gone=names_lost)

    def places_lost(self, lost: Callable[[int], bool], cause: str, *, names_gone: bool) -> None:
        """Links and monitors into the processes ``lost`` matches fire, as if each died of a
        failure; ``names_gone``: the registry is lost, so no death waits for its names to go."""
        for process in list(self.processes.values()):
            for other_pid in [p for p in process.links if lost(p)]:
                self.link_died(process.pid, other_pid, DeathReason.FAILURE, cause)
            if process.watched():
                for other_pid in [p for p in process.monitoring if lost(p)]:
                    self.process_died(process.pid, other_pid)
            if process.forget_worker(lost):
                self.unpark(process.pid)
        if names_gone:  # no names to wait for any more
            for pid in list(self._held):
                self.names_released(pid)

    def exit(self, process: BaseProcess, finished: Finished) -> None:
        """Tear a process down and tell everyone linked to or monitoring it.

        Deaths cascade through links (a failure kills linked processes that die with their
        links); a work list, not recursion, so a long chain cannot overflow the stack.
        """
        pending: deque[tuple[BaseProcess, Finished]] | None = None  # made by the first to die with it
        dead, outcome = process, finished
        while True:
            if dead.finished is None:
                for other, cause in self._release(dead, outcome):
                    if other is self.current:
                        other.kill_requested = cause
                    else:
                        pending = pending if pending is not None else deque()
                        pending.append((other, Finished(Outcome.KILLED, message=cause)))
            if not pending:
                return
            dead, outcome = pending.popleft()

    def _release(self, process: BaseProcess, finished: Finished) -> Sequence[tuple[BaseProcess, str]]:
        """Free one process and notify its links and monitors; yields the processes it kills.

        A process with registry names in a runtime is announced dead only once the registry
        process has removed them (:meth:`names_released`): whoever sees its death notice, and
        whatever they tell others, finds its names gone.
        """
        process.finished = finished
        process.phase = Phase.DONE
        if process.timer is not None:
            process.timer.cancel()
            process.timer = None
        entangled = process.entangled()
        if entangled:
            for timer_id in process.timer_ids():  # its send_after timers die with it
                self.cancel_timer(timer_id, process)
        process.free()
        del self.processes[process.pid]
        self.registry.remove_process(process.pid)
        if entangled:
            for callback in process.exit_callbacks():
                callback(finished)
            if process.has_blocked_senders():
                self._make_room(process)
        router = self.router
        if process.config.limits_environment:
            environment = process.config.environment_id
            memory = self._reservation(process)
            if router is not None:
                router.env_release(environment, self.worker_id, memory)
            else:
                self._environments.release(environment, self.worker_id, memory)
        if router is not None and process.registered:
            router.process_gone(process.pid)
            if router.is_live(router.names_at):
                self._held[process.pid] = (process, finished)
                return ()
        return self._notify(process, finished) if entangled else ()

    def names_released(self, pid: int) -> None:
        """The registry process removed the names of ``pid``, which died: announce its death."""
        held = self._held.pop(pid, None)
        if held is not None:
            for other, cause in self._notify(*held):
                self.exit(other, Finished(Outcome.KILLED, message=cause))

    def _notify(self, process: BaseProcess, finished: Finished) -> list[tuple[BaseProcess, str]]:
        """Tell those linked to or monitoring a dead process; the processes that die with it."""
        if not process.watched():
            return []  # most processes: nobody to tell, and no cause to format
        pid = process.pid
        failed = not finished.ok
        reason = DeathReason.FAILURE if failed else DeathReason.NORMAL
        cause = str(finished) if process.links else ""  # only a link's death carries it
        cause = cause if len(cause) <= MAX_CAUSE else cause[: MAX_CAUSE - 1] + "…"
        router = self.router
        doomed: list[tuple[BaseProcess, str]] = []
        for other_pid, tag in process.links.items():
            other = self.processes.get(other_pid)
            if other is not None:
                if pid not in other.links:
                    continue  # unlinked while the death was held back
                doom = self._on_link_death(other, pid, reason, cause)
                if doom is not None:
                    doomed.append((other, doom))
            elif router is not None and not self.is_local(other_pid):
                router.link_died(other_pid, pid, tag, reason, cause)
        for watcher_pid in process.monitored_by:
            if self.is_local(watcher_pid):
                watcher = self.processes.get(watcher_pid)
                if watcher is not None and pid in watcher.monitoring:  # still watching
                    self.process_died(watcher_pid, pid)
            elif worker_of(watcher_pid) == SUPERVISOR:  # the host program wants the details
                router.process_finished(watcher_pid, pid, finished)  # type: ignore[union-attr]
            else:
                router.process_died(watcher_pid, pid)  # type: ignore[union-attr]
        for watched_pid in process.monitoring:
            watched = self.processes.get(watched_pid)
            if watched is not None:
                watched.monitored_by.discard(pid)
            elif router is not None and not self.is_local(watched_pid):
                router.stop_monitoring(watched_pid, pid)
        return doomed

    def _on_link_death(
        self, process: BaseProcess, dead_pid: int, reason: DeathReason, cause: str
    ) -> str | None:
        """``dead_pid``, linked to ``process``, died: the reason ``process`` must die too, or None
        once the death has arrived as a LinkDied message."""
        tag = process.links.pop(dead_pid, 0)
        if reason is DeathReason.NORMAL:
            return None  # lunatic 0.13 sends nothing over links for a normal death
        if process.die_when_link_dies:  # a failure, or a link to no process
            return f"linked process {dead_pid} died ({cause})"
        self.deliver(process.pid, Message.link_died(dead_pid, tag, reason))
        return None
