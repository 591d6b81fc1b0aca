"""A node's door to the other nodes of a cluster: one authenticated TCP link per pair of nodes.

Inside a node, frames travel over shared-memory rings (:mod:`lunatic_mp.cluster.transport`). A
frame for a process on another node (its pid names the node: :mod:`lunatic_mp.pids`) goes to the
node's supervisor (a worker batches a step's frames for a node into one
:class:`~lunatic_mp.cluster.frames.Forward` frame, already as link records), and the supervisor's
:class:`Gateway` writes them to the link to that node, whose gateway splits them (in C) and writes
each into the ring of the worker it is for. Frames between two processes keep their order: ring,
TCP stream and ring are each in order, and one link carries everything between two nodes.

Who is in the cluster is not decided here: the owner (the Ray node agent of
:mod:`lunatic_mp.cluster.nodes`, or a test) calls :meth:`Gateway.set_nodes` with the table of
live nodes and :meth:`Gateway.node_lost` when one is declared lost. A node declared lost stays
lost: its link is closed, what it sends afterwards is never read, and it cannot connect again.
A link that breaks while both ends run counts as the other node lost, here (fail-stop: frames may
have been lost in the break, and a clear failure is better than a silent gap).

The links are plain TCP, authenticated both ways: each side proves it holds the cluster's secret
(HMAC-SHA256 over both sides' fresh nonces and node ids), so a stranger on the network can neither
join nor impersonate a node. The traffic is not encrypted: run a cluster on a network you trust,
or under a VPN (docs/cluster.md). A link carries records ``[u32 length][u8 type][body]``: a frame
for a place (``u64 place`` then the encoded frame) or a module (its SHA-256 digest, its name, its
Wasm binary; sent before the first frame that refers to it). A module's binary is checked against
its digest and compiled by the receiving node; compiled code never crosses the network.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from lunatic_mp.cluster.wire import MAX_FRAME_SIZE, RECORD_HEADER, RECORD_MODULE, frame_record
from lunatic_mp.errors import ClusterError, LunaticError
from lunatic_mp.pids import ANY_WORKER, PLACE_BITS, WORKER_MASK, node_of_place

log = logging.getLogger(__name__)

MAGIC = b"LMPN\x00\x00\x00\x01"
"""What a link opens with: the protocol and its version."""
NONCE_SIZE = 32
MAX_HANDSHAKES = 32
"""Connections a gateway authenticates at once; more are closed at once (a flood of strangers)."""
HANDSHAKE_TIMEOUT_S = 10.0
MAX_MODULE_SIZE = 256 * 1024 * 1024
"""The largest module binary a node accepts from another."""
MAX_QUEUED_BYTES = 64 * 1024 * 1024
"""Bytes queued for one link past which the pump waits for it to drain (backpressure: the rings
to the supervisor fill, and the workers' sending processes pause)."""

READ_SIZE = 1 << 18
_NAME_LEN = struct.Struct("<H")
_NODE = struct.Struct("<I")


class GatewayHost(Protocol):
    """What the gateway needs of its node's supervisor."""

    def deliver_forwarded(self, arrived: dict[int, list[bytes]]) -> None:
        """Put frames that came from another node, by the worker they are for (each worker's in
        order), into the workers' rings (or handle those for the supervisor itself;
        ``ANY_WORKER``: choose one for each). Called on a link's reader thread."""

    def nodes_changed(self, table: dict[int, dict[str, str]]) -> None:
        """The live nodes are now ``table`` (node id -> tags): tell the workers."""

    def node_lost(self, node: int, worker: int, cause: str) -> None:
        """A node (``worker`` 0) or one worker of it is gone: links, monitors, requests, joins fire."""

    def module_binary(self, digest: bytes) -> tuple[str, bytes] | None:
        """A module this node has, by digest: its name and binary."""

    def store_module(self, digest: bytes, name: str, binary: bytes) -> None:
        """Compile a module that came from another node into this node's cache (reader thread)."""


@dataclass(eq=False)
class Peer:
    """Another node: its address and tags, its link (once connected), what is queued for it."""

    node: int
    address: tuple[str, int]
    tags: dict[str, str]
    sock: socket.socket | None = None
    outgoing: bytearray = field(default_factory=bytearray)
    sending: bool = False  # a thread is writing to the socket: the others leave it alone
    modules_sent: set[bytes] = field(default_factory=set)
    changed: threading.Condition = field(default_factory=threading.Condition)
    closed: bool = False


class Gateway:
    """The links of one node to the others (see the module docstring)."""

    def __init__(
        self,
        node_id: int,
        secret: bytes,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tags: dict[str, str] | None = None,
    ) -> None:
        if not 1 <= node_id < 1 << (64 - 32 - PLACE_BITS):
            raise ClusterError(f"node id {node_id} is out of range (1 to {(1 << 16) - 1})")
        if len(secret) < 16:
            raise ClusterError("a cluster secret must be at least 16 bytes")
        self.node_id = node_id
        self.tags = dict(tags or {})
        self._secret = secret
        self._host: GatewayHost | None = None
        self._peers: dict[int, Peer] = {}
        self._lost: set[int] = set()
        self._handshakes = threading.BoundedSemaphore(MAX_HANDSHAKES)
        self._dirty: set[Peer] = set()  # peers with frames queued since the last flush (the pump's)
        self._lock = threading.Lock()  # peers, lost and inbound, between the pump and the link threads
        self._listener = socket.create_server((host, port))
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        self._closed = False
        self.pump_thread: int | None = None  # the supervisor's pump: see send_records
        self._threads: list[threading.Thread] = []
        self._start(self._accept_loop, "lunatic-mp-gateway-accept")

    def attach(self, host: GatewayHost) -> None:
        self._host = host

    def _start(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    # --- membership (the owner's calls) ----------------------------------------------------------

    def set_nodes(self, table: dict[int, tuple[tuple[str, int], dict[str, str]]]) -> None:
        """The cluster's live nodes: id -> (gateway address, tags), this node included. New ones
        are connected (the lower id dials); nodes that left the table are lost."""
        with self._lock:
            for node, (address, tags) in table.items():
                if node == self.node_id or node in self._lost:
                    continue
                peer = self._peers.get(node)
                if peer is None:
                    peer = self._peers[node] = Peer(node, (address[0], int(address[1])), dict(tags))
                    if self.node_id < node:
                        self._start(self._dial, f"lunatic-mp-gateway-dial-{node}", peer)
                else:
                    peer.tags = dict(tags)
            gone = [node for node in self._peers if node not in table]
        for node in gone:
            self.node_lost(node, "left the cluster")
        self._notify_table()

    def live_nodes(self) -> dict[int, dict[str, str]]:
        """Node id -> tags of every live node, this one included."""
        with self._lock:
            table = {node: dict(peer.tags) for node, peer in self._peers.items()}
        table[self.node_id] = dict(self.tags)
        return table

    def node_lost(self, node: int, cause: str) -> None:
        """``node`` is gone for good (the owner decides: Ray says so): close its link, drop what
        was queued for it, and let every link and monitor into it fire."""
        with self._lock:
            if node in self._lost or node == self.node_id:
                return
            self._lost.add(node)
            peer = self._peers.pop(node, None)
        if peer is not None:
            self._close_peer(peer)
        log.warning("node %d of the cluster lost: %s", node, cause)
        self._notify_table()  # first: whoever hears of a death there finds the node gone
        if self._host is not None:
            self._host.node_lost(node, 0, f"node {node} lost: {cause}")

    def _notify_table(self) -> None:
        if self._host is not None:
            self._host.nodes_changed(self.live_nodes())

    # --- frames out (the pump thread) ----------------------------------------------------------

    def send(self, place: int, payload: bytes, modules: tuple[bytes, ...] = ()) -> None:
        """Queue a frame for ``place`` on another node (see :meth:`send_records`)."""
        self.send_records(node_of_place(place), frame_record(place, payload), modules)

    def send_records(self, node: int, records: bytes, modules: tuple[bytes, ...] = ()) -> None:
        """Queue frame records (:func:`frame_record`) for ``node``, and first any module they
        refer to that the node has not been sent. Frames for a lost or unknown node are
        dropped, as those for a lost worker are."""
        peer = self._peers.get(node)
        if peer is None:
            return
        ahead = bytearray()
        for digest in modules:
            if digest not in peer.modules_sent:
                found = self._host.module_binary(digest) if self._host is not None else None
                if found is None:
                    log.warning(
                        "module %s is not in this node's cache; not sent to node %d", digest.hex()[:12], node
                    )
                    continue
                name = found[0].encode()[:0xFFFF]
                body = digest + _NAME_LEN.pack(len(name)) + name + found[1]
                ahead += RECORD_HEADER.pack(len(body) + 1, RECORD_MODULE) + body
                peer.modules_sent.add(digest)
        with peer.changed:
            # Backpressure: a caller waits for the writer to drain a full link. Not the pump,
            # which holds the runtime's lock: it queues past the bound, and waits for room before
            # it reads its rings again (wait_for_room), without the lock.
            while (
                len(peer.outgoing) > MAX_QUEUED_BYTES
                and not peer.closed
                and not self._closed
                and threading.get_ident() != self.pump_thread
            ):
                peer.changed.notify_all()
                peer.changed.wait(1.0)
            if peer.closed:
                return
            if ahead:
                peer.outgoing += ahead
            peer.outgoing += records
        self._dirty.add(peer)

    def wait_for_room(self, timeout: float) -> bool:
        """Wait, up to ``timeout`` seconds, while a link holds more than its bound; True once
        every link has room. The pump calls this before it reads its rings, without the
        runtime's lock, and reads them only then: the rings fill and the senders pause, while
        the host program's calls go on."""
        deadline = time.monotonic() + timeout
        for peer in list(self._peers.values()):
            if len(peer.outgoing) <= MAX_QUEUED_BYTES:
                continue  # the common case, without the lock: a stale length costs one more read
            with peer.changed:
                while len(peer.outgoing) > MAX_QUEUED_BYTES and not peer.closed and not self._closed:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    peer.changed.notify_all()
                    peer.changed.wait(left)
        return True

    def flush(self) -> None:
        """Write what was queued since the last flush: straight into each link's socket when its
        writer thread is idle and the socket takes it all (no thread hand-off: the common case),
        else through the writer thread, which blocks on a full socket instead of the pump."""
        dirty, self._dirty = self._dirty, set()
        for peer in dirty:
            sock = peer.sock
            with peer.changed:
                if peer.sending or not peer.outgoing or sock is None:
                    peer.changed.notify_all()
                    continue
                data, peer.outgoing, peer.sending = peer.outgoing, bytearray(), True
            try:
                sent = sock.send(data, socket.MSG_DONTWAIT)
            except BlockingIOError:
                sent = 0
            except OSError:
                sent = 0  # the reader or writer thread finds the link broken
            with peer.changed:
                if sent < len(data):
                    peer.outgoing[0:0] = data[sent:]
                peer.sending = False
                peer.changed.notify_all()

    # --- links ---------------------------------------------------------------------------------

    def _dial(self, peer: Peer) -> None:
        """Link to a node with a higher id, trying again (backing off up to a second) until it
        answers, is lost, or the gateway closes; frames for it wait meanwhile."""
        delay = 0.01
        while not peer.closed and not self._closed:
            try:
                sock = socket.create_connection(peer.address, timeout=HANDSHAKE_TIMEOUT_S)
                try:
                    other = self._handshake(sock, dialing=True)
                except BaseException:
                    sock.close()
                    raise
                if other != peer.node:
                    sock.close()
                    raise ClusterError(f"{peer.address} answered as node {other}, not node {peer.node}")
            except (OSError, ClusterError) as exc:
                log.info("cannot link to node %d at %s:%d yet: %s", peer.node, *peer.address, exc)
                with peer.changed:
                    peer.changed.wait(delay)
                delay = min(delay * 2, 1.0)
                continue
            self._run_link(peer.node, sock)
            return

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            if not self._handshakes.acquire(blocking=False):
                sock.close()  # a flood of connections: each would hold a thread for the timeout
                continue
            self._start(self._accepted, "lunatic-mp-gateway-link", sock)

    def _accepted(self, sock: socket.socket) -> None:
        try:
            sock.settimeout(HANDSHAKE_TIMEOUT_S)
            node = self._handshake(sock, dialing=False)
        except (OSError, ClusterError) as exc:
            log.warning("a connection to node %d's gateway was refused: %s", self.node_id, exc)
            sock.close()
            return
        finally:
            self._handshakes.release()
        self._run_link(node, sock)

    def _handshake(self, sock: socket.socket, *, dialing: bool) -> int:
        """Both sides prove they hold the secret; the other side's node id."""
        mine = os.urandom(NONCE_SIZE)
        me = _NODE.pack(self.node_id)
        sock.sendall(MAGIC + me + mine)
        hello = _recv_exactly(sock, len(MAGIC) + _NODE.size + NONCE_SIZE)
        if hello[: len(MAGIC)] != MAGIC:
            raise ClusterError("not a lunatic_mp gateway (or another version)")
        other_id = hello[len(MAGIC) : len(MAGIC) + _NODE.size]
        theirs = hello[len(MAGIC) + _NODE.size :]
        (other,) = _NODE.unpack(other_id)
        if other == self.node_id or not 1 <= other <= WORKER_MASK:
            raise ClusterError(f"bad node id {other}")
        # each side signs its own role with both nonces: a reflected proof does not verify
        role_mine, role_theirs = (b"dial", b"accept") if dialing else (b"accept", b"dial")
        sock.sendall(self._prove(role_mine + mine + theirs + me + other_id))
        expected = self._prove(role_theirs + theirs + mine + other_id + me)
        if not hmac.compare_digest(_recv_exactly(sock, len(expected)), expected):
            raise ClusterError(f"node {other} does not hold the cluster's secret")
        return int(other)

    def _prove(self, text: bytes) -> bytes:
        return hmac.new(self._secret, text, hashlib.sha256).digest()

    def _run_link(self, node: int, sock: socket.socket) -> None:
        with self._lock:
            peer = self._peers.get(node)
            if peer is None and node not in self._lost and not self._closed:
                # it proved it holds the secret, and dialed first: its address and tags come
                # with the next table
                address = sock.getpeername()[:2]
                peer = self._peers[node] = Peer(node, (str(address[0]), int(address[1])), {})
            if peer is None or peer.sock is not None or peer.closed or self._closed:
                sock.close()  # lost, or linked already
                return
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            peer.sock = sock
        self._start(self._write_loop, f"lunatic-mp-gateway-write-{node}", peer, sock)
        self._read_loop(peer, sock)

    def _write_loop(self, peer: Peer, sock: socket.socket) -> None:
        """Write what the pump's direct writes left (a full socket), and all of it while the
        link is being made."""
        while True:
            with peer.changed:
                while (not peer.outgoing or peer.sending) and not peer.closed:
                    peer.changed.wait()
                if peer.closed:
                    return
                data, peer.outgoing, peer.sending = peer.outgoing, bytearray(), True
                peer.changed.notify_all()
            try:
                sock.sendall(data)
            except OSError as exc:
                self._link_broke(peer, f"sending failed: {exc}")
                return
            finally:
                with peer.changed:
                    peer.sending = False
                    peer.changed.notify_all()

    def _read_loop(self, peer: Peer, sock: socket.socket) -> None:
        """Read records as they come, and hand each read's frames to the supervisor at once
        (one hand-off per read, not per frame; the records are split and grouped by worker in C)."""
        from lunatic_mp.vm import core  # here: the registry process imports this module, not wasmtime

        buffer = bytearray(READ_SIZE)  # read into, and kept: a fresh chunk per read faults its pages in
        filled = 0
        split, node = core.split_link_records, self.node_id
        try:
            while not peer.closed:
                if filled == len(buffer):  # a record longer than the buffer: room for more of it
                    buffer.extend(bytes(len(buffer)))
                with memoryview(buffer) as view:
                    got = sock.recv_into(view[filled:])
                if not got:
                    raise ClusterError("the link closed")
                filled += got
                start = 0
                with memoryview(buffer)[:filled] as data:
                    while True:  # the frames up to a module (then it) or a frame for this supervisor
                        arrived, end, module_next = split(data, start, node, MAX_FRAME_SIZE)
                        self._deliver(peer, arrived)
                        if module_next:
                            end = self._module_record(peer, data, end)  # the same: not all here yet
                        if end == start:
                            break  # nothing complete left
                        start = end
                if start:
                    buffer[: filled - start] = buffer[start:filled]  # what is left of a record
                    filled -= start
                if filled == 0 and len(buffer) > 4 * READ_SIZE:
                    del buffer[READ_SIZE:]  # a big record has gone: give its room back
        except (OSError, ClusterError, ValueError) as exc:
            self._link_broke(peer, str(exc))

    def _module_record(self, peer: Peer, buffer: memoryview, start: int) -> int:
        """Take the module record at ``start``, once complete; the offset after it."""
        length: int = RECORD_HEADER.unpack_from(buffer, start)[0]
        if not 1 <= length <= MAX_MODULE_SIZE + 65536:
            raise ClusterError(f"a module record of {length} bytes is out of bounds")
        end = start + 4 + length
        if end > len(buffer):
            return start
        self._received_module(peer, bytes(buffer[start + RECORD_HEADER.size : end]))
        return end

    def _deliver(self, peer: Peer, arrived: dict[int, list[bytes]]) -> None:
        if arrived and self._host is not None and not peer.closed:  # a lost node's frames never count
            self._host.deliver_forwarded(arrived)

    def _received_module(self, peer: Peer, body: bytes) -> None:
        digest = body[:32]
        if len(body) < 32 + _NAME_LEN.size:
            raise ClusterError("a short module record")
        (name_len,) = _NAME_LEN.unpack_from(body, 32)
        start = 32 + _NAME_LEN.size
        name = body[start : start + name_len].decode(errors="replace")
        binary = body[start + name_len :]
        if hashlib.sha256(binary).digest() != digest:
            raise ClusterError(f"node {peer.node} sent a module whose bytes do not match its digest")
        if self._host is not None:
            try:
                self._host.store_module(digest, name, binary)
            except LunaticError as exc:  # a spawn of it fails here with "not in the cache"
                log.warning("module %s from node %d does not compile: %s", name, peer.node, exc)

    def _link_broke(self, peer: Peer, why: str) -> None:
        """A link failed while both nodes run: frames may have been lost in it, so this node
        treats the other as lost (links and monitors into it fire), never as silently short of
        some frames. Fail-stop: it stays lost here, whatever Ray says of it."""
        if peer.closed or self._closed:
            return
        sock = peer.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
        self.node_lost(peer.node, f"its link broke ({why})")

    def _close_peer(self, peer: Peer) -> None:
        with peer.changed:
            peer.closed = True
            peer.outgoing.clear()
            peer.changed.notify_all()
        sock = peer.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            peers = list(self._peers.values())
        for peer in peers:
            self._close_peer(peer)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(2.0)


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ClusterError("the connection closed during the handshake")
        data += chunk
    return bytes(data)


__all__ = ["ANY_WORKER", "Gateway", "GatewayHost"]
