"""The transport alone: the shared-memory ring against multiprocessing.Pipe, between two processes.

    lunatic-mp bench transport [--quick]

Throughput: one producer process sends 64-byte frames to one consumer process, which ends up with a
list of ``bytes`` per batch (what the worker loop gets): the ring through Outbox/Inbox (flushed every
64 frames; the consumer sleeps on its doorbell when the ring is empty), a Pipe carrying batches of 64
frames in the same framing (lengths, then the frames), and a Pipe carrying one frame per send.
Latency: round trips of one 64-byte frame between two processes, with the receiver spinning on its
ring, sleeping on its doorbell (at once, or after spinning 50 µs), or blocked in a Pipe. Also the
cost of full_fence(). Each figure is the best of three runs (other load on the machine only ever
makes a run slower). The stream and ping-pong scenarios use the Pipe functions as their baseline.

``python benchmarks/transport.py [--quick] [--repeat N] [--json FILE]`` still works and writes the
figures in this module's older nested layout, because tests/cluster/test_transport.py runs it so.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import tempfile
import time
import timeit
import uuid
from array import array
from collections.abc import Callable
from itertools import accumulate, pairwise
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path

from lunatic_mp.bench.runner import Context
from lunatic_mp.cluster.transport import Doorbell, Inbox, Outbox, Ring, full_fence

TITLE = "the shared-memory rings against multiprocessing.Pipe, two processes, no Wasm"

CTX = multiprocessing.get_context("spawn")
FRAME = bytes(range(64))
BATCH = 64
CAPACITY = 1 << 20
SPIN = 50e-6  # seconds a receiver spins before it sleeps, where a figure says so


def _name() -> str:
    return f"lmp-bench-{os.getpid()}-{uuid.uuid4().hex[:8]}"


# throughput


def _ring_producer(ring_name: str, directory: str, count: int, ready: Event, go: Event) -> None:
    ring = Ring.attach(ring_name)
    doorbell = Doorbell.attach(directory, "consumer")
    outbox = Outbox(ring, doorbell)
    put, flush, frame = outbox.put, outbox.flush, FRAME
    ready.set()
    go.wait()
    for i in range(count):
        put(frame)
        if i % BATCH == BATCH - 1 and not flush():
            while outbox.pending_bytes > CAPACITY:  # backpressure: let the consumer catch up
                flush()
    while not flush():
        pass
    doorbell.close()
    ring.close()


def ring_throughput(count: int, spin: float = 0.0) -> float:
    """Frames per second through a ring with Outbox batching; the consumer sleeps on its doorbell
    when the ring is empty (after spinning ``spin`` seconds)."""
    with tempfile.TemporaryDirectory() as directory:
        ring = Ring.create(_name(), CAPACITY)
        doorbell = Doorbell.create(directory, "consumer")
        inbox = Inbox(ring)
        ready, go = CTX.Event(), CTX.Event()
        child = CTX.Process(target=_ring_producer, args=(ring.name, directory, count, ready, go))
        child.start()
        ready.wait()
        start = time.perf_counter()
        go.set()
        received = 0
        read, empty, sleep = inbox.read, inbox.empty, doorbell.sleep
        while received < count:
            frames = read()
            if frames:
                received += len(frames)
            else:
                sleep(empty, spin=spin)
        elapsed = time.perf_counter() - start
        child.join()
        doorbell.close()
        doorbell.unlink()
        ring.close()
        ring.unlink()
    return count / elapsed


def _pack_batch(frames: list[bytes]) -> bytes:
    return array("I", map(len, frames)).tobytes() + b"".join(frames)


def _unpack_batch(batch: bytes, count: int) -> list[bytes]:
    ends = accumulate(memoryview(batch)[: 4 * count].cast("I"), initial=4 * count)
    return [batch[a:b] for a, b in pairwise(ends)]


def _pipe_producer(
    conn: Connection, count: int, batched: bool, ready: Event, go: Event, frame: bytes = FRAME
) -> None:
    ready.set()
    go.wait()
    send = conn.send_bytes
    if batched:  # frames are queued one by one, as a worker would, then sent 64 at a time
        batch: list[bytes] = []
        put = batch.append
        for i in range(count):
            put(frame)
            if i % BATCH == BATCH - 1:
                send(_pack_batch(batch))
                batch.clear()
    else:
        for _ in range(count):
            send(frame)
    conn.close()


def pipe_throughput(count: int, batched: bool, frame: bytes = FRAME) -> float:
    """Frames per second through a Pipe, in batches of 64 frames or one frame per send."""
    count -= count % BATCH
    ours, theirs = CTX.Pipe(duplex=False)
    ready, go = CTX.Event(), CTX.Event()
    child = CTX.Process(target=_pipe_producer, args=(theirs, count, batched, ready, go, frame))
    child.start()
    theirs.close()
    ready.wait()
    start = time.perf_counter()
    go.set()
    received = 0
    recv = ours.recv_bytes
    if batched:
        while received < count:
            received += len(_unpack_batch(recv(), BATCH))
    else:
        while received < count:
            recv()
            received += 1
    elapsed = time.perf_counter() - start
    child.join()
    ours.close()
    return count / elapsed


# latency


def _ring_echo(there: str, back: str, directory: str, spin: float | None) -> None:
    inbox = Inbox(Ring.attach(there))
    outbox = Outbox(Ring.attach(back), None if spin is None else Doorbell.attach(directory, "pinger"))
    doorbell = None if spin is None else Doorbell.create(directory, "echo")
    outbox.put(b"ready")
    outbox.flush()
    while True:
        frames = inbox.read()
        if not frames:
            if doorbell is not None:
                doorbell.sleep(inbox.empty, spin=spin or 0.0)
            continue
        if frames[-1] == b"stop":
            break
        for frame in frames:
            outbox.put(frame)
        outbox.flush()
    if doorbell is not None:
        doorbell.close()
        doorbell.unlink()


def ring_round_trip(count: int, spin: float | None) -> list[float]:
    """Microseconds per round trip of one frame. Receivers spin on their ring (``spin`` None) or
    sleep on their doorbell, after spinning ``spin`` seconds."""
    with tempfile.TemporaryDirectory() as directory:
        there, back = Ring.create(_name(), 1 << 16), Ring.create(_name(), 1 << 16)
        doorbell = None if spin is None else Doorbell.create(directory, "pinger")
        inbox = Inbox(back)
        child = CTX.Process(target=_ring_echo, args=(there.name, back.name, directory, spin))
        child.start()

        def receive() -> list[bytes]:
            while True:
                frames = inbox.read()
                if frames:
                    return frames
                if doorbell is not None:
                    doorbell.sleep(inbox.empty, spin=spin or 0.0)

        assert receive() == [b"ready"]
        outbox = Outbox(there, None if spin is None else Doorbell.attach(directory, "echo"))
        samples = []
        clock = time.perf_counter
        for _ in range(count):
            start = clock()
            outbox.put(FRAME)
            outbox.flush()
            receive()
            samples.append((clock() - start) * 1e6)
        outbox.put(b"stop")
        outbox.flush()
        child.join()
        if doorbell is not None:
            doorbell.close()
            doorbell.unlink()
        for ring in (there, back):
            ring.close()
            ring.unlink()
    return samples


def _pipe_echo(conn: Connection) -> None:
    while (frame := conn.recv_bytes()) != b"stop":
        conn.send_bytes(frame)
    conn.close()


def pipe_round_trip(count: int) -> list[float]:
    """Microseconds per round trip of one frame through a duplex Pipe."""
    ours, theirs = CTX.Pipe()
    child = CTX.Process(target=_pipe_echo, args=(theirs,))
    child.start()
    theirs.close()
    samples = []
    clock = time.perf_counter
    for _ in range(count):
        start = clock()
        ours.send_bytes(FRAME)
        ours.recv_bytes()
        samples.append((clock() - start) * 1e6)
    ours.send_bytes(b"stop")
    child.join()
    ours.close()
    return samples


# fences


def per_call_ns(function: Callable[[], None], number: int) -> float:
    return min(timeit.repeat(function, number=number, repeat=5)) / number * 1e9


def fence_costs(number: int) -> dict[str, float]:
    """Nanoseconds per full_fence(), per empty call (the floor), and per ring() of an awake consumer."""
    with tempfile.TemporaryDirectory() as directory:
        consumer = Doorbell.create(directory, "bell")
        producer = Doorbell.attach(directory, "bell")

        def nothing() -> None:
            pass

        figures = {
            "full_fence_ns": per_call_ns(full_fence, number),
            "empty_call_ns": per_call_ns(nothing, number),
            "ring_awake_consumer_ns": per_call_ns(producer.ring, number),
        }
        producer.close()
        consumer.close()
        consumer.unlink()
    return {key: round(value, 1) for key, value in figures.items()}


def best(runs: int, measure: Callable[[], float]) -> float:
    return max(measure() for _ in range(runs))


def best_samples(runs: int, measure: Callable[[], list[float]]) -> list[float]:
    """The sorted samples of the run with the lowest median."""
    return min((sorted(measure()) for _ in range(runs)), key=statistics.median)


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50 and p99 of sorted samples (p99: the sample 99% of the way up, as every scenario takes it)."""
    return {
        "p50_us": round(statistics.median(samples), 2),
        "p99_us": round(samples[int(len(samples) * 0.99)], 2),
    }


