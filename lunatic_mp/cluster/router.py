"""The engine's router inside a worker process: each of its calls becomes a frame.

:class:`~lunatic_mp.vm.router.Router` is how an engine speaks to processes that are not its own,
in the engine's words. This module turns those words into frames for the worker that hosts the
addressee (or the registry process, or the supervisor), and matches replies to the requests that
wait for them. Frames are sent through a :class:`Wire`, the worker's queues.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import msgpack

from lunatic_mp.cluster import frames
from lunatic_mp.cluster.requests import PendingRequests
from lunatic_mp.cluster.wire import MAX_FRAME_SIZE
from lunatic_mp.pids import REGISTRY, SUPERVISOR, is_foreign
from lunatic_mp.vm import core
from lunatic_mp.vm.finished import to_wire
from lunatic_mp.vm.params import PARAM_TYPE_BYTES
from lunatic_mp.vm.router import OnReply

if TYPE_CHECKING:
    from lunatic_mp.config import EnvConfig
    from lunatic_mp.vm.finished import Finished
    from lunatic_mp.vm.mailbox import DeathReason, Message
    from lunatic_mp.vm.module import Module


class Wire(Protocol):
    """What the router needs of its worker: queues to the others, and where modules and streams go."""

    def send(self, worker: int, frame: frames.Frame) -> None:
        """Queue a frame for a worker (or the supervisor, or the registry) by its id."""

    def send_encoded(self, worker: int, data: bytes) -> None:
        """Queue a frame already encoded (:func:`lunatic_mp.vm.core.encode_message`)."""

    names_at: int
    """Where registry names are kept: this node's registry process, or, in a cluster, node 1's."""

    def route(self, pid: int) -> int:
        """Where frames for ``pid`` go: a worker of this node, or a place on another node."""

    def place(self) -> int:
        """The worker for the next spawn that may go anywhere."""

    def is_live(self, worker: int) -> bool:
        """Whether frames sent to ``worker`` can arrive."""

    def publish_module(self, module: Module) -> bytes:
        """Make ``module`` loadable by other workers; its content digest."""

    def send_streams(self, worker: int, fds: list[int]) -> tuple[int, ...]:
        """Hand TCP streams' descriptors (closed by the call) to ``worker``; their tokens."""


_LARGEST_PLAIN = MAX_FRAME_SIZE - 64
"""Data below this makes a plain message frame within MAX_FRAME_SIZE (its other fields take at most
40 bytes); a larger one goes through frames.encode, which refuses it."""


