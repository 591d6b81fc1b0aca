"""A cluster on Ray: one node agent per machine, each hosting an ordinary runtime.

The host program's :class:`~lunatic_mp.api.runtime.Runtime` (``Runtime(cluster="auto")``) is
node 1, and the cluster's directory: it hands out node ids (from 2, never reused), keeps the
table of live nodes, and holds the registry's names. On every other alive Ray node with CPUs it
starts a :class:`NodeAgent`, a Ray actor pinned there, which runs a supervisor with one worker per
CPU of its node and a :class:`~lunatic_mp.cluster.gateway.Gateway`; the gateways link up over TCP,
authenticated by a secret that only travels through Ray. Ray is the authority on death: each
agent has a call in flight that never returns, and when Ray fails it (the node was killed, or
stopped answering its health checks), the node is lost for everyone. Agents are owned by the
host program: Ray stops them when it exits, and their runtimes stop with them.

Ray is optional (``pip install 'lunatic-mp[cluster]'``): without it, a cluster raises
:class:`~lunatic_mp.errors.ClusterError` saying so.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import logging
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

from lunatic_mp.cluster.gateway import Gateway
from lunatic_mp.errors import ClusterError

log = logging.getLogger(__name__)

AGENT_START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 10.0
WATCH_POLL_S = 0.2
NODE_IP_VARIABLE = "LUNATIC_MP_NODE_IP"
"""Set it to the address the other nodes reach this host at, where Ray's guess is wrong (a host
with several addresses, or simulated nodes on loopback)."""


FAULT_SIGNALS = (signal.SIGILL, signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE)
"""The signals wasmtime's trap handlers catch (a guest's trap is a ud2 or a fault on x86-64)."""
SIGACTION_SIZE = 256
"""Room for a ``struct sigaction`` (152 bytes on x86-64 Linux)."""


@contextlib.contextmanager
def fault_handlers_kept() -> Iterator[None]:
    """Keep this process's handlers of the fault signals through a call into Ray: ``ray.init``
    installs crash reporters of its own over them and ``ray.shutdown`` resets them, and once
    wasmtime's are gone a guest's trap in this process kills it with SIGILL instead of failing the
    guest."""
    libc = ctypes.CDLL(None, use_errno=True)
    saved = {number: ctypes.create_string_buffer(SIGACTION_SIZE) for number in FAULT_SIGNALS}
    for number, action in saved.items():
        libc.sigaction(int(number), None, action)
    try:
        yield
    finally:
        for number, action in saved.items():
            libc.sigaction(int(number), action, None)


def ray_init(**options: Any) -> None:
    """``ray.init``, keeping the fault signals' handlers (:func:`fault_handlers_kept`)."""
    ray = import_ray()
    with fault_handlers_kept():
        ray.init(**options)


def ray_shutdown() -> None:
    """``ray.shutdown``, keeping the fault signals' handlers (:func:`fault_handlers_kept`)."""
    ray = import_ray()
    with fault_handlers_kept():
        ray.shutdown()


def import_ray() -> Any:
    """Ray, or a ClusterError saying how to install it (an optional dependency)."""
    try:
        import ray
    except ImportError:
        raise ClusterError(
            "a cluster runs on Ray, which is not installed: pip install 'lunatic-mp[cluster]'"
        ) from None
    return ray


def node_tags(labels: dict[str, str]) -> dict[str, str]:
    """A Ray node's labels as lunatic node tags (``ray start --labels region=eu``), without
    Ray's own (``ray.io/...``)."""
    return {str(k): str(v) for k, v in labels.items() if not str(k).startswith("ray.io/")}


class NodeAgent:
    """The body of the Ray actor on each node: a runtime whose gateway links it to the others."""

    def __init__(self, node_id: int, secret: bytes, workers: int, tags: dict[str, str]) -> None:
        from lunatic_mp.cluster.supervisor import Supervisor

        host = import_ray().util.get_node_ip_address()
        self.gateway = Gateway(node_id, secret, host=host, tags=tags)
        self.closed = threading.Event()
        self._parent = os.getppid()  # the raylet: this agent's Ray node
        threading.Thread(target=self._watch_node, name="lunatic-mp-agent-watch", daemon=True).start()
        try:
            # the actor's main module is Ray's: the workers need nothing from it
            self.supervisor = Supervisor(workers=workers, gateway=self.gateway, import_main=False)
        except BaseException:
            self.gateway.close()
            raise

    def address(self) -> tuple[str, int]:
        return self.gateway.address

    def set_nodes(self, table: dict[int, tuple[tuple[str, int], dict[str, str]]]) -> None:
        self.gateway.set_nodes(table)

    def node_lost(self, node: int, cause: str) -> None:
        self.gateway.node_lost(node, cause)

    def watch(self) -> None:
        """Returns only when the agent is closed: while it is in flight, the host program knows
        the agent lives (Ray fails it when the node dies)."""
        self.closed.wait()

    def _watch_node(self) -> None:
        """An agent whose own Ray node is gone (its raylet died: the agent was handed to init)
        stops its runtime: the others have declared its node lost, and nothing it does counts."""
        while not self.closed.wait(WATCH_POLL_S):
            if os.getppid() != self._parent:
                log.error("node %d: this node's Ray raylet is gone; stopping", self.gateway.node_id)
                self.close()

    def close(self) -> None:
        if not self.closed.is_set():
            self.supervisor.close()
            self.closed.set()


