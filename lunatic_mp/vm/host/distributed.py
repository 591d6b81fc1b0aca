"""``lunatic::distributed``: nodes, and spawning and sending across them.

lunatic 0.13 always defines this namespace, and lunatic-rs imports it in every module that sends
to a ``Process`` (``host::send`` compares the target's node with ``node_id()`` to choose the local
or the remote path), so a module built with lunatic-rs only links if it exists.

Outside a cluster a runtime is node 0, alone: ``node_id`` and ``nodes_count`` return 0,
``get_nodes`` copies nothing, and the calls that need other nodes trap, as upstream's do when the
runtime is not part of a cluster, with a message that says so. In a cluster
(:mod:`lunatic_mp.cluster.gateway`, docs/cluster.md) they reach the other nodes: a pid names its
node, so ``send`` is the local send after checking the node, ``spawn`` places the child on the
node asked (the module travels by content digest), and the node lookups filter the live nodes by
their tags (``region=eu&zone=b``: every pair must match). The certificate helpers need a crypto
library this runtime does not ship: they trap (lunatic-rs calls them only to set up a control
server of its own).
"""

from __future__ import annotations

import itertools
import urllib.parse
from typing import TYPE_CHECKING

from lunatic_mp.pids import ANY_WORKER, make_pid, node_of, place_of
from lunatic_mp.vm.host._common import OK, TIMEOUT, current, memory_of, report_error
from lunatic_mp.vm.host.message import scratch_of
from lunatic_mp.vm.host.process import SpawnRefused, read_spawn_request
from lunatic_mp.vm.wasm import PENDING, GuestTrap

if TYPE_CHECKING:
    from lunatic_mp.vm.engine import Engine
    from lunatic_mp.vm.mailbox import Message
    from lunatic_mp.vm.process import Process

NAMESPACE = "lunatic::distributed"
MODULE_ID_MASK = (1 << 63) - 1

# name -> (params, results), as lunatic 0.13 registers them (crates/lunatic-distributed-api)
CERTIFICATES: dict[str, tuple[str, str]] = {
    "test_root_cert": ("i", "i"),
    "default_server_certificates": ("iiiii", "i"),
    "sign_node": ("iiiiiii", "i"),
}


def module_id_of(digest: bytes) -> int:
    """A module's id: the same on every worker (it comes from the module's bytes), never negative."""
    return int.from_bytes(digest[:8], "little") & MODULE_ID_MASK


MAX_QUERIES = 1024
"""Node lookups a worker keeps the results of (the oldest go first)."""
NO_NODE = 2
"""``send``'s answer for a node that is not in the cluster (1: no such process on that node)."""
SPAWN_NO_NODE, SPAWN_NO_MODULE, SPAWN_REFUSED = 1, 2, 3
"""``spawn``'s answers besides 0, as lunatic 0.13 numbers them (an error id goes to ``id_ptr``)."""


def matching_nodes(nodes: dict[int, dict[str, str]], query: str) -> list[int]:
    """The nodes whose tags hold every ``key=value`` pair of ``query`` (a URL query string)."""
    wanted = urllib.parse.parse_qsl(query, keep_blank_values=True)
    return sorted(node for node, tags in nodes.items() if all(tags.get(k) == v for k, v in wanted))


