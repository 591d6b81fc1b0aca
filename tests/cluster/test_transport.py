"""The shared-memory transport: rings, doorbells, and the Outbox/Inbox framing on top of them."""

from __future__ import annotations

import json
import multiprocessing
import multiprocessing.resource_tracker
import os
import random
import select
import subprocess
import sys
import time
import uuid
import zlib
from collections.abc import Iterator
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from multiprocessing.synchronize import Event
from pathlib import Path

import pytest

from lunatic_mp.cluster.transport import Doorbell, Inbox, Outbox, Ring, full_fence

CTX = multiprocessing.get_context("spawn")
TIMEOUT = 60  # generous: only a broken transport gets anywhere near it


def unique(prefix: str = "lmp-test") -> str:
    return f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module", autouse=True)
def resource_tracker() -> None:
    """Start multiprocessing's resource tracker (a child process that unlinks segments leaked by
    crashed processes) before the per-test check for leaked children takes its census."""
    multiprocessing.resource_tracker.ensure_running()


@pytest.fixture
def ring() -> Iterator[Ring]:
    ring = Ring.create(unique(), 256)
    yield ring
    ring.close()
    ring.unlink()


@pytest.fixture
def pair() -> Iterator[tuple[Ring, Ring]]:
    """A ring's producer end and a consumer end attached separately, as two processes would."""
    producer = Ring.create(unique(), 1024)
    consumer = Ring.attach(producer.name)
    yield producer, consumer
    consumer.close()
    producer.close()
    producer.unlink()


def drain(outbox: Outbox, inbox: Inbox) -> list[bytes]:
    """Flush and read until the outbox is empty (one process plays both sides)."""
    received = inbox.read()
    while not outbox.flush():
        received += inbox.read()
    return received + inbox.read()


def test_ring_wraps_with_records_of_many_sizes(ring: Ring) -> None:
    rnd = random.Random(1)
    consumer = Ring.attach(ring.name)
    sent: list[bytes] = []
    received: list[bytes] = []
    for i in range(5000):
        record = rnd.randbytes(i % (ring.max_record + 1))
        while not ring.try_write(record):
            ring.publish()
            received += consumer.read()
        sent.append(record)
        if rnd.random() < 0.3:
            ring.publish()
        if rnd.random() < 0.2:
            received += consumer.read()
    ring.publish()
    received += consumer.read()
    assert consumer.empty()
    assert received == sent
    assert ring._tail > 100 * ring.capacity  # it wrapped many times, at every offset
    consumer.close()


def test_full_ring_refuses_until_read(pair: tuple[Ring, Ring]) -> None:
    producer, consumer = pair
    written = 0
    while producer.try_write(bytes([written]) * 100):
        written += 1
    assert written == producer.capacity // 104
    assert consumer.empty() and consumer.read() == []  # written but not published
    producer.publish()
    assert not consumer.empty()
    assert not producer.try_write(b"x" * 100)  # still full: publishing frees nothing
    records = consumer.read()
    assert records == [bytes([i]) * 100 for i in range(written)]
    assert consumer.empty()
    assert producer.try_write(b"x" * 100)


def test_oversized_record_is_rejected(ring: Ring) -> None:
    assert ring.max_record == ring.capacity // 4
    assert ring.try_write(b"x" * ring.max_record)
    with pytest.raises(ValueError, match="max_record"):
        ring.try_write(b"x" * (ring.max_record + 1))


def test_ring_capacity_and_attach_are_checked() -> None:
    with pytest.raises(ValueError, match="power of two"):
        Ring.create(unique(), 1000)
    other = SharedMemory(unique(), create=True, size=4096)
    try:
        with pytest.raises(ValueError, match="not a ring"):
            Ring.attach(other.name)
    finally:
        other.close()
        other.unlink()


def test_chunked_frames_pass_intact_and_in_order(pair: tuple[Ring, Ring]) -> None:
    producer, consumer = pair
    outbox, inbox = Outbox(producer, None), Inbox(consumer)
    rnd = random.Random(2)
    sent = []
    for i in range(40):
        sent.append(rnd.randbytes(10 * producer.capacity + i))
        sent.extend(rnd.randbytes(rnd.randrange(0, 40)) for _ in range(rnd.randrange(0, 30)))
    sent.append(b"y" * producer.max_record)  # the smallest frame that needs chunks
    sent.append(b"z" * (producer.max_record - 1))  # the largest that does not
    for frame in sent:
        outbox.put(frame)
    assert outbox.pending_bytes == sum(map(len, sent))
    assert not outbox.flush()  # far more than fits
    assert 0 < outbox.pending_bytes < sum(map(len, sent))
    assert drain(outbox, inbox) == sent
    assert outbox.pending_bytes == 0