class RayCluster:
    """The host program's side: Ray, the node agents, the table of live nodes, node loss."""

    def __init__(self, address: str = "auto", *, tags: dict[str, str] | None = None) -> None:
        ray = import_ray()
        if not ray.is_initialized():
            options: dict[str, Any] = {}
            node_ip = os.environ.get(NODE_IP_VARIABLE)
            if node_ip:  # a host with several addresses: the one Ray's nodes reach this one at
                options["_node_ip_address"] = node_ip
            try:
                ray_init(address=address, logging_level="WARNING", **options)
            except ConnectionError as exc:
                raise ClusterError(f"cannot join the Ray cluster at {address!r}: {exc}") from None
        self._ray = ray
        self._secret = os.urandom(32)
        self._next_node = itertools.count(2)
        self._lock = threading.Lock()
        self._agents: dict[int, Any] = {}
        self._table: dict[int, tuple[tuple[str, int], dict[str, str]]] = {}
        self._closed = threading.Event()
        host = ray.util.get_node_ip_address()
        self.gateway = Gateway(1, self._secret, host=host, tags=tags)
        self._watcher: threading.Thread | None = None
        self.ray_nodes: dict[int, str] = {}
        """The Ray node id of each node's agent, by node id."""

    def start_agents(self) -> None:
        """Start an agent on every other alive node that has CPUs, link everyone, and watch."""
        ray = self._ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        agent_class = ray.remote(num_cpus=0, max_concurrency=8)(NodeAgent)
        here = ray.get_runtime_context().get_node_id()
        started: dict[int, Any] = {}
        node_tags_of: dict[int, dict[str, str]] = {}
        for info in ray.nodes():
            cpus = int(info.get("Resources", {}).get("CPU", 0))
            if not info.get("Alive") or info["NodeID"] == here or cpus < 1:
                continue
            node = next(self._next_node)
            strategy = NodeAffinitySchedulingStrategy(info["NodeID"], soft=False)
            tags = node_tags_of[node] = node_tags(info.get("Labels") or {})
            self.ray_nodes[node] = info["NodeID"]
            started[node] = agent_class.options(scheduling_strategy=strategy).remote(
                node, self._secret, cpus, tags
            )
        asked = [agent.address.remote() for agent in started.values()]
        addresses = ray.get(asked, timeout=AGENT_START_TIMEOUT_S)
        with self._lock:
            self._agents = started
            self._table = {1: (self.gateway.address, self.gateway.tags)}
            for node, (host, port) in zip(started, addresses, strict=True):
                self._table[node] = ((str(host), int(port)), node_tags_of[node])
        self._publish()
        self._watcher = threading.Thread(target=self._watch, name="lunatic-mp-cluster-watch", daemon=True)
        self._watcher.start()

    def _publish(self) -> None:
        with self._lock:
            table, agents = dict(self._table), list(self._agents.values())
        self.gateway.set_nodes(table)
        self._ray.get([agent.set_nodes.remote(table) for agent in agents], timeout=AGENT_START_TIMEOUT_S)

    def _watch(self) -> None:
        """Turn an agent's death, as Ray reports it, into the loss of its node everywhere."""
        ray = self._ray
        watching = {agent.watch.remote(): node for node, agent in self._agents.items()}
        while watching and not self._closed.is_set():
            done, _ = ray.wait(list(watching), num_returns=1, timeout=WATCH_POLL_S)
            for ref in done:
                node = watching.pop(ref)
                try:
                    ray.get(ref)
                    cause = "its agent stopped"
                except Exception as exc:  # noqa: BLE001 - Ray says why the actor died
                    cause = f"Ray reports its agent dead ({type(exc).__name__})"
                if not self._closed.is_set():
                    self._lost(node, cause)

    def _lost(self, node: int, cause: str) -> None:
        with self._lock:
            self._agents.pop(node, None)
            self._table.pop(node, None)
            agents = list(self._agents.values())
        self.gateway.node_lost(node, cause)
        for agent in agents:
            agent.node_lost.remote(node, cause)

    def close(self) -> None:
        self._closed.set()
        if self._watcher is not None:
            self._watcher.join(STOP_TIMEOUT_S)
        with self._lock:
            agents, self._agents = list(self._agents.values()), {}
        ray = self._ray
        with contextlib.suppress(Exception):
            ray.get([agent.close.remote() for agent in agents], timeout=STOP_TIMEOUT_S)
        for agent in agents:
            with contextlib.suppress(Exception):
                ray.kill(agent)


__all__ = [
    "NodeAgent",
    "RayCluster",
    "fault_handlers_kept",
    "import_ray",
    "node_tags",
    "ray_init",
    "ray_shutdown",
]