def register(engine: Engine) -> None:
    define, define_async = engine.linker.define, engine.linker.define_async
    queries: dict[int, list[int]] = {}
    query_ids = itertools.count(1)

    def in_cluster(name: str) -> None:
        if not engine.nodes:
            where = f"node {engine.node_id} is not part of a cluster"
            raise GuestTrap(f"{NAMESPACE}::{name}: {where}; there is no other node to reach")

    def get_nodes(nodes_ptr: int, nodes_len: int) -> int:
        """Copy the ids of the live nodes (this one included), as many as fit; how many."""
        nodes = sorted(engine.nodes)[: max(nodes_len, 0)]
        memory = memory_of(current(engine), engine)
        memory.write(nodes_ptr, b"".join(node.to_bytes(8, "little") for node in nodes))
        return len(nodes)

    define(NAMESPACE, "nodes_count", "", "i", lambda: len(engine.nodes))
    define(NAMESPACE, "get_nodes", "ii", "i", get_nodes)
    define(NAMESPACE, "node_id", "", "I", lambda: engine.node_id)
    define(NAMESPACE, "module_id", "", "I", lambda: module_id_of(current(engine).module.digest))

    def remote_message(name: str, node: int, pid: int) -> tuple[Process, Message, int]:
        """The scratch message, taken for ``pid`` on ``node``, and 0; or, with it left in place,
        why it cannot go (1 no such process there, 2 no such node)."""
        in_cluster(name)
        process = current(engine)
        message = scratch_of(process)
        if node != engine.node_id and (message.modules or message.streams):
            raise GuestTrap(f"{NAMESPACE}::{name}: a message with resources cannot go to another node")
        if node not in engine.nodes:
            return process, message, NO_NODE
        if node_of(pid) != node:
            return process, message, 1
        process.scratch = None
        message.pid = process.pid  # as lunatic::message::send does (message.c, lmp_send_scratch)
        message.cursor = 0
        if not isinstance(message.data, bytes):
            message.data = bytes(message.data)
        return process, message, 0

    def send(node: int, pid: int) -> int:
        _, message, status = remote_message("send", node, pid)
        if status == 0:
            engine.deliver(pid, message)
        return status

    def send_receive_skip_search(node: int, pid: int, wait_tag: int, timeout_ms: int) -> object:
        """Send, then wait for a reply tagged ``wait_tag`` among the messages that arrive after."""
        process, message, status = remote_message("send_receive_skip_search", node, pid)
        if status:
            return status
        start = len(process.mailbox)
        engine.deliver(pid, message)
        process.mailbox.wait((wait_tag,), start)
        process.waiting = True  # not in a C receive: Engine.resume returns from this call
        engine.wait(process, timeout_ms, on_timeout=TIMEOUT)  # NO_TIMEOUT (-1) waits forever
        return PENDING

    define(NAMESPACE, "send", "II", "i", send)
    define_async(NAMESPACE, "send_receive_skip_search", "IIII", "i", send_receive_skip_search)

    def spawn(
        node: int, config_id: int, module_id: int, fn_ptr: int, fn_len: int, params_ptr: int,
        params_len: int, id_ptr: int,
    ) -> object:  # fmt: skip
        in_cluster("spawn")
        parent = current(engine)
        memory = memory_of(parent, engine)
        memory.check(id_ptr, 8)
        if node not in engine.nodes:
            report_error(parent, memory, id_ptr, f"no node {node} in the cluster")
            return SPAWN_NO_NODE
        resource = _module_resource(parent, module_id)
        if resource is None:
            report_error(parent, memory, id_ptr, f"no module with id {module_id}")
            return SPAWN_NO_MODULE
        try:
            what = read_spawn_request(
                memory, parent, config_id, resource, (fn_ptr, fn_len), (params_ptr, params_len)
            )
        except SpawnRefused as exc:
            report_error(parent, memory, id_ptr, str(exc))
            return SPAWN_REFUSED
        answered: list[int | str] = []
        suspended = False

        def done(child: int | str) -> None:
            if not suspended:
                answered.append(child)
            elif isinstance(child, str):
                error = child

                def failed() -> None:
                    report_error(parent, memory, id_ptr, error)

                engine.resume(parent, SPAWN_REFUSED, failed)
            else:
                engine.resume(parent, OK, lambda: memory.write_u64(id_ptr, child))

        if node == engine.node_id:
            engine.spawn_placed(parent, 0, what, done)
        else:
            engine.spawn_remote(parent=parent, worker=place_of(make_pid(node, ANY_WORKER, 0)), what=what,
                                link_tag=0, on_done=done)  # fmt: skip
        if not answered:
            suspended = True
            return PENDING
        child = answered[0]
        if isinstance(child, str):
            report_error(parent, memory, id_ptr, child)
            return SPAWN_REFUSED
        memory.write_u64(id_ptr, child)
        return OK

    define_async(NAMESPACE, "spawn", "IIIiiiii", "i", spawn)

    def exec_lookup_nodes(query_ptr: int, query_len: int, query_id_ptr: int, nodes_len_ptr: int,
                          error_ptr: int) -> int:  # fmt: skip
        """Look up the live nodes whose tags match a query; its id and how many matched."""
        in_cluster("exec_lookup_nodes")
        memory = memory_of(current(engine), engine)
        query = memory.read_str(query_ptr, query_len)
        memory.check(query_id_ptr, 8)
        memory.check(nodes_len_ptr, 4)
        memory.check(error_ptr, 8)
        query_id = next(query_ids)
        queries[query_id] = matching_nodes(engine.nodes, query)
        while len(queries) > MAX_QUERIES:
            del queries[next(iter(queries))]
        memory.write_u64(query_id_ptr, query_id)
        memory.write(nodes_len_ptr, len(queries[query_id]).to_bytes(4, "little"))
        return OK

    def copy_lookup_nodes_results(query_id: int, nodes_ptr: int, nodes_len: int, error_ptr: int) -> int:
        """Copy a lookup's node ids, as many as fit; how many (-1: no such query)."""
        in_cluster("copy_lookup_nodes_results")
        process = current(engine)
        memory = memory_of(process, engine)
        found = queries.get(query_id)
        if found is None:
            report_error(process, memory, error_ptr, f"no node lookup with id {query_id}")
            return -1
        nodes = found[: max(nodes_len, 0)]
        memory.write(nodes_ptr, b"".join(node.to_bytes(8, "little") for node in nodes))
        return len(nodes)

    define(NAMESPACE, "exec_lookup_nodes", "iiiii", "i", exec_lookup_nodes)
    define(NAMESPACE, "copy_lookup_nodes_results", "Iiii", "i", copy_lookup_nodes_results)

    def refuse(name: str, why: str) -> None:
        def call(*_args: int) -> int:
            raise GuestTrap(f"{NAMESPACE}::{name}: {why}")

        params, results = CERTIFICATES[name]
        define(NAMESPACE, name, params, results, call)

    for name in CERTIFICATES:
        refuse(name, "certificate generation is not supported by lunatic_mp")


def _module_resource(process: Process, module_id: int) -> int | None:
    """The resource id (-1: its own module) under which ``process`` holds the module with the
    cluster-wide ``module_id``; None if it holds none."""
    if module_id == module_id_of(process.module.digest):
        return -1
    for resource, module in process.resources.modules.items():
        if module_id_of(module.digest) == module_id:
            return resource
    return None
