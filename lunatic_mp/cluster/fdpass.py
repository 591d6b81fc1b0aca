"""TCP streams that travel with messages between workers: file descriptors over unix sockets.

A message with streams attached (``push_tcp_stream``) is a :class:`~lunatic_mp.cluster.frames.
MessageStreams` frame on the rings, like any message; the streams' descriptors cannot ride in the
ring, so they go beside it, as ``SCM_RIGHTS`` on a datagram to the receiving worker's descriptor
socket (``fds-<worker>.sock`` in the run directory). The datagram carries a token per descriptor,
and the frame names the tokens.

Order: the datagram is sent (a system call that completes at once) before the frame is even
queued, so it is normally waiting when the frame arrives, and the receiver reads its socket when
a frame needs a token it has not seen. When the receiver's socket queue is full, the sender keeps
the datagram and sends it once the socket is writable; a frame that arrives first is parked until
its descriptors come.

No descriptor leaks: the sender closes its copies once the datagram is sent (a receiver that has
died takes them with it: the kernel closes descriptors in flight to a closed socket); a receiver
closes the descriptors of a message it cannot deliver (the stream object closes when dropped),
and those from a worker that was lost before its frame came.
"""

from __future__ import annotations

import array
import contextlib
import logging
import os
import socket
import struct
from collections import deque
from collections.abc import Callable
from pathlib import Path

from lunatic_mp.cluster.frames import MessageStreams
from lunatic_mp.vm.mailbox import Message
from lunatic_mp.vm.reactor import READ, WRITE, Reactor, Waiter

log = logging.getLogger(__name__)

MAX_FDS = 250
"""Descriptors per datagram (Linux takes at most 253 in one SCM_RIGHTS message)."""

TOKEN_SHIFT = 40
"""A token is (sending worker << TOKEN_SHIFT) | sequence number."""

_TOKEN = struct.Struct("<q")


def socket_path(run_dir: Path, worker: int) -> Path:
    return run_dir / f"fds-{worker}.sock"


