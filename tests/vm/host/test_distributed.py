"""lunatic::distributed outside a cluster, from a guest importing it with upstream's signatures.

Guest: tests/guests/dist_guest.wat. lunatic-rs imports this namespace in every module that sends
to a ``Process``, so a module built with it must link and send locally.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import finish, start

from lunatic_mp import Engine, Module, Outcome
from lunatic_mp.vm.host.distributed import module_id_of
from lunatic_mp.vm.plugins import check_name


@pytest.fixture
def dist(load: Callable[[str], Module]) -> Module:
    return load("dist_guest.wat")


def test_one_node_and_no_others(engine: Engine, dist: Module) -> None:
    """node_id and nodes_count are 0, get_nodes copies nothing (the buffer stays as it was), and
    module_id is the module's id, derived from its bytes."""
    finished = finish(engine, start(engine, dist, "info"))
    assert finished.ok, finished
    nodes_count, copied, first_slot, node_id, module_id = finished.result
    assert (nodes_count, copied, node_id) == (0, 0, 0)
    assert first_slot == int.from_bytes(b"\xaa" * 8, "little", signed=True)
    assert module_id == module_id_of(dist.digest) >= 0


def test_module_id_is_the_same_for_the_same_bytes(engine: Engine, dist: Module) -> None:
    """Two processes of one module, and the same bytes loaded again, see the same module id."""
    again = engine.load_module(dist.binary)
    ids = {finish(engine, start(engine, module, "info")).result[4] for module in (dist, again, dist)}
    assert len(ids) == 1


def test_get_nodes_checks_its_buffer(engine: Engine, dist: Module) -> None:
    """A buffer past the end of memory traps, as upstream's get_nodes does."""
    finished = finish(engine, start(engine, dist, "get_nodes_out_of_bounds"))
    assert finished.outcome is Outcome.FAILED
    assert "out-of-bounds" in finished.message


def test_local_send_as_lunatic_rs_does(engine: Engine, dist: Module) -> None:
    """host::send's local path: the node of the target equals node_id(), message::send delivers."""
    finished = finish(engine, start(engine, dist, "local_send"))
    assert finished.ok, finished
    assert finished.result == (77,)


@pytest.mark.parametrize(
    ("function", "why"),
    [
        ("remote_spawn", "not part of a cluster"),
        ("remote_send", "not part of a cluster"),
        ("remote_request", "not part of a cluster"),
        ("lookup_nodes", "not part of a cluster"),
        ("copy_lookup_results", "not part of a cluster"),
        ("root_cert", "certificate generation is not supported"),
        ("server_certs", "certificate generation is not supported"),
        ("sign", "certificate generation is not supported"),
    ],
)
def test_calls_needing_another_node_trap(engine: Engine, dist: Module, function: str, why: str) -> None:
    """Outside a cluster upstream's spawn, send and lookups trap; so do they here, naming the call."""
    finished = finish(engine, start(engine, dist, function))
    assert finished.outcome is Outcome.FAILED
    assert "lunatic::distributed::" in finished.message
    assert why in finished.message


def test_distributed_is_a_namespace_not_a_free_plugin_name() -> None:
    """The plugin name check refuses `distributed` because the namespace exists now."""
    from lunatic_mp.config import ALL_NAMESPACES
    from lunatic_mp.errors import PluginError

    assert "distributed" in ALL_NAMESPACES
    with pytest.raises(PluginError, match="taken by a lunatic namespace"):
        check_name("distributed")


# --- lunatic::networking::udp_peer_addr (lunatic-rs's UdpSocket::peer_addr) -----------------------


def test_udp_peer_addr(engine: Engine, load: Callable[[str], Module]) -> None:
    """Before connect: an error (1); after: 0 and a DNS iterator of the peer's address and port."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.bind(("127.0.0.1", 0))
        port = peer.getsockname()[1]
        finished = finish(engine, start(engine, load("udp_peer.wat"), "peer", port))
    assert finished.ok, finished
    before, after, next_code, addr_type, got_port, first_byte = finished.result
    assert (before, after, next_code) == (1, 0, 0)
    assert (addr_type, got_port, first_byte) == (4, port, 127)


def test_udp_peer_addr_of_unknown_socket_traps(engine: Engine, load: Callable[[str], Module]) -> None:
    finished = finish(engine, start(engine, load("udp_peer.wat"), "unknown"))
    assert finished.outcome is Outcome.FAILED
    assert "unknown UDP socket id 12345" in finished.message
