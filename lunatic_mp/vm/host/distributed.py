"""``lunatic::distributed``: nodes, and spawning and sending across them.

lunatic 0.13 always defines this namespace, and lunatic-rs imports it in every module that sends
to a ``Process`` (``host::send`` compares the target's node with ``node_id()`` to choose the local
or the remote path), so a module built with lunatic-rs only links if it exists. A lunatic_mp
runtime is one node: ``node_id`` and ``nodes_count`` return 0 and ``get_nodes`` copies nothing, as
upstream outside a cluster. The calls that need other nodes trap, as upstream's do when the
runtime is not part of a cluster, with a message that says so. The certificate helpers need a
crypto library this runtime does not ship: they trap too (lunatic-rs calls them only to set up a
control server of its own).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lunatic_mp.vm.host._common import current, memory_of
from lunatic_mp.vm.wasm import GuestTrap

if TYPE_CHECKING:
    from lunatic_mp.vm.engine import Engine

NAMESPACE = "lunatic::distributed"
MODULE_ID_MASK = (1 << 63) - 1

# name -> (params, results), as lunatic 0.13 registers them (crates/lunatic-distributed-api)
NEEDS_CLUSTER: dict[str, tuple[str, str]] = {
    "spawn": ("IIIiiiii", "i"),
    "send": ("II", "i"),
    "send_receive_skip_search": ("IIII", "i"),
    "exec_lookup_nodes": ("iiiii", "i"),
    "copy_lookup_nodes_results": ("Iiii", "i"),
}
CERTIFICATES: dict[str, tuple[str, str]] = {
    "test_root_cert": ("i", "i"),
    "default_server_certificates": ("iiiii", "i"),
    "sign_node": ("iiiiiii", "i"),
}


def module_id_of(digest: bytes) -> int:
    """A module's id: the same on every worker (it comes from the module's bytes), never negative."""
    return int.from_bytes(digest[:8], "little") & MODULE_ID_MASK


def register(engine: Engine) -> None:
    define = engine.linker.define

    def get_nodes(nodes_ptr: int, nodes_len: int) -> int:
        """Copy the ids of the other nodes: there are none, but the buffer must still be valid."""
        memory_of(current(engine), engine).check(nodes_ptr, 0)
        return 0

    define(NAMESPACE, "nodes_count", "", "i", lambda: 0)
    define(NAMESPACE, "get_nodes", "ii", "i", get_nodes)
    define(NAMESPACE, "node_id", "", "I", lambda: engine.node_id)
    define(NAMESPACE, "module_id", "", "I", lambda: module_id_of(current(engine).module.digest))

    def refuse(name: str, why: str) -> None:
        def call(*_args: int) -> int:
            raise GuestTrap(f"{NAMESPACE}::{name}: {why}")

        params, results = NEEDS_CLUSTER.get(name) or CERTIFICATES[name]
        define(NAMESPACE, name, params, results, call)

    for name in NEEDS_CLUSTER:
        refuse(name, f"node {engine.node_id} is not part of a cluster; there is no other node to reach")
    for name in CERTIFICATES:
        refuse(name, "certificate generation is not supported by lunatic_mp")