def measure(
    quick: bool, runs: int, step: Callable[[str], None] = lambda _: None
) -> tuple[dict[str, float], dict[str, list[float]], dict[str, float]]:
    """Throughputs (frames/s), round-trip samples (µs, sorted) and per-call costs (ns)."""
    scale = 20 if quick else 1
    frames, trips = 2_000_000 // scale, 20_000 // scale
    step("ring and pipe throughput")
    throughput = {
        "ring_outbox_batched": best(runs, lambda: ring_throughput(frames)),
        "ring_outbox_batched_spin_50us": best(runs, lambda: ring_throughput(frames, SPIN)),
        "pipe_batched": best(runs, lambda: pipe_throughput(frames, batched=True)),
        "pipe_one_per_send": best(runs, lambda: pipe_throughput(frames // 4, batched=False)),
    }
    step("ring and pipe round trips")
    latency = {
        "ring_spinning": best_samples(runs, lambda: ring_round_trip(trips, spin=None)),
        "ring_doorbell": best_samples(runs, lambda: ring_round_trip(trips, spin=0.0)),
        "ring_doorbell_spin_50us": best_samples(runs, lambda: ring_round_trip(trips, spin=SPIN)),
        "pipe": best_samples(runs, lambda: pipe_round_trip(trips)),
    }
    step("fences")
    fences = fence_costs(100_000 if quick else 1_000_000)
    return throughput, latency, fences


def run(ctx: Context) -> None:
    throughput, latency, fences = measure(ctx.quick, ctx.pick(3, 1), ctx.step)
    for key, value in throughput.items():
        ctx.record(f"{key}_frames_per_s", round(value))
    ctx.record("ring_vs_pipe_batched_x", throughput["ring_outbox_batched"] / throughput["pipe_batched"])
    for key, samples in latency.items():
        for name, value in percentiles(samples).items():
            ctx.record(f"{key}_round_trip_{name}", value)
        ctx.distribution("round trips", key.replace("_", " "), samples)
    for key, value in fences.items():
        ctx.record(key, value)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small counts: checks that it runs")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure, the best one counts")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    options = parser.parse_args()
    throughput, samples, fences = measure(options.quick, 1 if options.quick else options.repeat)
    latency = {key: percentiles(values) for key, values in samples.items()}
    results = {
        "throughput_frames_per_s": {key: round(value) for key, value in throughput.items()},
        "round_trip": latency,
        "fence": fences,
        "cpus": len(os.sched_getaffinity(0)),
    }
    print(f"{'throughput, 64-byte frames':32} {'M frames/s':>10}")
    for key, value in throughput.items():
        print(f"  {key:30} {value / 1e6:10.2f}")
    print(f"{'round trip, 64-byte frame':32} {'p50 us':>10} {'p99 us':>10}")
    for key, figures in latency.items():
        print(f"  {key:30} {figures['p50_us']:10.2f} {figures['p99_us']:10.2f}")
    print(f"{'cost per call':32} {'ns':>10}")
    for key, value in fences.items():
        print(f"  {key:30} {value:10.1f}")
    if options.json:
        options.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