class FrameRouter:
    """A :class:`~lunatic_mp.vm.router.Router` over a worker's queues."""

    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self.requests = PendingRequests()

    def place(self) -> int:
        return self.wire.place()

    def is_live(self, worker: int) -> bool:
        return self.wire.is_live(worker)

    def route(self, pid: int) -> int:
        return self.wire.route(pid)

    @property
    def names_at(self) -> int:
        return self.wire.names_at

    def _to(self, pid: int, frame: frames.Frame) -> None:
        self.wire.send(self.wire.route(pid), frame)

    def _ask(self, worker: int, on_reply: OnReply, make: Any) -> None:
        """Send ``make(request id)`` to ``worker``; its reply goes to ``on_reply``."""
        self.wire.send(worker, make(self.requests.new(worker, on_reply)))

    # --- one-way signals ------------------------------------------------------------------------

    def send_message(self, to: int, message: Message) -> None:
        wire = self.wire
        modules = (
            tuple(wire.publish_module(module) for module in message.modules if module is not None)
            if message.modules
            else ()
        )
        data = message.data if isinstance(message.data, bytes) else bytes(message.data)
        if not modules and not message.streams and len(data) < _LARGEST_PLAIN:  # most: encoded in C
            self.wire.send_encoded(
                self.wire.route(to), core.encode_message(to, message.pid, message.tag, data)
            )
            return
        if message.streams:
            streams = self._stream_fields(to, message)
            if streams:
                self._to(to, frames.MessageStreams(to, message.pid, message.tag, data, modules, streams))
                return
        self._to(to, frames.Message(to, message.pid, message.tag, data, modules))

    def _stream_fields(self, to: int, message: Message) -> tuple[int, ...]:
        """Send the descriptors of the message's TCP streams to ``to``'s worker: the frame's
        ``streams`` field. The message lets go of its streams (the last holder closes each); the
        host program cannot take a stream, so a message to it goes without."""
        streams = [stream for stream in message.streams or () if stream is not None]
        message.streams = None
        fields: list[int] = []
        worker = self.wire.route(to)
        if worker not in (SUPERVISOR, REGISTRY) and not is_foreign(worker):  # no stream leaves its node
            fds = [os.dup(stream.fd) for stream in streams]
            tokens = self.wire.send_streams(worker, fds)
            for token, stream in zip(tokens, streams, strict=True):
                timeouts = (stream.read_timeout, stream.write_timeout, stream.peek_timeout)
                fields.extend((token, *(-1 if t is None else t for t in timeouts)))
        for stream in streams:
            stream.release()
        return tuple(fields)

    def link(self, to: int, other: int, tag: int) -> None:
        self._to(to, frames.Link(to, other, tag))

    def unlink(self, to: int, other: int) -> None:
        self._to(to, frames.Unlink(to, other))

    def monitor(self, to: int, watcher: int) -> None:
        self._to(to, frames.Monitor(to, watcher))

    def stop_monitoring(self, to: int, watcher: int) -> None:
        self._to(to, frames.StopMonitoring(to, watcher))

    def kill(self, to: int, reason: str) -> None:
        self._to(to, frames.Kill(to, reason))

    def link_died(self, to: int, dead: int, tag: int, reason: DeathReason, cause: str) -> None:
        self._to(to, frames.LinkDied(to, dead, tag, int(reason), cause))

    def process_died(self, to: int, dead: int) -> None:
        self._to(to, frames.ProcessDied(to, dead))

    def process_finished(self, to: int, pid: int, finished: Finished) -> None:
        results = msgpack.packb(list(finished.result))  # numbers, v128 bytes, a native return value
        outcome, message, backtrace, exit_code = to_wire(finished)
        self._to(to, frames.ProcessFinished(to, pid, outcome, results, message, exit_code, backtrace))

    def mailbox_full(self, sender: int, target: int, full: bool) -> None:
        self._to(sender, frames.MailboxFull(sender, target, full))

    def env_release(self, environment: int, worker: int, memory: int) -> None:
        self.wire.send(REGISTRY, frames.EnvRelease(environment, worker, memory))

    def process_gone(self, pid: int) -> None:
        self.wire.send(self.wire.names_at, frames.ProcessGone(pid))

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
        self._ask(
            REGISTRY,
            on_reply,
            lambda r: frames.EnvAcquire(r, asker, environment, limit, worker, memory, memory_limit),
        )

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
        digest = self.wire.publish_module(module)
        kinds = bytes(PARAM_TYPE_BYTES[kind] for kind, _ in params)
        values = tuple(int(v) for _, v in params)
        encoded = frames.encode_config(config)
        self._ask(
            worker,
            on_reply,
            lambda r: frames.Spawn(r, parent, digest, function, values, kinds, encoded, *link),
        )

    def spawn_native(
        self,
        worker: int,
        parent: int,
        payload: bytes,
        config: EnvConfig,
        link: tuple[int, int],
        on_reply: OnReply,
    ) -> None:
        encoded = frames.encode_config(config)
        self._ask(worker, on_reply, lambda r: frames.SpawnNative(r, parent, payload, encoded, *link))

    def exists(self, asker: int, pid: int, on_reply: OnReply) -> None:
        self._ask(self.wire.route(pid), on_reply, lambda r: frames.Exists(r, asker, pid))

    def registry_get(self, asker: int, name: str, reserve: bool, on_reply: OnReply) -> None:
        # a lookup is answered by this node's registry (a replica, in a cluster); a reservation
        # only by the cluster's authority for names
        where = self.wire.names_at if reserve else REGISTRY
        self._ask(where, on_reply, lambda r: frames.RegistryGet(r, asker, name, reserve))

    def registry_put(self, asker: int, name: str, node: int, pid: int, on_reply: OnReply) -> None:
        self._ask(self.wire.names_at, on_reply, lambda r: frames.RegistryPut(r, asker, name, node, pid))

    def registry_remove(self, asker: int, name: str, on_reply: OnReply) -> None:
        self._ask(self.wire.names_at, on_reply, lambda r: frames.RegistryRemove(r, asker, name))


__all__ = ["FrameRouter", "Wire"]