def test_outbox_batches_and_backpressure(pair: tuple[Ring, Ring]) -> None:
    producer, consumer = pair
    outbox, inbox = Outbox(producer, None), Inbox(consumer)
    frames = [i.to_bytes(2, "little") * 3 for i in range(1000)]
    for frame in frames:
        outbox.put(frame)
    assert not outbox.flush()  # 6,000+ bytes into a 1 KiB ring: the rest waits
    before = outbox.pending_bytes
    assert outbox.flush() is False and outbox.pending_bytes == before  # no room until read
    first = inbox.read()
    assert first == frames[: len(first)] and 1 < len(first) < len(frames)
    assert outbox.pending_bytes == before
    assert first + drain(outbox, inbox) == frames
    assert outbox.flush() and inbox.read() == []


def _producer(ring_name: str, directory: str, bell: str, count: int, seed: int, done: Connection) -> None:
    """Send ``count`` frames of random sizes, numbered, and report their checksum."""
    ring = Ring.attach(ring_name)
    doorbell = Doorbell.attach(directory, bell)
    outbox = Outbox(ring, doorbell)
    rnd = random.Random(seed)
    checksum = 0
    for i in range(count):
        size = rnd.randrange(4 * ring.capacity) if i % 5000 == 0 else rnd.randrange(200)
        frame = i.to_bytes(4, "little") + rnd.randbytes(size)
        checksum = zlib.crc32(frame, checksum)
        outbox.put(frame)
        if i % 64 == 63:
            outbox.flush()
    while not outbox.flush():
        pass
    done.send(checksum)
    done.close()
    doorbell.close()
    ring.close()


def test_frames_from_another_process_arrive_in_order(tmp_path: Path) -> None:
    count = 200_000
    ring = Ring.create(unique(), 1 << 16)
    doorbell = Doorbell.create(tmp_path, "consumer")
    inbox = Inbox(ring)
    ours, theirs = CTX.Pipe(duplex=False)
    child = CTX.Process(target=_producer, args=(ring.name, str(tmp_path), "consumer", count, 3, theirs))
    child.start()
    theirs.close()
    try:
        received = 0
        checksum = 0
        wakeups = 0
        while received < count:
            frames = inbox.read()
            if not frames:
                wakeups += doorbell.sleep(inbox.empty, timeout=TIMEOUT)
                assert child.is_alive() or not inbox.empty(), "the producer died"
                continue
            for frame in frames:
                assert int.from_bytes(frame[:4], "little") == received
                checksum = zlib.crc32(frame, checksum)
                received += 1
        assert ours.poll(TIMEOUT)
        assert ours.recv() == checksum
        assert inbox.read() == []
    finally:
        child.join(TIMEOUT)
        if child.is_alive():
            child.kill()
            child.join()
        ours.close()
        doorbell.close()
        doorbell.unlink()
        ring.close()
        ring.unlink()
    assert child.exitcode == 0


def _sleeper(ring_name: str, directory: str, asleep: Event, woke: Event) -> None:
    """Create a doorbell, announce sleep, block in select (far longer than the test waits)."""
    doorbell = Doorbell.create(directory, "sleeper")
    ring = Ring.attach(ring_name)
    doorbell.prepare_sleep()
    if ring.empty():
        asleep.set()
        readable, _, _ = select.select([doorbell.fileno()], [], [], 10 * TIMEOUT)
        doorbell.cancel_sleep()
        doorbell.drain()
        if readable and ring.read() == [b"wake up"]:
            woke.set()
    ring.close()
    doorbell.close()
    doorbell.unlink()


def test_doorbell_wakes_a_consumer_blocked_in_select(tmp_path: Path) -> None:
    ring = Ring.create(unique(), 256)
    asleep, woke = CTX.Event(), CTX.Event()
    child = CTX.Process(target=_sleeper, args=(ring.name, str(tmp_path), asleep, woke))
    child.start()
    try:
        assert asleep.wait(TIMEOUT)
        doorbell = Doorbell.attach(tmp_path, "sleeper")
        assert ring.try_write(b"wake up")
        ring.publish()
        doorbell.ring()
        assert woke.wait(TIMEOUT)
        doorbell.close()
    finally:
        child.join(TIMEOUT)
        if child.is_alive():
            child.kill()
            child.join()
        ring.close()
        ring.unlink()
    assert child.exitcode == 0


def _echo(there: str, back: str, directory: str, late: Connection) -> None:
    """Send every frame back until b"stop"; report how many sleeps ran into the safety timeout."""
    doorbell = Doorbell.create(directory, "echo")
    inbox, outbox = Inbox(Ring.attach(there)), Outbox(Ring.attach(back), Doorbell.attach(directory, "ping"))
    outbox.put(b"ready")
    outbox.flush()
    timeouts = 0
    while True:
        frames = inbox.read()
        if not frames:
            start = time.monotonic()
            doorbell.sleep(inbox.empty, timeout=TIMEOUT)
            timeouts += time.monotonic() - start > TIMEOUT / 2
            continue
        if frames[-1] == b"stop":
            break
        for frame in frames:
            outbox.put(frame)
        outbox.flush()
    late.send(timeouts)
    doorbell.close()
    doorbell.unlink()


