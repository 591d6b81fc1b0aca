"""Shared-memory transport between the runtime's OS processes (supervisor, registry, workers).

Why a ring in shared memory and not ``multiprocessing.Pipe``: a pipe costs system calls on both sides
for every batch (``recv_bytes`` makes two), and Python's per-frame work is already most of the
budget. A single-producer single-consumer ring costs no system call while the receiver is awake: the
producer copies frames in and moves an index, the consumer copies them out and moves the other. The
kernel is involved only to wake a receiver that has gone to sleep, through a :class:`Doorbell` (a
named FIFO, so that a worker started later, or restarted, can open it by path without inheriting a
descriptor). Waking a sleeping process costs 20-25 µs on the machines measured, so a receiver that
expects more work soon can spin briefly first (:meth:`Doorbell.sleep`'s ``spin``).

Memory ordering. Each ring has exactly one writer per index: the producer alone stores ``tail``, the
consumer alone stores ``head``; both are monotonically increasing u64 byte counters on separate cache
lines, stored and loaded with one aligned 8-byte access (a ``memoryview`` cast to ``'Q'``, whose
item access is a single ``mov`` on x86-64, so a reader never sees a torn value). We rely on x86-64's
TSO model: stores are not reordered with older stores, loads are not reordered with older loads, and
stores are not reordered with older loads. So the producer writes the payload, then stores ``tail``
(publish), and a consumer that loads ``tail`` and then the payload sees the payload; the consumer
copies the payload out, then stores ``head``, and the producer never overwrites bytes still being
read. Each of these accesses happens inside a separate opaque C call of the interpreter, so the C
compiler cannot reorder them either. On a weakly ordered CPU (ARM, POWER) this is not enough: publish
would need a release store and the reads an acquire load, which pure Python cannot emit; port this
module with real barriers (a small C extension or atomics through ctypes) before running elsewhere.

The one thing TSO does allow is a load passing an older store to a different address, and the
sleep/wake handshake depends on exactly that not happening (Dekker's pattern): the consumer stores
``sleeping = 1`` and then loads every ``tail``; the producer stores ``tail`` and then loads
``sleeping``. Without a store-load fence both could read the old values: the consumer sleeps on a
non-empty ring and the producer does not ring (an earlier pure-Python version without a fence fell
back on its safety timeout 15 times in 20 M messages). :func:`full_fence` provides the fence:
acquiring and releasing a private ``threading.Lock``, whose uncontended fast path in CPython (a glibc
``sem_t``) is a ``lock``-prefixed read-modify-write, a full barrier on x86; about 0.1 µs. It runs
only on the sleep path and once per published batch, never per frame. A safety timeout on the sleep
(:data:`SAFETY_TIMEOUT`) still bounds the damage of any wake-up lost some other way (a producer that
died between publish and ring): late, never lost.

Framing. A ring record is a u32 length and a payload; a record never straddles the end of the data
area (a wrap marker sends the consumer back to offset 0), so the consumer copies out whole published
spans with one slice and splits them with ``struct.unpack_from``. :class:`Outbox` and :class:`Inbox`
start each record with a kind byte: 0 a whole frame, 1 a first or middle chunk and 2 the last chunk
of a frame larger than :attr:`Ring.max_record` (so a frame of any size can be queued, and the queue's size is
the backpressure signal), 3 a batch: a count, the frames' lengths as an array of native u32, then the
frames. Batches are why this is fast: per frame, the producer pays one ``list.append`` and its
share of ``map(len)`` and ``b"".join``, all C loops, and the consumer splits a batch in C
(``core.split_batch``, lunatic_mp/vm/inbox.c; it was a slice per frame in a comprehension).
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import select
import stat
import struct
import threading
import time
import zlib
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterable
from itertools import accumulate
from operator import add
from pathlib import Path

from lunatic_mp.cluster.hostenv import shm_full_message
from lunatic_mp.errors import PlatformError
from lunatic_mp.vm.extension import _core

__all__ = [
    "BACKLOG_RETRY_S",
    "MAX_BACKLOG_RETRY_S",
    "SAFETY_TIMEOUT",
    "Doorbell",
    "Inbox",
    "Outbox",
    "Ring",
    "doorbell_flags",
    "full_fence",
    "remove_doorbell",
]

SAFETY_TIMEOUT = 1.0
"""Longest a sleeping consumer waits without a wake-up before it looks at its rings again (seconds).

