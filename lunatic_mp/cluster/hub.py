"""What every OS process of a runtime shares: its queues to the others, and the loop's plumbing.

The supervisor, the registry process and each worker are all a :class:`Hub`: they hold an
:class:`Endpoint` (an outgoing and an incoming ring) per other process, encode frames into the
outboxes, decode what the inboxes hold, and sleep on their own doorbell when idle.
"""

from __future__ import annotations

import logging
import multiprocessing
import select
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

from lunatic_mp.cluster import frames
from lunatic_mp.cluster.frames import FrameError
from lunatic_mp.cluster.transport import (
    BACKLOG_RETRY_S,
    MAX_BACKLOG_RETRY_S,
    SAFETY_TIMEOUT,
    Doorbell,
    Inbox,
    Outbox,
    Ring,
)
from lunatic_mp.cluster.wire import frame_record
from lunatic_mp.pids import REGISTRY, SUPERVISOR, destination, is_foreign, node_of_place

log = logging.getLogger(__name__)

LOG_DROPPED_FIRST = 10
LOG_DROPPED_EVERY = 10_000
"""Invalid frames past the first LOG_DROPPED_FIRST are logged one in this many (all are counted)."""


def modules_of(frame: frames.Frame) -> tuple[bytes, ...]:
    """The digests of the modules a frame refers to (which a node must have to handle it)."""
    if isinstance(frame, frames.Spawn | frames.Jobs):
        return (frame.module,)
    if isinstance(frame, frames.Message | frames.MessageStreams):
        return frame.modules
    return ()


def ring_name(run_id: str, source: int, destination: int) -> str:
    return f"lmp-{run_id}-{source}-{destination}"


def bell_name(worker: int) -> str:
    return f"bell-{worker}"


@dataclass
class Endpoint:
    """The queues between this process and one other process of the runtime."""

    worker: int
    outbox: Outbox
    inbox: Inbox
    rings: tuple[Ring, Ring]
    doorbell: Doorbell | None
    parked: set[int] = field(default_factory=set)  # pids paused until the outbox drains
    queued: int = 0  # bytes queued in the outbox, as of the last flush plus what came since

    def close(self) -> None:
        for ring in self.rings:
            ring.close()
        if self.doorbell is not None:
            self.doorbell.close()


