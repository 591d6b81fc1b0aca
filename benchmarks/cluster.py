"""cluster: three simulated Ray nodes on this machine (lunatic_mp.cluster.simulated), spanned by a
``Runtime(cluster=...)`` as node 1.

Measured between the agents of nodes 2 and 3: a round trip (the pingpong guests, timing each
round trip themselves), a 64-byte stream, and how long a lost node takes to reach the host
program as ProcessDied: a frozen node (SIGSTOP: only Ray's health checks can tell; the simulated
cluster tunes them to about 1.5 s) and a killed one (kill -9: its links break). Beside them, on the
same cluster: a Ray actor call's round trip to another node, and a round trip over plain TCP
between two processes on loopback. Skipped, with a note, where Ray is not installed. All nodes
share this machine's cores: a real cluster gives each its own.
"""

from __future__ import annotations

import signal
import socket
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any

from benchmarks import baselines
from benchmarks.pingpong import round_trips
from lunatic_mp import EnvConfig
from lunatic_mp.api.runtime import Runtime
from lunatic_mp.bench.runner import Context, at_least, at_most
from lunatic_mp.vm.mailbox import Kind
from lunatic_mp.vm.module import Module

TITLE = "messages, round trips and node loss across three simulated Ray nodes"
PERMISSIVE = EnvConfig.permissive()
MESSAGE = bytes(64)
STREAMS = 3
"""Streams measured; the figure is their median (the nodes' processes and Ray's share two cores,
and a single stream of a fraction of a second swings with their scheduling: 0.4-1.5 M/s)."""


def stream(runtime: Runtime, module: Module, count: int, first: int, second: int) -> float:
    """64-byte messages per second from node ``first`` to node ``second``."""
    consumer = runtime.spawn(module, "consume", (count, 64), PERMISSIVE, node=second)
    start = time.perf_counter()
    producer = runtime.spawn(module, "produce", (consumer, count, 64), PERMISSIVE, node=first)
    finished = runtime.join(consumer, timeout=600)
    assert finished is not None and finished.result == (count,), finished
    elapsed = time.perf_counter() - start
    done = runtime.join(producer, timeout=60)
    assert done is not None and done.ok, done
    return count / elapsed


def loss_s(runtime: Runtime, module: Module, node: int, how: signal.Signals, handle: Any) -> float:
    """Seconds from signalling every process of ``node`` to the host program's ProcessDied."""
    assert runtime.cluster is not None
    parked = runtime.spawn(module, "pong", (), PERMISSIVE, node=node)
    runtime.monitor(parked)
    start = time.perf_counter()
    handle.worker(runtime.cluster.ray_nodes[node]).signal(how)
    died = runtime.receive(timeout=60)
    assert died is not None and died.kind is Kind.PROCESS_DIED, died
    return time.perf_counter() - start


def ray_actor_round_trips(node_id: str, count: int) -> list[float]:
    """Sorted round trips in µs of a Ray actor call to an actor on Ray node ``node_id``."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    class Echo:
        def echo(self, data: bytes) -> bytes:
            return data

    strategy = NodeAffinitySchedulingStrategy(node_id, soft=False)
    actor = ray.remote(num_cpus=0)(Echo).options(scheduling_strategy=strategy).remote()
    ray.get(actor.echo.remote(MESSAGE))
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        ray.get(actor.echo.remote(MESSAGE))
        samples.append((time.perf_counter() - start) * 1e6)
    ray.kill(actor)
    return sorted(samples)


def _tcp_echo(listener: socket.socket) -> None:
    connection, _ = listener.accept()
    with connection:
        while data := connection.recv(len(MESSAGE)):
            connection.sendall(data)


def tcp_round_trips(count: int) -> list[float]:
    """Sorted round trips in µs of 64 bytes over TCP on loopback, to another process."""
    listener = socket.create_server(("127.0.0.1", 0))
    echo = get_context("fork").Process(target=_tcp_echo, args=(listener,), daemon=True)
    echo.start()
    samples = []
    with socket.create_connection(listener.getsockname()) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(count):
            start = time.perf_counter()
            sock.sendall(MESSAGE)
            received = 0
            while received < len(MESSAGE):
                received += len(sock.recv(len(MESSAGE) - received))
            samples.append((time.perf_counter() - start) * 1e6)
    echo.join(10)
    listener.close()
    return sorted(samples)


def measure(guest: str, quick: bool) -> tuple[dict[str, float], list[float]]:
    """Every figure (and the round trips, sorted), measured in this process: a fresh one, since
    Ray cannot be joined again in a process that has already run a Ray session (the fanout
    scenario's baseline) - its actors are then cancelled before they start."""
    from lunatic_mp.cluster.simulated import ray_cluster

    def pick(full: int, small: int) -> int:
        return small if quick else full

    figures: dict[str, float] = {}
    with ray_cluster(3, cpus=1) as handle, Runtime(workers=1, cluster=handle.address) as runtime:
        module = runtime.load_module(guest)
        round_trips(runtime, module, 100, 2, 3, on="node")  # warm up: links, modules
        samples = round_trips(runtime, module, pick(5_000, 300), 2, 3, on="node")
        figures["cross_node_p50_us"] = statistics.median(samples)
        figures["cross_node_p99_us"] = samples[int(len(samples) * 0.99)]
        rates = sorted(stream(runtime, module, pick(300_000, 10_000), 2, 3) for _ in range(STREAMS))
        figures["cross_node_64b_msgs_per_s"] = round(statistics.median(rates))
        figures["cross_node_64b_slowest_msgs_per_s"] = round(rates[0])
        assert runtime.cluster is not None
        ray_samples = ray_actor_round_trips(runtime.cluster.ray_nodes[3], pick(2_000, 100))
        figures["ray_actor_p50_us"] = statistics.median(ray_samples)
        figures["cross_node_vs_ray_actor_x"] = statistics.median(ray_samples) / statistics.median(samples)
        figures["tcp_p50_us"] = statistics.median(tcp_round_trips(pick(20_000, 500)))
        figures["frozen_node_lost_s"] = loss_s(runtime, module, 4, signal.SIGSTOP, handle)
        figures["killed_node_lost_s"] = loss_s(runtime, module, 3, signal.SIGKILL, handle)
    return figures, samples


def run(ctx: Context) -> None:
    if baselines.ray_missing() is not None:
        ctx.note("cluster skipped: Ray is not installed (pip install 'lunatic-mp[cluster]')")
        return
    ctx.step("three simulated Ray nodes, measured from a fresh process")
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        figures, samples = pool.submit(measure, str(ctx.guest("workers.wat")), ctx.quick).result()
    targets = {
        "cross_node_64b_msgs_per_s": at_least(500_000),
        "frozen_node_lost_s": at_most(5),
        "killed_node_lost_s": at_most(3),
    }
    for key, value in figures.items():
        ctx.record(key, value, target=targets.get(key))
    ctx.distribution("round trips", "lunatic_mp, node to node", samples)
    ctx.note("all three nodes and the host program share this machine's cores")
