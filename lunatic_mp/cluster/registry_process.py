"""The registry process: names and versions of well-known processes, for every worker at once.

One process owns the :class:`~lunatic_mp.vm.registry.Registry` so that a name means the same on
every worker and ``get_or_spawn`` is atomic: a lookup with ``lock`` reserves a missing name for
the asker until it registers it (or gives up), and other lookups of that name wait meanwhile.
Names go away when their process dies (its worker reports it) or when its worker is lost.

In a cluster (:mod:`lunatic_mp.cluster.gateway`) node 1's registry process is the authority for
names: every registration, removal and ``get_or_spawn`` goes to it, so ``get_or_spawn`` is atomic
cluster-wide. It sends each change to the other nodes' registry processes, which answer lookups
from that replica, and ask the authority about a name they do not hold (it may be a moment old).
A replica may thus still name a process for as long as a frame takes between two nodes after the
name went. A lost node's names go from the authority and every replica alike.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from pathlib import Path

import msgpack

from lunatic_mp.cluster import frames
from lunatic_mp.cluster.child import die_with_parent, ignore_stop_signals
from lunatic_mp.cluster.hub import Hub
from lunatic_mp.cluster.logs import send_logs_to
from lunatic_mp.cluster.specs import RegistrySpec
from lunatic_mp.errors import InvalidNameError
from lunatic_mp.pids import FIRST_WORKER, REGISTRY, SUPERVISOR, make_pid, node_of, place_of
from lunatic_mp.vm.environments import Environments
from lunatic_mp.vm.registry import Registry

log = logging.getLogger(__name__)


class RegistryServer(Hub):
    def __init__(self, run_id: str, run_dir: Path, peers: list[int], node_id: int = 0) -> None:
        super().__init__(REGISTRY, run_id, run_dir, node_id=node_id)
        self.registry = Registry()
        self.locks: dict[str, int] = {}  # name reserved by get_or_spawn -> the asker's pid
        self.waiting: dict[str, deque[frames.RegistryGet]] = {}
        self.environments = Environments()  # live processes and memory of limited environments
        self.pending_puts: dict[int, list[frames.RegistryPut]] = {}  # pid -> puts its worker must confirm
        for peer in peers:
            self.connect(peer)
        self.running = True
        self.handlers = {
            frames.RegistryPut: self._on_put,
            frames.RegistryGet: self._on_get,
            frames.RegistryRemove: self._on_remove,
            frames.ProcessGone: self._on_process_gone,
            frames.RegistryWatch: self._on_watching,
            frames.RegistryReplica: self._on_replica,
            frames.EnvAcquire: self._on_env_acquire,
            frames.EnvRelease: self._on_env_release,
            frames.WorkerStarted: lambda f: self.worker_started(f.worker),
            frames.WorkerLost: self._on_worker_lost,
            frames.NodeLost: self._on_node_lost,
            frames.NodeTable: self.node_table,
            frames.Stats: self._on_stats,
            frames.Shutdown: self._on_shutdown,
        }

    def _answer(self, request: frames.RegistryGet | frames.RegistryPut | frames.RegistryRemove,
                found: tuple[int, int] | None = None, error: str = "") -> None:  # fmt: skip
        node, pid = found or (0, 0)
        self.reply(
            request.reply_to,
            frames.RegistryReply(request.request, request.reply_to, found is not None, node, pid, error),
        )

    def _on_put(self, frame: frames.RegistryPut) -> None:
        """Register a name once the process's worker has promised to report its death (it
        answers RegistryWatch with RegistryWatch, or with ProcessGone if it is dead already):
        until then the name is not visible, so no lookup finds a process whose death notice
        may already be out."""
        try:
            self.registry.check_name(frame.name)
        except InvalidNameError as exc:
            self._answer(frame, error=str(exc))
            return
        host = self.route(frame.pid)
        if host >= FIRST_WORKER and self.is_live(host):
            self.pending_puts.setdefault(frame.pid, []).append(frame)
            self.send(host, frames.RegistryWatch(frame.pid))
            return
        self._complete_put(frame, store=True)

    def _complete_put(self, frame: frames.RegistryPut, *, store: bool) -> None:
        """Answer a put; ``store`` false: its process is dead, so the name is not kept."""
        if store:
            node = node_of(frame.pid) or frame.node  # in a cluster a pid names its node
            self.registry.put(frame.name, node, frame.pid)
            self._replicate(frames.RegistryReplica(frame.name, node, frame.pid, True))
        self._answer(frame, (frame.node, frame.pid))
        self._release(frame.name)

    def _on_watching(self, frame: frames.RegistryWatch) -> None:
        """A worker watches a process for us now: its pending names become visible."""
        for put in self.pending_puts.pop(frame.to, ()):
            self._complete_put(put, store=True)

    def _on_get(self, frame: frames.RegistryGet) -> None:
        try:
            found = self.registry.get(frame.name)
        except InvalidNameError as exc:
            self._answer(frame, error=str(exc))
            return
        if self.names_at != REGISTRY and (frame.lock or found is None):  # a replica: ask the authority
            self.send(self.names_at, frame)
            return
        if found is not None or (not frame.lock and frame.name not in self.locks):
            self._answer(frame, found)
        elif frame.name in self.locks:  # reserved by a get_or_spawn: plain lookups wait too
            self.waiting.setdefault(frame.name, deque()).append(frame)
        else:
            self.locks[frame.name] = frame.reply_to
            self._answer(frame)

    def _on_remove(self, frame: frames.RegistryRemove) -> None:
        try:
            self.registry.remove(frame.name)
        except InvalidNameError as exc:
            self._answer(frame, error=str(exc))
            return
        self._replicate(frames.RegistryReplica(frame.name, 0, 0, False))
        self._answer(frame)
        self._release(frame.name)

    def _release(self, name: str) -> None:
        """A reservation ended: lookups that waited for it are answered (or reserve in turn)."""
        if self.locks.pop(name, None) is None:
            return
        queue = self.waiting.pop(name, deque())
        while queue and name not in self.locks:
            self._on_get(queue.popleft())
        if queue:
            self.waiting.setdefault(name, deque()).extend(queue)

    def _on_process_gone(self, frame: frames.ProcessGone) -> None:
        """A process with names died: remove them, then tell its worker, which holds its death
        notices back until now so that nobody who sees one can still look the names up."""
        self.registry.remove_process(frame.pid)
        self._replicate(frames.RegistryReplica("", 0, frame.pid, False))
        for put in self.pending_puts.pop(frame.pid, ()):
            self._complete_put(put, store=False)
        if self.route(frame.pid) >= FIRST_WORKER:
            self.send(self.route(frame.pid), frames.ProcessGone(frame.pid))

    def _replicate(self, change: frames.RegistryReplica) -> None:
        """The authority of a cluster's names tells the other nodes' registries of a change."""
        if self.nodes and self.names_at == REGISTRY:
            for node in self.nodes:
                if node != self.node_id:
                    self.send(place_of(make_pid(node, REGISTRY, 0)), change)

    def _on_replica(self, change: frames.RegistryReplica) -> None:
        """A change of the authority's names, into this node's replica."""
        try:
            if change.present:
                self.registry.put(change.name, change.node, change.pid)
            elif change.name:
                self.registry.remove(change.name)
            else:
                self.registry.remove_process(change.pid)
        except InvalidNameError as exc:  # the authority checked it: a bug, not a guest's doing
            log.warning("a replicated registry change was refused: %s", exc)

    def _on_env_acquire(self, frame: frames.EnvAcquire) -> None:
        """Count one more process of a limited environment (EnvConfig.max_processes and
        max_env_memory), if it has room: one count for every worker, so a spawn bomb spread over
        them all is bounded."""
        error = self.environments.acquire(
            frame.environment, frame.worker, frame.limit, frame.memory, frame.memory_limit
        )
        self.reply(
            frame.reply_to,
            frames.RegistryReply(frame.request, frame.reply_to, error is None, 0, 0, error or ""),
        )

    def _on_env_release(self, frame: frames.EnvRelease) -> None:
        self.environments.release(frame.environment, frame.worker, frame.memory)

    def _on_worker_lost(self, frame: frames.WorkerLost) -> None:
        """Forget a lost worker's names, then tell the supervisor, which tells the workers only
        now: a process that sees a death notice of the lost worker finds its names gone."""
        self.disconnect(frame.worker)
        place = place_of(make_pid(self.node_id, frame.worker, 0))
        self._forget(lambda pid: pid >> 32 == place)
        self.environments.forget_worker(frame.worker)  # its processes died with it
        self.send(SUPERVISOR, frames.WorkerLost(frame.worker))

    def _on_node_lost(self, frame: frames.NodeLost) -> None:
        """Forget the names of a lost node of the cluster (or of one lost worker of it)."""
        if frame.worker:
            place = place_of(make_pid(frame.node, frame.worker, 0))
            self._forget(lambda pid: pid >> 32 == place)
        else:
            self._forget(lambda pid: node_of(pid) == frame.node)

    def _forget(self, lost: Callable[[int], bool]) -> None:
        """Drop the names, pending registrations and reservations of the processes ``lost`` matches."""
        for pid in [pid for pid in self.pending_puts if lost(pid)]:
            for put in self.pending_puts.pop(pid):
                self._complete_put(put, store=False)
        for _, _, _, pid in self.registry.names():
            if lost(pid):
                self.registry.remove_process(pid)
        for name, holder in list(self.locks.items()):
            if lost(holder):
                self._release(name)

    def _on_stats(self, frame: frames.Stats) -> None:
        """The registry's figures: every entry, as ``[name, version or nil, node, pid]``, and
        how many frames it dropped as invalid."""
        payload = msgpack.packb({"names": self.registry.names(), "malformed_frames": self.malformed_frames})
        self.reply(frame.reply_to, frames.StatsReply(frame.request, frame.reply_to, payload))

    def _on_shutdown(self, frame: frames.Shutdown) -> None:
        self.running = False

    def run(self) -> None:
        while self.running and not self.orphaned():
            arrived = self.receive()
            self.flush()
            if not arrived:
                self.sleep(self.sleep_timeout())


def main(spec: RegistrySpec) -> None:
    """Entry point of the registry process."""
    die_with_parent(spec.supervisor_pid, deathsig=spec.deathsig)
    ignore_stop_signals()
    send_logs_to(spec.log_pipe, spec.log_level)
    server = RegistryServer(spec.run_id, Path(spec.run_dir), spec.peers, spec.node_id)
    try:
        server.send(SUPERVISOR, frames.WorkerStarted(REGISTRY, 0))
        server.flush()
        server.run()
    finally:
        server.close()