def test_no_wake_up_is_lost_in_a_ping_pong(tmp_path: Path) -> None:
    """Both sides sleep on their doorbells between frames: every wake-up must come from a ring,
    none from the (here very long) safety timeout."""
    there, back = Ring.create(unique(), 4096), Ring.create(unique(), 4096)
    doorbell = Doorbell.create(tmp_path, "ping")
    inbox = Inbox(back)
    ours, theirs = CTX.Pipe(duplex=False)
    child = CTX.Process(target=_echo, args=(there.name, back.name, str(tmp_path), theirs))
    child.start()
    theirs.close()

    def receive() -> list[bytes]:
        while not (frames := inbox.read()):
            start = time.monotonic()
            doorbell.sleep(inbox.empty, timeout=TIMEOUT)
            assert time.monotonic() - start < TIMEOUT / 2, "a wake-up was lost"
        return frames

    try:
        assert receive() == [b"ready"]
        outbox = Outbox(there, Doorbell.attach(tmp_path, "echo"))
        for i in range(3000):
            outbox.put(i.to_bytes(4, "little"))
            outbox.flush()
            assert receive() == [i.to_bytes(4, "little")]
        outbox.put(b"stop")
        outbox.flush()
        assert ours.poll(TIMEOUT) and ours.recv() == 0
    finally:
        child.join(TIMEOUT)
        if child.is_alive():
            child.kill()
            child.join()
        ours.close()
        doorbell.close()
        doorbell.unlink()
        for ring in (there, back):
            ring.close()
            ring.unlink()
    assert child.exitcode == 0


def test_sleep_returns_at_once_when_work_arrives(tmp_path: Path) -> None:
    bell = Doorbell.create(tmp_path, "bell")
    try:
        arrivals = iter([True, True, False])  # idle twice while spinning, then work arrives
        assert bell.sleep(lambda: next(arrivals), timeout=TIMEOUT, spin=TIMEOUT) is False
        assert bell.sleep(lambda: True, timeout=0) is False  # slept, nobody rang: timed out
    finally:
        bell.close()
        bell.unlink()


def test_doorbell_rings_only_a_sleeper(tmp_path: Path) -> None:
    consumer = Doorbell.create(tmp_path, "bell")
    producer = Doorbell.attach(tmp_path, "bell")
    try:
        producer.ring()
        assert select.select([consumer.fileno()], [], [], 0)[0] == []
        consumer.prepare_sleep()
        producer.ring()
        producer.ring()
        assert select.select([consumer.fileno()], [], [], 0)[0] == [consumer.fileno()]
        consumer.cancel_sleep()
        consumer.drain()
        assert select.select([consumer.fileno()], [], [], 0)[0] == []
        assert consumer.sleep(lambda: False) is False  # work arrived after the flag was set: no wait
        with pytest.raises(ValueError):
            producer.fileno()
    finally:
        producer.close()
        consumer.close()
        consumer.unlink()


def test_ring_without_a_reader_does_not_raise(tmp_path: Path) -> None:
    consumer = Doorbell.create(tmp_path, "gone")
    producer = Doorbell.attach(tmp_path, "gone")
    late = Doorbell.attach(tmp_path, "gone")
    consumer.prepare_sleep()
    producer.ring()  # opens its write end while the consumer is there
    consumer.close()  # the consumer dies asleep: the flag stays set
    producer.ring()  # EPIPE on the open write end
    late.ring()  # ENXIO: no reader to open against
    consumer.unlink()
    producer.ring()  # ENOENT: the FIFO is gone
    producer.close()
    late.close()


def test_close_and_unlink_leave_nothing_behind(tmp_path: Path) -> None:
    ring = Ring.create(unique(), 4096)
    other = Ring.attach(ring.name)
    bell = Doorbell.create(tmp_path, "bell")
    ringer = Doorbell.attach(tmp_path, "bell")
    segments = [Path("/dev/shm", ring.name), Path("/dev/shm", Doorbell.flag_name(tmp_path, "bell"))]
    assert all(path.exists() for path in segments)
    other.close()
    ring.close()
    ring.unlink()
    ringer.close()
    bell.close()
    bell.unlink()
    assert not any(path.exists() for path in segments)
    assert not (tmp_path / "bell").exists()
    ring.unlink()  # a second unlink is harmless
    bell.unlink()


def test_full_fence() -> None:
    full_fence()
    full_fence()


def test_benchmark_quick_run_reports_every_figure(tmp_path: Path) -> None:
    """`benchmarks/transport.py --quick` runs and writes every figure (how fast is not checked)."""
    out = tmp_path / "figures.json"
    script = Path(__file__).parents[2] / "benchmarks" / "transport.py"
    subprocess.run(
        [sys.executable, str(script), "--quick", "--json", str(out)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    figures = json.loads(out.read_text())
    assert all(value > 0 for value in figures["throughput_frames_per_s"].values())
    assert set(figures["round_trip"]) == {"ring_spinning", "ring_doorbell", "ring_doorbell_spin_50us", "pipe"}
    assert figures["fence"]["full_fence_ns"] > 0