class FdPass:
    """One worker's descriptor socket: it sends streams' descriptors to the other workers and
    receives theirs."""

    def __init__(self, run_dir: Path, worker_id: int, reactor: Reactor) -> None:
        self.run_dir = run_dir
        self.worker_id = worker_id
        self.reactor = reactor
        self.path = socket_path(run_dir, worker_id)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a previous worker with this id died without cleaning up
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.setblocking(False)
        self.received: dict[int, int] = {}  # token -> descriptor, not yet claimed by a frame
        self.parked: list[tuple[tuple[int, ...], Callable[[list[int] | None], None]]] = []
        """Frames waiting for their descriptors; the socket is watched while there are any."""
        self._next = 1
        self._peers: dict[int, socket.socket] = {}
        self._backlog: dict[int, deque[tuple[bytes, list[int]]]] = {}
        self._waiters: dict[int, Waiter] = {}

    # --- sending --------------------------------------------------------------------------------

    def send(self, worker: int, fds: list[int]) -> tuple[int, ...]:
        """Hand ``fds`` (owned by this call: they are closed here) to ``worker``; their tokens."""
        first = self._next
        self._next += len(fds)
        tokens = [(self.worker_id << TOKEN_SHIFT) | n for n in range(first, first + len(fds))]
        for start in range(0, len(fds), MAX_FDS):
            chunk = fds[start : start + MAX_FDS]
            payload = b"".join(_TOKEN.pack(t) for t in tokens[start : start + MAX_FDS])
            self._send_datagram(worker, payload, chunk)
        return tuple(tokens)

    def _peer(self, worker: int) -> socket.socket | None:
        peer = self._peers.get(worker)
        if peer is None:
            peer = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            peer.setblocking(False)
            try:
                peer.connect(str(socket_path(self.run_dir, worker)))
            except OSError as exc:
                log.warning("cannot reach worker %d's descriptor socket: %s", worker, exc)
                peer.close()
                return None
            self._peers[worker] = peer
        return peer

    def _send_datagram(self, worker: int, payload: bytes, fds: list[int]) -> None:
        backlog = self._backlog.get(worker)
        if backlog:  # keep the order: behind what is already waiting
            backlog.append((payload, fds))
            return
        if not self._try_send(worker, payload, fds):
            self._backlog.setdefault(worker, deque()).append((payload, fds))
            self._wait_writable(worker)

    def _try_send(self, worker: int, payload: bytes, fds: list[int]) -> bool:
        """Send one datagram; False when the receiver's queue is full (try again later)."""
        peer = self._peer(worker)
        if peer is not None:
            try:
                peer.sendmsg([payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
            except (BlockingIOError, InterruptedError):
                return False
            except OSError as exc:  # the worker is gone: its messages are dropped anyway
                log.warning("descriptors for worker %d dropped: %s", worker, exc)
                self._drop_peer(worker)
        for fd in fds:
            os.close(fd)
        return True

    def _wait_writable(self, worker: int) -> None:
        peer = self._peers.get(worker)
        if peer is not None and worker not in self._waiters:
            self._waiters[worker] = self.reactor.wait(peer.fileno(), WRITE, lambda: self._drain(worker))

    def _drain(self, worker: int) -> None:
        self._waiters.pop(worker, None)
        backlog = self._backlog.get(worker)
        while backlog:
            payload, fds = backlog[0]
            if not self._try_send(worker, payload, fds):
                self._wait_writable(worker)
                return
            backlog.popleft()
        self._backlog.pop(worker, None)

    def _drop_peer(self, worker: int) -> None:
        waiter = self._waiters.pop(worker, None)
        if waiter is not None:
            self.reactor.cancel(waiter)
        peer = self._peers.pop(worker, None)
        if peer is not None:
            self.reactor.forget(peer.fileno())
            peer.close()

    # --- receiving ------------------------------------------------------------------------------

    def claim(self, tokens: tuple[int, ...], deliver: Callable[[list[int] | None], None]) -> None:
        """Call ``deliver(descriptors)`` once every token's descriptor is here (now, or when it
        comes); ``deliver(None)`` if it never will (its worker was lost)."""
        self._receive()
        if all(token in self.received for token in tokens):
            deliver([self.received.pop(token) for token in tokens])
            return
        if not self.parked:
            self.reactor.watch(self.sock.fileno(), READ, self._on_readable)
        self.parked.append((tokens, deliver))

    def _on_readable(self, _events: int) -> None:
        self._receive()
        still: list[tuple[tuple[int, ...], Callable[[list[int] | None], None]]] = []
        for tokens, deliver in self.parked:
            if all(token in self.received for token in tokens):
                deliver([self.received.pop(token) for token in tokens])
            else:
                still.append((tokens, deliver))
        self.parked = still
        if not still:
            self.reactor.unwatch(self.sock.fileno())

    def _receive(self) -> None:
        """Read every datagram waiting on the socket."""
        fd_size = array.array("i").itemsize
        space = socket.CMSG_SPACE(MAX_FDS * fd_size)
        while True:
            try:
                payload, ancillary, flags, _ = self.sock.recvmsg(MAX_FDS * _TOKEN.size, space)
            except (BlockingIOError, InterruptedError):
                return
            fds = array.array("i")
            for level, kind, data in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(data[: len(data) - len(data) % fd_size])
            tokens = [t for (t,) in _TOKEN.iter_unpack(payload[: len(payload) - len(payload) % 8])]
            if flags & (socket.MSG_CTRUNC | socket.MSG_TRUNC) or len(tokens) != len(fds):
                log.error("malformed descriptor datagram (%d tokens, %d fds) dropped", len(tokens), len(fds))
                for fd in fds:
                    os.close(fd)
                continue
            self.received.update(zip(tokens, fds, strict=True))

    def forget_worker(self, worker: int) -> None:
        """``worker`` was lost: close what it sent that no frame will claim, and stop sending."""
        self._drop_peer(worker)
        for _, fds in self._backlog.pop(worker, deque()):
            for fd in fds:
                os.close(fd)
        self._receive()
        for token in [t for t in self.received if t >> TOKEN_SHIFT == worker]:
            os.close(self.received.pop(token))
        lost = [entry for entry in self.parked if any(t >> TOKEN_SHIFT == worker for t in entry[0])]
        for entry in lost:
            self.parked.remove(entry)
            for token in entry[0]:
                if token in self.received:
                    os.close(self.received.pop(token))
            entry[1](None)
        if lost and not self.parked:
            self.reactor.unwatch(self.sock.fileno())

    def close(self) -> None:
        for worker in list(self._peers):
            self._drop_peer(worker)
        for backlog in self._backlog.values():
            for _, fds in backlog:
                for fd in fds:
                    os.close(fd)
        self._backlog.clear()
        for fd in self.received.values():
            os.close(fd)
        self.received.clear()
        self.reactor.unwatch(self.sock.fileno())
        self.sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def attach_streams(
    fdpass: FdPass, frame: MessageStreams, message: Message, deliver: Callable[[], object]
) -> None:
    """Give ``message`` the streams ``frame`` names, then ``deliver()`` it (once their
    descriptors are here); a malformed list or a lost sender drops the message."""
    from lunatic_mp.vm.sockets import adopt_stream

    fields = frame.streams
    if len(fields) % 4:
        log.error("message for %d dropped: streams field of %d ints, not 4 a stream", frame.to, len(fields))
        return

    def claimed(fds: list[int] | None) -> None:
        if fds is None:
            log.warning("message for %d dropped: the worker that sent its streams was lost", frame.to)
            return
        message.streams = [
            adopt_stream(fd, fdpass.reactor, (fields[i + 1], fields[i + 2], fields[i + 3]))
            for fd, i in zip(fds, range(0, len(fields), 4), strict=True)
        ]
        deliver()

    fdpass.claim(fields[0::4], claimed)
