"""A cluster on Ray: three simulated nodes on loopback (lunatic_mp.cluster.simulated) that a
``Runtime(cluster=...)`` spans, as node 1 beside them. Skipped, saying so, where Ray is not
installed (``pip install 'lunatic-mp[cluster]'``; CI installs it)."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="Ray is not installed: pip install 'lunatic-mp[cluster]'")

from lunatic_mp.api.runtime import Runtime
from lunatic_mp.cluster.simulated import HEAD_IP, RayClusterHandle, ray_cluster
from lunatic_mp.pids import node_of
from lunatic_mp.vm.finished import Outcome
from lunatic_mp.vm.mailbox import Kind

GUESTS = Path(__file__).parents[1] / "guests"
EXAMPLES = Path(__file__).parents[2] / "lunatic_mp" / "examples"
TIMEOUT = 60.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[RayClusterHandle, Runtime]]:
    with ray_cluster(3, labels=[{"region": "eu"}, {"region": "us"}, {"region": "us"}]) as handle:
        runtime = Runtime(workers=1, cluster=handle.address)
        try:
            yield handle, runtime
        finally:
            runtime.close()


def test_the_runtime_spans_every_node_with_its_tags(cluster: tuple[RayClusterHandle, Runtime]) -> None:
    _, runtime = cluster
    nodes = runtime.nodes()
    assert sorted(nodes) == [1, 2, 3, 4]
    assert sorted(tags.get("region", "") for tags in nodes.values()) == ["", "eu", "us", "us"]


def test_spawns_and_messages_on_every_node(cluster: tuple[RayClusterHandle, Runtime]) -> None:
    _, runtime = cluster
    module = runtime.load_module(GUESTS / "rt_basic.wat")
    for node in (2, 3, 4):
        pid = runtime.spawn(module, "add", (node, 1), node=node)
        assert node_of(pid) == node
        finished = runtime.join(pid, TIMEOUT)
        assert finished is not None and finished.result == (node + 1,)
        echo = runtime.spawn(module, "echo", (1,), node=node)
        runtime.send(echo, b"ping", tag=20)
        reply = runtime.receive(timeout=TIMEOUT)
        assert reply is not None and bytes(reply.data) == b"ping" + struct.pack("<q", echo)


def test_guests_on_two_other_nodes_keep_their_messages_in_order(
    cluster: tuple[RayClusterHandle, Runtime],
) -> None:
    _, runtime = cluster
    module = runtime.load_module(GUESTS / "rt_basic.wat")
    checker = runtime.spawn(module, "check_seq", (3000,), node=2)
    runtime.spawn(module, "send_seq", (checker, 3000), node=3)
    done = runtime.join(checker, TIMEOUT)
    assert done is not None and done.result[0] == 3000 and node_of(done.result[1]) == 3


def test_lunatic_mp_run_spans_the_cluster(cluster: tuple[RayClusterHandle, Runtime]) -> None:
    """`lunatic-mp run --cluster ADDRESS` runs a module as node 1 of the cluster, beside the
    runtime of the fixture (a second host program, with agents of its own)."""
    handle, _ = cluster
    script = Path(sys.executable).parent / "lunatic-mp"
    env = dict(os.environ, LUNATIC_MP_NODE_IP=HEAD_IP, RAY_AUTH_MODE="disabled")
    result = subprocess.run(
        [str(script), "run", "--cluster", handle.address, str(EXAMPLES / "hello.wat")],
        capture_output=True, text=True, timeout=TIMEOUT * 2, env=env, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 4


def test_lunatic_mp_serve_spans_the_cluster(
    cluster: tuple[RayClusterHandle, Runtime], tmp_path: Path
) -> None:
    """`lunatic-mp serve --cluster ADDRESS` (the built-in example) starts as node 1 of the
    cluster, says how many nodes it spans, and stops cleanly on SIGTERM."""
    handle, _ = cluster
    script = Path(sys.executable).parent / "lunatic-mp"
    env = dict(os.environ, LUNATIC_MP_NODE_IP=HEAD_IP, RAY_AUTH_MODE="disabled")
    control = f"unix:{tmp_path / 'control.sock'}"
    command = [str(script), "serve", "--cluster", handle.address, "--workers", "1",
               "--control", control, "--metrics", "off", "--http", "off"]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    watchdog = threading.Timer(TIMEOUT * 2, server.kill)
    watchdog.start()
    try:
        assert server.stdout is not None
        lines = []
        for line in server.stdout:
            lines.append(line)
            if line.startswith("lunatic-mp: ready"):
                break
        assert any("spanning a Ray cluster of 4 nodes" in line for line in lines), lines
    finally:
        watchdog.cancel()
        server.send_signal(signal.SIGTERM)
        assert server.wait(TIMEOUT) == 0
        if server.stdout is not None:
            server.stdout.close()


def lose_node(
    cluster: tuple[RayClusterHandle, Runtime], node: int, how: signal.Signals
) -> tuple[float, Runtime]:
    """Signal every process of ``node``'s Ray node; how long until the host program's monitor
    of a process there fired."""
    handle, runtime = cluster
    assert runtime.cluster is not None
    parked = runtime.spawn(runtime.load_module(GUESTS / "rt_basic.wat"), "park", node=node)
    runtime.monitor(parked)
    started = time.monotonic()
    handle.worker(runtime.cluster.ray_nodes[node]).signal(how)
    died = runtime.receive(timeout=TIMEOUT)
    elapsed = time.monotonic() - started
    assert died is not None and died.kind is Kind.PROCESS_DIED and died.pid == parked
    finished = runtime.join(parked, TIMEOUT)
    assert finished is not None and finished.outcome is Outcome.FAILED
    assert f"node {node} lost" in finished.message
    assert node not in runtime.nodes()
    return elapsed, runtime


def test_a_frozen_node_is_lost_when_ray_says_so(cluster: tuple[RayClusterHandle, Runtime]) -> None:
    """SIGSTOP of a whole node: its links stay open, so only Ray's health checks (tuned to about
    1.5 s here) can tell; the node is then lost for every other node too."""
    elapsed, runtime = lose_node(cluster, 3, signal.SIGSTOP)
    assert elapsed < 15.0, f"a frozen node took {elapsed:.1f} s to be lost"  # about 2.7 s
    module = runtime.load_module(GUESTS / "rt_basic.wat")
    pid = runtime.spawn(module, "add", (1, 1), node=2)  # the survivors carry on
    finished = runtime.join(pid, TIMEOUT)
    assert finished is not None and finished.result == (2,)


def test_a_killed_node_is_lost_everywhere_within_seconds(cluster: tuple[RayClusterHandle, Runtime]) -> None:
    """kill -9 of a whole node: its links break at once."""
    elapsed, _ = lose_node(cluster, 4, signal.SIGKILL)
    assert elapsed < 10.0, f"a killed node took {elapsed:.1f} s to be lost"  # well under a second
