"""A Ray cluster of simulated nodes on this machine, for trying a cluster, for the tests and for
``lunatic-mp bench cluster``: a head without CPUs and worker nodes, each a ``ray start`` process
group on its own loopback address, with health checks tuned
so that a dead node is noticed in about a second (defaults: 15 s or more).

The head listens on 127.0.1.1, not 127.0.0.1: Ray rewrites 127.0.0.1 and localhost to the
machine's outward address. Each node gets its own temp dir (nodes started at once would race on
socket names in a shared one). Killing a node kills its process group and every descendant of
its raylet (Ray gives each actor worker a process group of its own).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from lunatic_mp.cluster.nodes import import_ray, ray_init, ray_shutdown

RAY = str(Path(sys.executable).parent / "ray")
HEAD_IP = "127.0.1.1"
FAST_HEALTH = {
    "health_check_initial_delay_ms": 1000,
    "health_check_period_ms": 500,
    "health_check_timeout_ms": 500,
    "health_check_failure_threshold": 3,
}


@dataclass
class RayNode:
    ip: str
    group: int  # its process group
    node_id: str = ""  # Ray's

    def pids(self) -> set[int]:
        found = set()
        for process in psutil.process_iter(["pid", "name"]):
            with contextlib.suppress(ProcessLookupError, PermissionError, psutil.Error):
                if os.getpgid(process.pid) == self.group:
                    found.add(process.pid)
                    if process.info["name"] == "raylet":
                        found.update(child.pid for child in process.children(recursive=True))
        return found

    def signal(self, number: int) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, number)


@dataclass
class RayClusterHandle:
    address: str
    head: RayNode
    workers: list[RayNode] = field(default_factory=list)

    def worker(self, node_id: str) -> RayNode:
        return next(node for node in self.workers if node.node_id == node_id)


def _env() -> dict[str, str]:
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    env.pop("RAY_ADDRESS", None)
    return env


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [RAY, "start", "--disable-usage-stats", *args],
            env=_env(), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip


def _wait(process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    try:
        code: int | str = process.wait(timeout)
    except subprocess.TimeoutExpired:
        code = "a timeout"
    if code != 0:
        raise RuntimeError(f"ray start failed with {code}:\n{log.read_text(errors='replace')[-3000:]}")


@contextlib.contextmanager
def ray_cluster(
    nodes: int = 3, cpus: int = 1, labels: list[dict[str, str]] | None = None
) -> Iterator[RayClusterHandle]:
    """Start a head and ``nodes`` worker nodes, connect this process's Ray to them, and take
    everything down at the end (nothing left running)."""
    os.environ["RAY_AUTH_MODE"] = "disabled"  # before Ray is imported: it reads it then
    ray = import_ray()
    directory = Path(tempfile.mkdtemp(prefix="lmp_ray_", dir="/tmp"))  # short: socket paths
    with socket.socket() as probe:
        probe.bind((HEAD_IP, 0))
        port = probe.getsockname()[1]
    address = f"{HEAD_IP}:{port}"
    started: list[RayNode] = []
    try:
        head_log = directory / "head.log"
        head = _start(
            ["--head", f"--node-ip-address={HEAD_IP}", f"--port={port}", "--num-cpus=0", "--num-gpus=0",
             "--include-dashboard=false", "--no-monitor", f"--object-store-memory={128 << 20}",
             f"--temp-dir={directory}", f"--system-config={json.dumps(FAST_HEALTH)}"],
            head_log,
        )  # fmt: skip
        started.append(RayNode(HEAD_IP, head.pid))
        _wait(head, head_log, 120)
        launched = []
        for index in range(nodes):
            ip = f"127.0.0.{index + 2}"
            args = [f"--address={address}", f"--node-ip-address={ip}", f"--num-cpus={cpus}", "--num-gpus=0",
                    f"--object-store-memory={128 << 20}", f"--temp-dir={directory}/n{index}",
                    "--dashboard-agent-listen-port=0"]  # fmt: skip
            if labels and labels[index]:
                args.append("--labels=" + ",".join(f"{k}={v}" for k, v in labels[index].items()))
            log = directory / f"node{index}.log"
            process = _start(args, log)
            started.append(RayNode(ip, process.pid))
            launched.append((process, log))
        for process, log in launched:
            _wait(process, log, 120)
        ray_init(address=address, _node_ip_address=HEAD_IP, logging_level="WARNING", log_to_driver=False)
        by_ip = {info["NodeManagerAddress"]: info["NodeID"] for info in ray.nodes() if info["Alive"]}
        for node in started:
            node.node_id = by_ip[node.ip]
        yield RayClusterHandle(address, started[0], started[1:])
    finally:
        with contextlib.suppress(Exception):
            ray_shutdown()
        for node in started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.group, signal.SIGCONT)
            node.signal(signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.group, signal.SIGKILL)
        shutil.rmtree(directory, ignore_errors=True)