class Hub:
    """Endpoints to the other processes of a runtime, by worker id."""

    def __init__(
        self, worker_id: int, run_id: str, run_dir: Path, *, node_id: int = 0, create_doorbell: bool = True
    ) -> None:
        self.worker_id = worker_id
        self.node_id = node_id
        # In a cluster (lunatic_mp.cluster.gateway): the live nodes and their tags, where names are
        # registered (the registry process of node 1), and, in the supervisor, the gateway that
        # takes frames for other nodes. Elsewhere they go to the supervisor in a Forward frame.
        self.nodes: dict[int, dict[str, str]] = {}
        self.names_at = REGISTRY
        self.gateway: Callable[[int, bytes, tuple[bytes, ...]], None] | None = None
        self.gateway_flush: Callable[[], None] | None = None
        self.run_id = run_id
        self.run_dir = run_dir
        self.endpoints: dict[int, Endpoint] = {}
        self.doorbell = Doorbell.create(run_dir, bell_name(worker_id)) if create_doorbell else None
        self.malformed_frames = 0
        self.handlers: dict[type, Callable[[Any], None]] = {}
        # Delivers plain Message frames, from a list's index on, up to the first other frame; its
        # index (a worker: lunatic_mp/vm/inbox.c). The other frames are decoded and handled here.
        self.deliver_messages: Callable[[list[bytes], int], int] | None = None
        parent = multiprocessing.parent_process()
        self._parent: int | None = parent.sentinel if parent is not None and worker_id != SUPERVISOR else None
        self._orphaned = False
        self._parent_checked = 0.0
        self._retry_s = BACKLOG_RETRY_S  # sleep_timeout's, while frames wait for room
        self._consumed_seen = -1

    def connect(self, other: int) -> Endpoint:
        """Attach to the rings the supervisor made between this process and ``other``."""
        outgoing = Ring.attach(ring_name(self.run_id, self.worker_id, other))
        incoming = Ring.attach(ring_name(self.run_id, other, self.worker_id))
        endpoint = Endpoint(other, Outbox(outgoing, None), Inbox(incoming), (outgoing, incoming), None)
        self.endpoints[other] = endpoint
        self.attach_doorbell(endpoint)
        return endpoint

    def attach_doorbell(self, endpoint: Endpoint) -> None:
        """Ring ``endpoint``'s process when frames go its way (once it has made its doorbell;
        until then it finds them when it starts)."""
        if endpoint.doorbell is None:
            try:
                endpoint.doorbell = Doorbell.attach(self.run_dir, bell_name(endpoint.worker))
            except (FileNotFoundError, ValueError):
                return
            endpoint.outbox.doorbell = endpoint.doorbell

    def worker_started(self, worker: int) -> None:
        """A process of the runtime (re)started: connect to it, or start ringing its doorbell."""
        if worker == self.worker_id:
            return
        endpoint = self.endpoints.get(worker)
        if endpoint is None:
            self.connect(worker)
        else:
            self.attach_doorbell(endpoint)

    def disconnect(self, other: int) -> Endpoint | None:
        endpoint = self.endpoints.pop(other, None)
        if endpoint is not None:
            endpoint.close()
        return endpoint

    def send(self, worker: int, frame: frames.Frame) -> None:
        """Queue a frame for ``worker``: an id of this node's processes, or a place on another
        node (:func:`lunatic_mp.pids.destination`)."""
        if is_foreign(worker):
            self.forward(worker, frames.encode(frame), modules_of(frame))
            return
        endpoint = self.endpoints.get(worker)
        if endpoint is not None:  # none: a lost worker, whose processes are all dead
            data = frames.encode(frame)
            endpoint.outbox.put(data)
            endpoint.queued += len(data)

    def forward(self, place: int, data: bytes, modules: tuple[bytes, ...] = ()) -> None:
        """Send an encoded frame to a place on another node: through the gateway, which is the
        supervisor's, or in a Forward frame to it."""
        if self.gateway is not None:
            self.gateway(place, data, modules)
        else:
            self.send(SUPERVISOR, frames.Forward(place, frame_record(place, data), modules))

    def node_table(self, frame: frames.NodeTable) -> None:
        """The cluster's live nodes changed (a NodeTable frame from the gateway)."""
        table = msgpack.unpackb(frame.payload, strict_map_key=False)
        self.nodes = {int(node): {str(k): str(v) for k, v in tags.items()} for node, tags in table.items()}
        self.names_at = frame.names_at

    def route(self, pid: int) -> int:
        """Where frames for ``pid`` go from here (:func:`lunatic_mp.pids.destination`)."""
        return destination(pid, self.node_id)

    def is_live(self, worker: int) -> bool:
        """Whether frames to ``worker`` can arrive (the supervisor, registry, a live worker, or a
        place on a live node)."""
        return node_of_place(worker) in self.nodes if is_foreign(worker) else worker in self.endpoints

    def reply(self, to: int, frame: frames.Frame) -> None:
        """Send to whichever process hosts pid ``to``."""
        self.send(self.route(to), frame)

    def receive(self) -> int:
        """Read every inbound ring and handle each frame; how many frames there were."""
        count = 0
        handlers = self.handlers
        for endpoint in list(self.endpoints.values()):
            if self.endpoints.get(endpoint.worker) is not endpoint:
                continue  # disconnected by a frame read just before (its worker was lost)
            received = endpoint.inbox.read()
            index, end = 0, len(received)
            fast = self.deliver_messages
            while index < end:
                if fast is not None:
                    handled = fast(received, index)
                    count += handled - index
                    if handled == end:
                        break
                    index = handled
                data = received[index]
                index += 1
                count += 1
                try:
                    frame = frames.decode(data)
                    handler = handlers[type(frame)]
                except FrameError as exc:
                    self._dropped("malformed frame from %d dropped: %s", endpoint.worker, exc)
                    continue
                except KeyError:
                    self._dropped(
                        "unexpected %s frame from %d dropped", type(frame).__name__, endpoint.worker
                    )
                    continue
                handler(frame)
                if self.endpoints.get(endpoint.worker) is not endpoint:
                    break  # that frame disconnected this very endpoint
        return count

    def _dropped(self, text: str, *args: object) -> None:
        """Count a frame dropped as invalid; log the first few, then one in LOG_DROPPED_EVERY
        (a peer sending a flood of them must not turn into a flood of log lines)."""
        self.malformed_frames += 1
        count = self.malformed_frames
        if count <= LOG_DROPPED_FIRST or count % LOG_DROPPED_EVERY == 0:
            log.warning(text + " (%d dropped so far)", *args, count)

    def flush(self) -> bool:
        """Write queued frames; True when every outbox is empty."""
        empty = True
        for endpoint in self.endpoints.values():
            if endpoint.queued:
                flushed = endpoint.outbox.flush()
                endpoint.queued = 0 if flushed else endpoint.outbox.pending_bytes
                empty = empty and flushed
        if self.gateway_flush is not None:
            self.gateway_flush()
        return empty

    def idle(self) -> bool:
        return all(endpoint.inbox.empty() for endpoint in self.endpoints.values())

    def sleep_timeout(self) -> float:
        """How long a sleep on the doorbell may last: :data:`SAFETY_TIMEOUT`; or, while frames
        wait for room in a full ring, :data:`BACKLOG_RETRY_S`, doubled after each try past which
        no consumer took anything (a stopped worker), up to :data:`MAX_BACKLOG_RETRY_S`."""
        backlog = [endpoint for endpoint in self.endpoints.values() if endpoint.queued]
        if not backlog:
            self._retry_s, self._consumed_seen = BACKLOG_RETRY_S, -1
            return SAFETY_TIMEOUT
        consumed = sum(endpoint.outbox.consumed() for endpoint in backlog)
        if consumed == self._consumed_seen:
            self._retry_s = min(2 * self._retry_s, MAX_BACKLOG_RETRY_S)
        else:
            self._retry_s = BACKLOG_RETRY_S
        self._consumed_seen = consumed
        return self._retry_s

    def sleep(self, timeout: float) -> None:
        """Sleep until a frame arrives (or ``timeout``), unless one already has.

        Also wakes when the supervisor dies (its sentinel pipe closes): :meth:`orphaned`.
        """
        doorbell = self.doorbell
        assert doorbell is not None
        doorbell.prepare_sleep()
        if self.idle():
            watched = [doorbell.fileno()] if self._parent is None else [doorbell.fileno(), self._parent]
            ready, _, _ = select.select(watched, [], [], timeout)
            self._orphaned = self._orphaned or (self._parent is not None and self._parent in ready)
        doorbell.cancel_sleep()
        doorbell.drain()

    def orphaned(self) -> bool:
        """Whether the supervisor is gone (checked at most every second while busy)."""
        if self._parent is not None and not self._orphaned:
            now = time.monotonic()
            if now - self._parent_checked > 1.0:
                self._parent_checked = now
                self._orphaned = bool(select.select([self._parent], [], [], 0)[0])
        return self._orphaned

    def close(self) -> None:
        for endpoint in self.endpoints.values():
            endpoint.outbox.flush()
            endpoint.close()
        self.endpoints.clear()
        if self.doorbell is not None:
            self.doorbell.close()
            self.doorbell.unlink()
            self.doorbell = None