Only a wake-up lost outside the handshake needs it (a producer that died between publish and ring:
the supervisor's news of that death rings every consumer anyway), so it is long: an idle process
wakes once a second for it, not twenty times (at 50 ms, an idle runtime's workers, registry and
pump cost 0.3% of a core each, taken from the busy workers beside them)."""

BACKLOG_RETRY_S = 0.001
"""How soon a producer whose frames did not fit in a full ring tries again, instead of sleeping:
its consumer does not ring back when it makes room (seconds)."""

MAX_BACKLOG_RETRY_S = 0.05
"""The longest a producer waits between tries while its consumer takes nothing (a stopped worker):
the retry doubles up to this, and drops back to :data:`BACKLOG_RETRY_S` once the consumer takes
again (seconds)."""

_MAGIC = 0x31474E49525F504D  # b"MP_RING1", little-endian
_LINE = 64
_HEADER = 3 * _LINE  # line 0: magic, capacity; line 1: head; line 2: tail
_HEAD = _LINE // 8  # index of head in the header cast to 'Q'
_TAIL = 2 * _LINE // 8
_WRAP = 0xFFFFFFFF
_MIN_CAPACITY = 64

_U32 = struct.Struct("<I")
_pack_u32_into = _U32.pack_into
_unpack_u32 = _U32.unpack_from
# Outbox records: u32 length, a kind byte, then the frame or chunk; or for a batch, a u32 count,
# count native u32 frame lengths and the frames.
_WHOLE, _CHUNK, _LAST, _BATCH = 0, 1, 2, 3
_pack_frame_head_into = struct.Struct("<IB").pack_into
_pack_batch_head_into = struct.Struct("<IBI").pack_into
_BATCH_HEAD = 9  # u32 length, kind, u32 count
_split_batch = _core.split_batch

_fence_lock = threading.Lock()
_fence_acquire = _fence_lock.acquire
_fence_release = _fence_lock.release


class SharedMemory:
    """A named POSIX shared-memory segment (a file in /dev/shm), mapped.

    Not ``multiprocessing.shared_memory``: in Python 3.11 that registers every segment, even one
    only attached, with multiprocessing's resource tracker, an extra process that unlinks
    segments on its own schedule and warns about "leaks" of segments the runtime owns. Here the
    creator unlinks, and nothing else.
    """

    _DIRECTORY = "/dev/shm"  # noqa: S108 - where POSIX shared memory lives on Linux

    def __init__(self, name: str, create: bool = False, size: int = 0) -> None:
        self.name = name
        path = os.path.join(self._DIRECTORY, name.lstrip("/"))
        flags = os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT | os.O_EXCL if create else 0)
        fd = os.open(path, flags, 0o600)
        try:
            if create:
                os.ftruncate(fd, size)
                _reserve(fd, size, name)
            size = os.fstat(fd).st_size
            self._mmap: mmap.mmap | None = mmap.mmap(fd, size)
        except BaseException:
            if create:
                os.unlink(path)
            raise
        finally:
            os.close(fd)
        self._path = path
        self.buf: memoryview | None = memoryview(self._mmap)
        self.size = size

    def close(self) -> None:
        if self.buf is not None:
            self.buf.release()
            self.buf = None
        if self._mmap is not None:
            self._mmap.close()
            self._mmap = None

    def unlink(self) -> None:
        os.unlink(self._path)


def _reserve(fd: int, size: int, name: str) -> None:
    """Allocate the segment's pages now: a tmpfs that is full when a page is first touched
    delivers SIGBUS, so a full ``/dev/shm`` must fail here, at creation, with a clear error."""
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise PlatformError(shm_full_message(size, f"the segment {name}")) from None
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise


def _buffer(shm: SharedMemory) -> memoryview:
    buf = shm.buf
    if buf is None:
        raise ValueError(f"shared memory segment {shm.name!r} is closed")
    return buf


def full_fence() -> None:
    """A full memory barrier (store-load included) on x86-64, from pure Python.

    Acquiring and releasing an uncontended private lock is a ``lock``-prefixed atomic instruction
    in glibc's ``sem_trywait``/``sem_post``; about 0.1 µs.
    """
    _fence_acquire()
    _fence_release()


class Ring:
    """One direction between one producer process and one consumer process: a single-producer
    single-consumer byte ring in a SharedMemory segment."""

    name: str
    capacity: int
    max_record: int

    def __init__(self, shm: SharedMemory, capacity: int) -> None:
        self._shm = shm
        self.name = shm.name
        self.capacity = capacity
        self.max_record = capacity // 4
        self._mask = capacity - 1
        self._ctl = _buffer(shm)[:_HEADER].cast("Q")
        self._data = _buffer(shm)[_HEADER : _HEADER + capacity]
        self._tail = self._ctl[_TAIL]  # producer: written, maybe not yet published
        self._head = self._ctl[_HEAD]  # producer: last head seen (a lower bound of the real one)
        self._rhead = self._head  # consumer: everything before it has been read

    @classmethod
    def create(cls, name: str, capacity: int) -> Ring:
        """Create the segment; ``capacity`` (bytes of data area) must be a power of two."""
        if capacity < _MIN_CAPACITY or capacity & (capacity - 1):
            raise ValueError(f"ring capacity must be a power of two >= {_MIN_CAPACITY}, not {capacity}")
        shm = SharedMemory(name, create=True, size=_HEADER + capacity)
        ctl = _buffer(shm)[:_HEADER].cast("Q")
        ctl[1] = capacity
        ctl[0] = _MAGIC
        ctl.release()
        return cls(shm, capacity)

    @classmethod
    def attach(cls, name: str) -> Ring:
        """Open a ring another process created."""
        shm = SharedMemory(name)
        try:
            if shm.size < _HEADER:
                raise ValueError(f"shared memory segment {name!r} is not a ring")
            ctl = _buffer(shm)[:_HEADER].cast("Q")
            magic, capacity = ctl[0], ctl[1]
            ctl.release()
            if magic != _MAGIC or capacity & (capacity - 1) or shm.size < _HEADER + capacity:
                raise ValueError(f"shared memory segment {name!r} is not a ring")
        except BaseException:
            shm.close()
            raise
        return cls(shm, capacity)

    def __repr__(self) -> str:
        return f"Ring({self.name!r}, capacity={self.capacity})"

    # producer side

    def try_write(self, record: bytes | bytearray | memoryview) -> bool:
        """Append one record, not yet visible to the consumer; False if there is no room now."""
        n = len(record)
        if n > self.max_record:
            raise ValueError(f"record of {n} bytes exceeds the ring's max_record ({self.max_record})")
        tail = self._tail
        pos = tail & self._mask
        to_end = self.capacity - pos
        skip = to_end if to_end < n + 4 else 0
        if tail + skip + n + 4 - self._head > self.capacity:
            self._head = self._ctl[_HEAD]
            if tail + skip + n + 4 - self._head > self.capacity:
                return False
        data = self._data
        if skip:
            if skip >= 4:
                _pack_u32_into(data, pos, _WRAP)
            pos = 0
        _pack_u32_into(data, pos, n)
        data[pos + 4 : pos + 4 + n] = record
        self._tail = tail + skip + n + 4
        return True

    def publish(self) -> None:
        """Make every written record visible to the consumer (one aligned store of the tail)."""
        self._ctl[_TAIL] = self._tail

    # consumer side

    def _take(self) -> tuple[bytes, ...]:
        """Copy out every published byte not read yet (one span, or two across the end) and free it."""
        tail = self._ctl[_TAIL]
        head = self._rhead
        if tail == head:
            return ()
        pos = head & self._mask
        end = pos + tail - head
        data = self._data
        if end <= self.capacity:
            spans: tuple[bytes, ...] = (bytes(data[pos:end]),)
        else:
            spans = (bytes(data[pos:]), bytes(data[: end - self.capacity]))
        self._ctl[_HEAD] = self._rhead = tail
        return spans

    def read(self) -> list[bytes]:
        """Every published record not read yet, in order; frees their space."""
        out: list[bytes] = []
        append = out.append
        for span in self._take():
            off, last = 0, len(span) - 4
            while off <= last:
                (n,) = _unpack_u32(span, off)
                if n == _WRAP:
                    break
                off += 4
                append(span[off : off + n])
                off += n
        return out

    def empty(self) -> bool:
        """True when nothing published is left to read."""
        return self._ctl[_TAIL] == self._rhead

    def close(self) -> None:
        """Detach from the segment (either side); the ring is unusable afterwards."""
        for view in (self.__dict__.pop("_ctl", None), self.__dict__.pop("_data", None)):
            if view is not None:
                view.release()
        self._shm.close()

    def __del__(self) -> None:
        if "_shm" in self.__dict__:  # release our views before the mapping closes
            self.close()

    def unlink(self) -> None:
        """Remove the segment (the creator, once both sides are done or gone)."""
        with contextlib.suppress(FileNotFoundError):
            self._shm.unlink()


class Doorbell:
    """Wakes one sleeping consumer process. A named FIFO in a runtime directory (any process can
    open it by path, including a worker started later), plus a 'sleeping' flag word in shared memory.

    The flag segment is named after the FIFO's name and its directory (see :meth:`flag_name`).
    """

    def __init__(self, path: Path, shm: SharedMemory, reader: bool) -> None:
        self.path = path
        self._shm = shm
        self._flag = _buffer(shm)[:8].cast("Q")
        self._rfd = -1  # consumer: the read end
        self._keep = -1  # consumer: a write end it holds itself, so the FIFO never reads as EOF
        self._wfd = -1  # producer: opened on the first ring that finds the consumer asleep
        self._poll: select.poll | None = None
        if reader:
            self._rfd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            self._keep = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)

    @staticmethod
    def flag_name(directory: str | Path, name: str) -> str:
        """The shared-memory name of the flag: distinct per runtime directory."""
        where = os.path.realpath(directory).encode()
        return f"{name}-bell-{zlib.crc32(where):08x}"

    @classmethod
    def create(cls, directory: str | Path, name: str) -> Doorbell:
        """Make the FIFO and the flag segment; the consumer's side."""
        path = Path(directory) / name
        os.mkfifo(path, 0o600)
        try:
            shm = SharedMemory(cls.flag_name(directory, name), create=True, size=_LINE)
        except BaseException:
            path.unlink()
            raise
        return cls(path, shm, reader=True)

    @classmethod
    def attach(cls, directory: str | Path, name: str) -> Doorbell:
        """Open a consumer's doorbell by path; the producer's side."""
        path = Path(directory) / name
        if not stat.S_ISFIFO(os.stat(path).st_mode):
            raise ValueError(f"{path} is not a FIFO")
        return cls(path, SharedMemory(cls.flag_name(directory, name)), reader=False)

    def __repr__(self) -> str:
        return f"Doorbell({str(self.path)!r})"

    # consumer side

    def fileno(self) -> int:
        """The FIFO's read end, readable once the bell has rung (consumer only)."""
        if self._rfd < 0:
            raise ValueError("only the consumer's side of a doorbell has a file descriptor")
        return self._rfd

    def prepare_sleep(self) -> None:
        """Announce the intention to sleep; re-check the rings afterwards, then wait on fileno()."""
        self._flag[0] = 1
        _fence_acquire()
        _fence_release()

    def cancel_sleep(self) -> None:
        """Announce that the consumer is awake (producers stop ringing)."""
        self._flag[0] = 0

    def drain(self) -> None:
        """Discard pending rings."""
        try:
            while len(os.read(self._rfd, 4096)) == 4096:
                pass
        except BlockingIOError:
            pass

    def sleep(self, idle: Callable[[], bool], timeout: float = SAFETY_TIMEOUT, spin: float = 0.0) -> bool:
        """The whole handshake: unless ``idle()`` turns False, sleep until rung or ``timeout``
        seconds. ``idle`` must check every inbound ring. With ``spin`` (seconds), poll ``idle()``
        that long first: a reply that comes within microseconds then costs no system call on either
        side. True if it slept and was rung."""
        if spin:
            deadline = time.perf_counter() + spin
            while idle():
                if time.perf_counter() > deadline:
                    break
            else:
                return False
        self.prepare_sleep()
        rung = False
        if idle():
            if self._poll is None:
                self._poll = select.poll()
                self._poll.register(self._rfd, select.POLLIN)
            rung = bool(self._poll.poll(timeout * 1000))
        self._flag[0] = 0
        if rung:
            self.drain()
        return rung

    # producer side

    def ring(self) -> None:
        """Wake the consumer if it sleeps; call after publishing. Never blocks, never raises
        because the consumer is gone."""
        _fence_acquire()
        _fence_release()
        if not self._flag[0]:
            return
        if self._wfd < 0:
            try:
                self._wfd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError as error:  # ENXIO: no reader, ENOENT: unlinked; the consumer is gone
                if error.errno in (errno.ENXIO, errno.ENOENT):
                    return
                raise
        try:
            os.write(self._wfd, b"\1")
        except BlockingIOError:  # the FIFO is full: a wake-up is pending anyway
            pass
        except BrokenPipeError:  # the consumer closed it; reopen (maybe a successor's) next time
            os.close(self._wfd)
            self._wfd = -1

    def close(self) -> None:
        """Close the descriptors and detach from the flag (either side)."""
        for attr in ("_rfd", "_keep", "_wfd"):
            fd = getattr(self, attr)
            if fd >= 0:
                os.close(fd)
                setattr(self, attr, -1)
        self._poll = None
        if "_flag" in self.__dict__:
            self._flag.release()
            del self._flag
        self._shm.close()

    def __del__(self) -> None:
        if "_shm" in self.__dict__:
            self.close()

    def unlink(self) -> None:
        """Remove the FIFO and the flag segment (the creator)."""
        self.path.unlink(missing_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self._shm.unlink()


def doorbell_flags(directory: str | Path) -> list[Path]:
    """The flag segments of every doorbell made in ``directory`` (to sweep after a crash)."""
    suffix = Doorbell.flag_name(directory, "")
    return list(Path(SharedMemory._DIRECTORY).glob(f"*{suffix}"))


def remove_doorbell(directory: str | Path, name: str) -> None:
    """Remove a doorbell whose consumer died without unlinking it (its FIFO and flag segment)."""
    (Path(directory) / name).unlink(missing_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(SharedMemory._DIRECTORY, Doorbell.flag_name(directory, name)))


class Outbox:
    """Frames queued for one destination ring, written when room allows. Splits frames larger
    than the ring's max_record into chunk records and reassembles them on the other side; tracks
    queued bytes so callers can apply backpressure.

    A flush packs every run of small frames that fits into one batch record, so the per-frame work
    on both sides is a few C-level operations (``b"".join``, ``array``, slicing), not a Python loop.
    Frames are queued by reference: do not mutate one after :meth:`put`.
    """

    put: Callable[[bytes], None]
    """Queue a frame of any size; never blocks, never drops. (The queue's own ``list.append``: the
    call is the whole per-frame cost on the producer's side.)"""
    put_many: Callable[[Iterable[bytes]], None]
    """Queue frames, in order (the queue's ``list.extend``)."""

    def __init__(self, ring: Ring, doorbell: Doorbell | None) -> None:
        self._ring = ring
        self.doorbell = doorbell
        self._queue: list[bytes] = []
        self.put = self._queue.append
        self.put_many = self._queue.extend
        self._lens: list[int] = []  # len() of the queued frames, computed at each flush
        self._next = 0  # index in _queue of the first frame not fully written
        self._done = 0  # bytes of that frame already written as chunks
        self._pending = 0  # bytes not yet written of the frames in _lens

    def consumed(self) -> int:
        """Bytes the consumer has taken from the ring so far: it moves while the consumer reads."""
        return int(self._ring._ctl[_HEAD])

    @property
    def pending_bytes(self) -> int:
        """Bytes of frames queued and not yet written to the ring."""
        return self._pending + sum(map(len, self._queue[len(self._lens) :]))

    def flush(self) -> bool:
        """Write as many queued frames as fit, publish them, and ring the doorbell if anything was
        published. True when the queue is empty."""
        queue, lens, i = self._queue, self._lens, self._next
        count = len(queue)
        if i == count:
            return True
        ring = self._ring
        known = len(lens)  # frames counted in _pending
        if not known:
            # The common cases: the last flush emptied the queue, and the frames queued since fit
            # as one record (a whole frame, or a batch) where the ring has room, judging by the
            # last head seen.
            tail = ring._tail
            pos = tail & ring._mask
            if count == 1:
                frame = queue[0]
                body = pos + 5
                end = body + len(frame)
            else:
                sizes = array("I", map(len, queue))
                body = pos + _BATCH_HEAD + 4 * count
                end = body + sum(sizes)
            if (
                end - pos <= ring.max_record + 4
                and end <= ring.capacity
                and tail + end - pos - ring._head <= ring.capacity
            ):
                data = ring._data
                if count == 1:
                    _pack_frame_head_into(data, pos, end - pos - 4, _WHOLE)
                    data[body:end] = frame
                else:
                    _pack_batch_head_into(data, pos, end - pos - 4, _BATCH, count)
                    data[pos + _BATCH_HEAD : body] = sizes.tobytes()
                    data[body:end] = b"".join(queue)
                ring._tail = tail = tail + end - pos
                ring._ctl[_TAIL] = tail
                if self.doorbell is not None:
                    self.doorbell.ring()
                queue.clear()
                return True
        lens += map(len, queue[len(lens) :])
        ctl, data, mask = ring._ctl, ring._data, ring._mask
        capacity, max_record = ring.capacity, ring.max_record
        tail = start = ring._tail
        head = ctl[_HEAD]
        done = self._done
        pending = self._pending + sum(lens[known:])
        while i < count:
            n = lens[i]
            chunked = done or n >= max_record
            need = min(n - done, max_record - 1) + 5 if chunked else n + 5  # the smallest useful record
            pos = tail & mask
            to_end = capacity - pos
            free = capacity - (tail - head)
            if need > to_end and to_end + need <= free:
                if to_end >= 4:
                    _pack_u32_into(data, pos, _WRAP)
                tail += to_end
                continue
            if need > to_end or need > free:
                newer = ctl[_HEAD]
                if newer == head:
                    break
                head = newer
                continue
            if chunked:
                size = need - 5
                _pack_frame_head_into(data, pos, size + 1, _LAST if done + size == n else _CHUNK)
                data[pos + 5 : pos + need] = memoryview(queue[i])[done : done + size]
                tail += need
                pending -= size
                done += size
                if done == n:
                    done = 0
                    i += 1
                continue
            # A batch: as many small frames as fit in one record (a frame of max_record or more
            # never fits, so the batch ends before it).
            budget = min(free if free < to_end else to_end, max_record + 4) - _BATCH_HEAD
            if pending + 4 * (count - i) <= budget:
                k, size = count - i, pending
            else:
                k = size = 0
                while i + k < count:
                    window = lens[i + k : i + k + 256]
                    costs = list(map(add, accumulate(window), range(4, 4 * len(window) + 4, 4)))
                    fit = bisect_right(costs, budget - size - 4 * k)
                    if fit:
                        size += costs[fit - 1] - 4 * fit
                    k += fit
                    if fit < len(window):
                        break
            if k < 2:
                _pack_frame_head_into(data, pos, n + 1, _WHOLE)
                data[pos + 5 : pos + need] = queue[i]
                tail += need
                pending -= n
                i += 1
                continue
            body = pos + _BATCH_HEAD + 4 * k
            _pack_batch_head_into(data, pos, body - pos - 4 + size, _BATCH, k)
            data[pos + _BATCH_HEAD : body] = array("I", lens[i : i + k]).tobytes()
            data[body : body + size] = b"".join(queue[i : i + k])
            tail = body + size - pos + tail
            pending -= size
            i += k
        ring._head = head
        if tail != start:
            ring._tail = tail
            ctl[_TAIL] = tail
            if self.doorbell is not None:
                self.doorbell.ring()
        if i == count:
            queue.clear()
            lens.clear()
            self._next = self._done = self._pending = 0
            return True
        if i > 1024 and 2 * i > count:
            del queue[:i], lens[:i]
            i, count = 0, count - i
        self._next, self._done, self._pending = i, done, pending
        return False


class Inbox:
    """Complete frames from one ring, in order: single frames, batches, and reassembled chunks."""

    def __init__(self, ring: Ring) -> None:
        self._ring = ring
        self._parts: list[bytes] = []  # chunks of a frame whose last chunk has not arrived yet

    def read(self) -> list[bytes]:
        """Every complete frame published and not read yet, in order."""
        out: list[bytes] = []
        append = out.append
        for span in self._ring._take():
            off, last = 0, len(span) - 4
            while off <= last:
                (n,) = _unpack_u32(span, off)
                if n == _WRAP:
                    break
                kind = span[off + 4]
                if kind == _BATCH:  # split in C: no Python per frame
                    out += _split_batch(span, off + _BATCH_HEAD, _unpack_u32(span, off + 5)[0], off + 4 + n)
                elif kind == _WHOLE:
                    append(span[off + 5 : off + 4 + n])
                else:
                    self._parts.append(span[off + 5 : off + 4 + n])
                    if kind == _LAST:
                        append(b"".join(self._parts))
                        self._parts.clear()
                off += 4 + n
        return out

    def empty(self) -> bool:
        """True when the ring holds nothing published and unread."""
        return self._ring.empty()
