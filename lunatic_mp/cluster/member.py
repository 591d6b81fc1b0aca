"""The supervisor's side of a cluster: what its :class:`~lunatic_mp.cluster.gateway.Gateway` asks of
it. A base of :class:`~lunatic_mp.cluster.supervisor.Supervisor`, which owns the state used here.

Frames that arrive from other nodes go into the rings of this node's workers as they are (the
supervisor decodes only those for itself, and those for a worker that is gone, to answer the
requests among them); the table of live nodes and the loss of a node, or of a worker of another
node, go to every worker and the registry process as NodeTable and NodeLost frames.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgpack

from lunatic_mp.cluster import frames
from lunatic_mp.cluster.hub import Endpoint, Hub
from lunatic_mp.cluster.requests import PendingRequests
from lunatic_mp.errors import LunaticError
from lunatic_mp.pids import (
    ANY_WORKER,
    FIRST_WORKER,
    REGISTRY,
    SUPERVISOR,
    make_pid,
    node_of,
    node_of_place,
    place_of,
)  # fmt: skip
from lunatic_mp.vm.finished import Finished, Outcome
from lunatic_mp.vm.module import Module, ModuleCache

if TYPE_CHECKING:
    import wasmtime

    from lunatic_mp.cluster.gateway import Gateway

log = logging.getLogger(__name__)


class ClusterMember:
    """The :class:`~lunatic_mp.cluster.gateway.GatewayHost` calls, for the supervisor."""

    node_id: int
    gateway: Gateway | None
    cache: ModuleCache
    _hub: Hub
    _lock: threading.RLock
    _requests: PendingRequests
    _children: dict[int, Any]
    _monitoring: set[int]
    _spawned: set[int]
    _compiler: wasmtime.Engine
    _wake: Callable[[], None]
    _flush: Callable[[], None]
    _ended: Callable[[int, Finished], None]

    def _join_cluster(self, gateway: Gateway | None) -> None:
        self.gateway = gateway
        self._node_table = b""  # the last NodeTable's payload, for workers started later
        self._any_worker = itertools.count()
        if gateway is not None:
            self._hub.gateway = gateway.send
            self._hub.gateway_flush = gateway.flush
            self._hub.handlers[frames.Forward] = lambda f: gateway.send_records(
                node_of_place(f.place), f.payload, f.modules
            )
            self._hub.handlers[frames.NodeLost] = self._on_worker_lost_elsewhere
            gateway.attach(self)

    # --- the GatewayHost calls -------------------------------------------------------------------

    def deliver_forwarded(self, arrived: dict[int, list[bytes]]) -> None:
        with self._lock:
            endpoints = self._hub.endpoints
            for worker, payloads in arrived.items():
                endpoint = endpoints.get(worker)  # none for the supervisor itself, nor for ANY_WORKER
                if endpoint is not None:  # into a worker's ring as they are, in order
                    endpoint.outbox.put_many(payloads)
                    endpoint.queued += sum(map(len, payloads))
                    continue
                for payload in payloads:
                    chosen = self._any_worker_endpoint() if worker == ANY_WORKER else None
                    if chosen is not None:
                        chosen.outbox.put(payload)
                        chosen.queued += len(payload)
                    else:
                        self._not_for_a_ring(worker, payload)
            self._flush()

    def _any_worker_endpoint(self) -> Endpoint | None:
        """The next worker in turn, for a frame any worker may take (a spawn placed anywhere)."""
        workers = sorted(w for w in self._children if w >= FIRST_WORKER)
        return self._hub.endpoints.get(workers[next(self._any_worker) % len(workers)]) if workers else None

    def _not_for_a_ring(self, worker: int, payload: bytes) -> None:
        """A frame for the supervisor itself, or for a worker that is gone."""
        try:
            frame = frames.decode(payload)
        except frames.FrameError as exc:
            log.warning("a malformed frame from another node was dropped: %s", exc)
            return
        if worker == SUPERVISOR:
            handler = self._hub.handlers.get(type(frame))
            if handler is not None:
                handler(frame)
        else:
            self._refuse(frame, f"worker {worker} of node {self.node_id} is gone")

    def _refuse(self, frame: frames.Frame, why: str) -> None:
        """Answer a request that came for a worker which is gone (other frames are dropped, as
        those for a lost worker are)."""
        hub = self._hub
        if isinstance(frame, frames.Spawn | frames.SpawnNative):
            hub.reply(frame.reply_to, frames.SpawnReply(frame.request, frame.reply_to, 0, why))
        elif isinstance(frame, frames.Exists):
            hub.reply(frame.reply_to, frames.ExistsReply(frame.request, frame.reply_to, False))
        elif isinstance(frame, frames.RegistryGet | frames.RegistryPut | frames.RegistryRemove):
            hub.reply(frame.reply_to, frames.RegistryReply(frame.request, frame.reply_to, False, 0, 0, why))

    def nodes_changed(self, table: dict[int, dict[str, str]]) -> None:
        with self._lock:
            self._hub.nodes = table
            self._hub.names_at = REGISTRY if self.node_id == 1 else place_of(make_pid(1, REGISTRY, 0))
            self._node_table = msgpack.packb(table)
            frame = frames.NodeTable(self._hub.names_at, self._node_table)
            for other in self._hub.endpoints:
                self._hub.send(other, frame)
            self._flush()
        self._wake()

    def node_lost(self, node: int, worker: int, cause: str) -> None:
        """Links, monitors, requests and the host program's joins into a lost node (``worker``
        0) or one lost worker of it fire, on every worker of this node and here."""
        if worker:
            place = place_of(make_pid(node, worker, 0))

            def lost(pid: int) -> bool:
                return pid >> 32 == place
        else:

            def lost(pid: int) -> bool:
                return node_of(pid) == node

        with self._lock:
            for other in self._hub.endpoints:
                self._hub.send(other, frames.NodeLost(node, worker, cause))
            self._requests.places_lost(lambda target: target > 0xFFFF and lost(target << 32))
            for pid in [p for p in (*self._monitoring, *self._spawned) if lost(p)]:
                self._ended(pid, Finished(Outcome.FAILED, message=cause))
            self._flush()
        self._wake()

    def module_binary(self, digest: bytes) -> tuple[str, bytes] | None:
        return self.cache.binary(digest)

    def store_module(self, digest: bytes, name: str, binary: bytes) -> None:
        if self.cache.binary(digest) is not None:
            return
        module = Module.load(self._compiler, binary, name)
        if module.digest != digest:
            raise LunaticError(
                f"module {name} compiled to digest {module.digest.hex()[:12]}, not {digest.hex()[:12]}"
            )
        self.cache.store(module)

    # --- what the supervisor tells the other nodes -----------------------------------------------

    def _tell_nodes_worker_lost(self, lost: int) -> None:
        """Every other node learns that a worker of this one was lost."""
        gateway = self.gateway
        if gateway is not None:
            frame = frames.encode(
                frames.NodeLost(self.node_id, lost, f"worker {lost} of node {self.node_id} lost")
            )
            for node in gateway.live_nodes():
                if node != self.node_id:
                    gateway.send(place_of(make_pid(node, SUPERVISOR, 0)), frame)

    def _on_worker_lost_elsewhere(self, frame: frames.NodeLost) -> None:
        """Another node lost one of its workers. Whole nodes are declared lost only by the
        cluster's owner (Ray), never by a frame from a peer."""
        if frame.worker:
            self.node_lost(frame.node, frame.worker, frame.cause)

    def _greet(self, worker_id: int) -> None:
        """A child that just started gets the node table (under the lock)."""
        if self._node_table:
            self._hub.send(worker_id, frames.NodeTable(self._hub.names_at, self._node_table))
