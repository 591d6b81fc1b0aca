"""Two nodes of a cluster in one test: two runtimes whose gateways link them over TCP on loopback
(the Ray layer above only decides who is in the cluster; these tests decide it themselves)."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import msgpack
import pytest

from lunatic_mp.api.runtime import Runtime
from lunatic_mp.cluster import frames
from lunatic_mp.cluster.gateway import MAGIC, MAX_QUEUED_BYTES, READ_SIZE, Gateway
from lunatic_mp.config import EnvConfig
from lunatic_mp.errors import ClusterError, SpawnError
from lunatic_mp.pids import REGISTRY, make_pid, node_of
from lunatic_mp.vm.finished import Finished, Outcome
from lunatic_mp.vm.mailbox import Kind

GUESTS = Path(__file__).parents[1] / "guests"
SECRET = os.urandom(32)
TIMEOUT = 30.0


@pytest.fixture(scope="module")
def nodes() -> Iterator[tuple[Runtime, Runtime]]:
    one, two = Gateway(1, SECRET), Gateway(2, SECRET, tags={"region": "eu"})
    first = Runtime(workers=1, gateway=one)
    second = Runtime(workers=1, gateway=two)
    table = {1: (one.address, {}), 2: (two.address, {"region": "eu"})}
    one.set_nodes(table)
    two.set_nodes(table)
    try:
        yield first, second
    finally:
        first.close()
        second.close()


def test_a_spawn_on_another_node_runs_there_and_is_joined_here(nodes: tuple[Runtime, Runtime]) -> None:
    first, _ = nodes
    module = first.load_module(GUESTS / "rt_basic.wat")  # only node 1 has it: it travels with the spawn
    pid = first.spawn(module, "add", (2, 3), node=2)
    assert node_of(pid) == 2
    finished = first.join(pid, TIMEOUT)
    assert finished is not None and finished.outcome is Outcome.NORMAL and finished.result == (5,)


def test_messages_both_ways_between_the_host_program_and_a_process_on_another_node(
    nodes: tuple[Runtime, Runtime],
) -> None:
    first, _ = nodes
    module = first.load_module(GUESTS / "rt_basic.wat")
    echo = first.spawn(module, "echo", (1,), node=2)
    first.send(echo, b"hello", tag=3)
    reply = first.receive(timeout=TIMEOUT)
    assert reply is not None and reply.tag == 4
    assert bytes(reply.data) == b"hello" + struct.pack("<q", echo)


def test_messages_larger_than_a_links_read_buffer_cross_whole_and_in_order(
    nodes: tuple[Runtime, Runtime],
) -> None:
    """The reader's buffer (READ_SIZE) grows for a record longer than itself, and gives the room
    back once it has gone; small messages around the big ones keep their places."""
    first, second = nodes
    sizes = [10, 3 * READ_SIZE + 17, 5, READ_SIZE, 1, 9 * READ_SIZE - 3, 2]
    payloads = [bytes([i % 251]) * size for i, size in enumerate(sizes)]
    for payload in payloads:
        first.send(second.pid, payload, tag=41)
    for payload in payloads:
        message = second.receive(tags=[41], timeout=TIMEOUT)
        assert message is not None and bytes(message.data) == payload


def test_guests_play_ping_pong_across_nodes(nodes: tuple[Runtime, Runtime]) -> None:
    first, second = nodes
    module = first.load_module(GUESTS / "rt_basic.wat")
    ponger = second.spawn(second.load_module(GUESTS / "rt_basic.wat"), "pong", (500,))
    pinger = first.spawn(module, "ping", (ponger, 500))
    done = first.join(pinger, TIMEOUT)
    assert done is not None and done.result == (500,)


def test_order_is_kept_from_a_sender_on_one_node_to_a_receiver_on_the_other(
    nodes: tuple[Runtime, Runtime],
) -> None:
    first, second = nodes
    module = first.load_module(GUESTS / "rt_basic.wat")
    checker = first.spawn(module, "check_seq", (5000,))
    second.spawn(second.load_module(GUESTS / "rt_basic.wat"), "send_seq", (checker, 5000))
    done = first.join(checker, TIMEOUT)
    assert done is not None and done.result[0] == 5000
    assert node_of(done.result[1]) == 2


def test_names_registered_on_one_node_are_found_on_the_other(nodes: tuple[Runtime, Runtime]) -> None:
    first, second = nodes
    parked = second.spawn(second.load_module(GUESTS / "rt_basic.wat"), "park")
    second.registry_put("cluster-test-name", parked)
    assert first.registry_get("cluster-test-name") == parked
    first.registry_remove("cluster-test-name")
    assert second.registry_get("cluster-test-name") is None
    second.kill(parked)


def test_exists_and_kill_across_nodes(nodes: tuple[Runtime, Runtime]) -> None:
    first, _ = nodes
    parked = first.spawn(first.load_module(GUESTS / "rt_basic.wat"), "park", node=2)
    assert first.exists(parked)
    first.kill(parked, "stop")
    finished = first.join(parked, TIMEOUT)
    assert finished is not None and finished.outcome is Outcome.KILLED
    assert not first.exists(parked)


def test_a_spawn_on_an_unknown_node_fails_clearly(nodes: tuple[Runtime, Runtime]) -> None:
    first, _ = nodes
    with pytest.raises(SpawnError, match="no node 9"):
        first.spawn(first.load_module(GUESTS / "rt_basic.wat"), "add", (1, 2), node=9)


def test_a_stranger_without_the_secret_cannot_link() -> None:
    gateway = Gateway(1, SECRET)
    try:
        with socket.create_connection(gateway.address, timeout=TIMEOUT) as sock:
            sock.sendall(MAGIC + struct.pack("<I", 2) + os.urandom(32))
            hello = sock.recv(len(MAGIC) + 4 + 32)
            assert hello.startswith(MAGIC)
            sock.sendall(os.urandom(32))  # a guess at the proof
            sock.settimeout(TIMEOUT)
            rest = sock.recv(1024)
            while rest:  # the gateway sends its own proof, then closes on the bad one
                rest = sock.recv(1024)
    finally:
        gateway.close()
    with pytest.raises(ClusterError, match="at least 16 bytes"):
        Gateway(1, b"short")


def test_a_lost_node_fails_monitors_and_joins_of_its_processes() -> None:
    one, two = Gateway(1, SECRET), Gateway(2, SECRET)
    with Runtime(workers=1, gateway=one) as first, Runtime(workers=1, gateway=two) as second:
        table = {1: (one.address, {}), 2: (two.address, {})}
        one.set_nodes(table)
        two.set_nodes(table)
        parked = first.spawn(first.load_module(GUESTS / "rt_basic.wat"), "park", node=2)
        first.monitor(parked)
        links = first.load_module(GUESTS / "sig_links.wat")
        watcher = first.spawn(links, "link_and_wait", (parked,))
        assert first.exists(watcher)  # its worker has run it: it is linked (the link is recorded on
        # its side at once, so the node's loss fires it whether or not node 2 got the Link frame)
        one.node_lost(2, "killed by the test")
        died = first.receive(timeout=TIMEOUT)
        assert died is not None and died.kind is Kind.PROCESS_DIED and died.pid == parked
        finished = first.join(parked, TIMEOUT)
        assert finished is not None and finished.outcome is Outcome.FAILED
        assert "node 2 lost" in finished.message
        watched = first.join(watcher, TIMEOUT)
        assert watched is not None and watched.result == (int(Kind.LINK_DIED), 11, parked)
        with pytest.raises(SpawnError, match="no node 2"):
            first.spawn(first.load_module(GUESTS / "rt_basic.wat"), "add", (1, 2), node=2)
        assert second.node_id == 2


def test_a_guest_uses_lunatic_distributed_across_nodes(nodes: tuple[Runtime, Runtime]) -> None:
    """What a lunatic-rs guest does with lunatic::distributed: list and look up nodes, spawn on
    another node by module id, send there, and request/reply with a process there."""
    first, second = nodes

    def run(function: str, *params: int) -> tuple[object, ...]:
        config = EnvConfig(can_spawn_processes=True)
        pid = first.spawn(first.load_module(GUESTS / "dist_cluster.wat"), function, params, config)
        finished = first.join(pid, TIMEOUT)
        assert finished is not None and finished.outcome is Outcome.NORMAL, finished
        return finished.result

    assert run("nodes") == (2, 2, 1, 2, 1)
    assert run("lookup_eu") == (0, 1, 1, 2)
    status, child = run("spawn_on", 2, 1, first.pid)
    assert status == 0 and node_of(int(child)) == 2  # type: ignore[call-overload]
    report = first.receive(timeout=TIMEOUT)
    assert report is not None and report.tag == 11 and int.from_bytes(bytes(report.data), "little") == 2
    assert run("spawn_unknown_module", 2) == (2,)
    echo = second.spawn(second.load_module(GUESTS / "rt_basic.wat"), "echo", (1,))
    status, tag, value = run("request", 2, echo)
    assert (status, tag, value) == (0, 8, 4242)
    assert run("send_nowhere") == (2,)


def replica_names(runtime: Runtime) -> set[str]:
    """The names in the replica of ``runtime``'s own registry process (not the authority's)."""
    reply = runtime._request(REGISTRY, lambda r: frames.Stats(r, runtime.pid), TIMEOUT)
    return {name for name, _, _, _ in msgpack.unpackb(reply.payload)["names"]}


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_other_nodes_answer_lookups_from_a_replica_of_node_1s_names(nodes: tuple[Runtime, Runtime]) -> None:
    first, second = nodes
    module = second.load_module(GUESTS / "rt_registry.wat")
    server = second.spawn(module, "serve", (second.pid,))  # registers itself as svc@1.2.0
    registered = second.receive(tags=[1], timeout=TIMEOUT)
    assert registered is not None
    wait_until(lambda: "svc" in replica_names(second))
    lookup = second.join(second.spawn(module, "lookup"), TIMEOUT)
    assert lookup is not None and lookup.result == (0, server)
    assert first.registry_get("svc@1.2.0") == server  # the authority, node 1
    second.kill(server)
    wait_until(lambda: "svc" not in replica_names(second))
    lookup = second.join(second.spawn(module, "lookup"), TIMEOUT)
    assert lookup is not None and lookup.result == (1, -1)


def test_get_or_spawn_raced_from_two_nodes_spawns_once(nodes: tuple[Runtime, Runtime]) -> None:
    first, _ = nodes
    module = first.load_module(GUESTS / "rt_registry.wat")
    config = EnvConfig(can_spawn_processes=True)
    racers = [first.spawn(module, "race", config=config, node=node) for node in (1, 2, 1, 2)]
    for racer in racers:
        first.send(racer, struct.pack("<q", 0), tag=7)
    results = []
    for racer in racers:
        finished = first.join(racer, TIMEOUT)
        assert finished is not None and finished.outcome is Outcome.NORMAL, finished
        results.append(finished.result)
    assert sorted(code for code, _ in results) == [0, 2, 2, 2]
    assert len({pid for _, pid in results}) == 1
    first.kill(results[0][1])


def test_a_guest_linked_to_a_process_on_another_node_hears_of_its_failure(
    nodes: tuple[Runtime, Runtime],
) -> None:
    first, second = nodes
    links = first.load_module(GUESTS / "sig_links.wat")
    doomed = second.spawn(second.load_module(GUESTS / "sig_links.wat"), "trap_after_msg")
    watcher = first.spawn(links, "link_and_wait", (doomed,))
    assert first.exists(watcher)
    second.send(doomed, b"die")  # dead before or after the link arrives: LinkDied either way
    watched = first.join(watcher, TIMEOUT)
    assert watched is not None and watched.result == (int(Kind.LINK_DIED), 11, doomed)


def test_a_sender_to_a_node_whose_link_does_not_drain_is_paused() -> None:
    """Node 2 accepts connections and never answers: what is sent there queues up to the link's
    bound (MAX_QUEUED_BYTES), then the rings to the supervisor fill, and the sender (whose plain
    sends go into its worker's batch in C while the way is clear) is paused, not left to queue
    without bound in its worker: it never finishes."""
    silent = socket.create_server(("127.0.0.1", 0))
    gateway = Gateway(1, SECRET)
    try:
        with Runtime(workers=1, gateway=gateway) as runtime:
            gateway.set_nodes({1: (gateway.address, {}), 2: (silent.getsockname()[:2], {})})
            peer = gateway._peers[2]
            module = runtime.load_module(GUESTS / "rt_basic.wat")
            count = 2 * MAX_QUEUED_BYTES // 64  # twice the bound in records, each more than 64 bytes
            sender = runtime.spawn(module, "send_seq", (make_pid(2, 5, 1), count))
            ended, outcome = threading.Event(), []
            runtime.on_finished(sender, lambda finished: (outcome.append(finished), ended.set()))
            with peer.changed:
                assert peer.changed.wait_for(lambda: len(peer.outgoing) >= MAX_QUEUED_BYTES, TIMEOUT)
            # the supervisor's pump waits for the link without the runtime's lock: the host
            # program's calls go on, and a join's timeout is kept
            started = time.monotonic()
            assert runtime.join(sender, timeout=0.2) is None
            assert time.monotonic() - started < TIMEOUT / 2
            assert runtime.worker_ids
            assert not ended.wait(2.0), "it sent everything: no backpressure"
            assert len(peer.outgoing) < 2 * MAX_QUEUED_BYTES  # the rings wait, not the link's queue
            gateway.node_lost(2, "the test is over")  # the sender's messages now go nowhere
            assert ended.wait(TIMEOUT)
            assert isinstance(outcome[0], Finished) and outcome[0].outcome is Outcome.NORMAL
    finally:
        silent.close()
