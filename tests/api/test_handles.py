"""End-to-end tests of the Python API's handles (:mod:`lunatic_mp.api.handles`) on a real runtime.

Processes run on two worker processes: request/reply between the host program and a guest (also
from several threads at once), join, is_alive, kill, monitor and links through handles,
environments that enforce their limits and permissions, and the registry with versions. The
tests share one runtime and leave no process of theirs alive.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from lunatic_mp import EnvConfig, Module, Outcome
from lunatic_mp.api.handles import REQUEST_TAG_BASE, Environment, Process, Registry, WasmProcess, fresh_tag
from lunatic_mp.api.runtime import Runtime
from lunatic_mp.vm.mailbox import DeathReason, Kind

GUESTS = Path(__file__).parents[1] / "guests"
TIMEOUT = 30.0
STOP = 9  # the tag that ends api_guest.wat's `park`


@pytest.fixture(scope="module")
def runtime() -> Iterator[Runtime]:
    with Runtime(workers=2) as rt:
        yield rt


@pytest.fixture(scope="module")
def guest(runtime: Runtime) -> Module:
    return runtime.load_module(GUESTS / "api_guest.wat")


@pytest.fixture(scope="module")
def env(runtime: Runtime) -> Environment:
    return Environment(runtime, EnvConfig.permissive())


def stop(process: WasmProcess) -> None:
    """Let a parked process return, and check that it did."""
    process.send(b"", tag=STOP)
    finished = process.join(TIMEOUT)
    assert finished is not None and finished.ok and finished.result == (9,), finished


def test_spawn_and_join(env: Environment, guest: Module) -> None:
    process = env.spawn(guest, "add", (40, 2))
    finished = process.join(TIMEOUT)
    assert finished is not None and finished.ok and finished.result == (42,)
    assert process.join(0) == finished  # a second join returns the same result


def test_handles_are_values(runtime: Runtime, env: Environment, guest: Module) -> None:
    process = env.spawn(guest, "seven")
    same = WasmProcess(runtime, process.id)
    assert process == same and hash(process) == hash(same) and process != WasmProcess(runtime, 1)
    assert len({process, same}) == 1
    assert f"{process.id:#x}" in repr(process)
    assert isinstance(process, Process)
    assert process.join(TIMEOUT) is not None


def test_request_reply(env: Environment, guest: Module) -> None:
    echo = env.spawn(guest, "echo", (3,))
    reply = echo.request(b"hello", timeout=TIMEOUT)
    assert reply.kind is Kind.DATA and bytes(reply.data) == b"hello" and reply.pid == echo.id
    assert reply.tag >= REQUEST_TAG_BASE
    assert bytes(echo.request(b"", timeout=TIMEOUT).data) == b""
    assert echo.request(b"x" * 1000, tag=77, timeout=TIMEOUT).tag == 77
    finished = echo.join(TIMEOUT)
    assert finished is not None and finished.result == (3,)


def test_request_times_out(env: Environment, guest: Module) -> None:
    parked = env.spawn(guest, "park")
    with pytest.raises(TimeoutError, match="did not reply"):
        parked.request(b"anyone?", tag=5, timeout=0.05)
    stop(parked)


def test_concurrent_requests_from_threads(env: Environment, guest: Module) -> None:
    threads, each = 4, 50
    echo = env.spawn(guest, "echo", (threads * each,))

    def client(index: int) -> list[bytes]:
        return [bytes(echo.request(struct.pack("<ii", index, i), timeout=TIMEOUT).data) for i in range(each)]

    with ThreadPoolExecutor(threads) as pool:
        answers = list(pool.map(client, range(threads)))
    for index, replies in enumerate(answers):
        assert replies == [struct.pack("<ii", index, i) for i in range(each)]
    finished = echo.join(TIMEOUT)
    assert finished is not None and finished.result == (threads * each,)


def test_fresh_tags_are_unique() -> None:
    with ThreadPoolExecutor(4) as pool:
        tags = list(pool.map(lambda _: fresh_tag(), range(1000)))
    assert len(set(tags)) == 1000 and min(tags) >= REQUEST_TAG_BASE


def test_is_alive_kill_join(env: Environment, guest: Module) -> None:
    process = env.spawn(guest, "spin")
    assert process.is_alive()
    assert process.join(0) is None  # still running: a timeout, then join again below
    process.kill()
    finished = process.join(TIMEOUT)
    assert finished is not None and finished.outcome is Outcome.KILLED
    assert not process.is_alive()


def test_monitor(runtime: Runtime, env: Environment, guest: Module) -> None:
    process = env.spawn(guest, "park")
    process.monitor()
    stop(process)
    notice = runtime.receive(tags=(0,), timeout=TIMEOUT)
    assert notice is not None and notice.kind is Kind.PROCESS_DIED and notice.pid == process.id


def test_link_two_processes(env: Environment, guest: Module) -> None:
    first, second = env.spawn(guest, "park", worker=None), env.spawn(guest, "park")
    first.link(second, tag=3)
    first.kill()
    finished = second.join(TIMEOUT)  # killed by the link: a kill is a failure
    assert finished is not None and not finished.ok, finished


def test_unlink(env: Environment, guest: Module) -> None:
    first, second = env.spawn(guest, "park"), env.spawn(guest, "park")
    first.link(second, tag=3)
    first.unlink(second)
    first.kill()
    assert first.join(TIMEOUT) is not None
    assert second.is_alive()
    stop(second)


def test_link_to_the_host_program(runtime: Runtime, env: Environment, guest: Module) -> None:
    process = env.spawn(guest, "park")
    process.link(runtime.pid, tag=4242)
    process.kill()
    notice = runtime.receive(tags=(4242,), timeout=TIMEOUT)
    assert notice is not None and notice.kind is Kind.LINK_DIED and notice.pid == process.id
    assert notice.reason is DeathReason.FAILURE
    assert process.join(TIMEOUT) is not None


def test_spawn_linked_to_the_host(runtime: Runtime, env: Environment, guest: Module) -> None:
    process = env.spawn(guest, "park", link=(runtime.pid, 4343))
    process.kill()
    notice = runtime.receive(tags=(4343,), timeout=TIMEOUT)
    assert notice is not None and notice.kind is Kind.LINK_DIED and notice.pid == process.id
    assert process.join(TIMEOUT) is not None


# --- environments ------------------------------------------------------------------------------


def test_environment_enforces_max_fuel(runtime: Runtime, guest: Module) -> None:
    limited = Environment(runtime, EnvConfig(max_fuel=10))
    finished = limited.spawn(guest, "spin").join(TIMEOUT)
    assert finished is not None and finished.outcome is Outcome.FAILED
    assert "fuel" in finished.message.lower(), finished
    assert limited.spawn(guest, "add", (1, 2)).join(TIMEOUT).result == (3,)  # type: ignore[union-attr]


def test_environment_enforces_can_spawn_processes(runtime: Runtime, guest: Module) -> None:
    denied = Environment(runtime, EnvConfig(can_spawn_processes=False))
    finished = denied.spawn(guest, "spawn_child").join(TIMEOUT)
    assert finished is not None and finished.outcome is Outcome.FAILED, finished
    allowed = Environment(runtime, EnvConfig(can_spawn_processes=True))
    finished = allowed.spawn(guest, "spawn_child").join(TIMEOUT)
    assert finished is not None and finished.ok and finished.result == (0,), finished


def test_environment_copies_its_config(runtime: Runtime) -> None:
    config = EnvConfig(max_fuel=5)
    environment = Environment(runtime, config)
    config.max_fuel = 0
    assert environment.config.max_fuel == 5
    assert environment.id != Environment(runtime, config).id
    assert "Environment" in repr(environment)


# --- the registry ------------------------------------------------------------------------------


def test_registry_versions(env: Environment, guest: Module) -> None:
    registry = env.registry
    old, new = env.spawn(guest, "park"), env.spawn(guest, "park")
    registry.put("api-svc", "1.2.0", old)
    registry.put("api-svc", "1.4.1", new)
    assert registry.get("api-svc") == new
    assert registry.get("api-svc", "^1.2") == new
    assert registry.get("api-svc", "~1.2") == old
    assert registry.get("api-svc", "=1.2.0") == old
    assert registry.get("api-svc", "2") is None
    registry.remove("api-svc", "1.4.1")
    assert registry.get("api-svc") == old
    registry.remove("api-svc")
    assert registry.get("api-svc") is None
    stop(old)
    stop(new)


def test_registry_unversioned_and_invalid(runtime: Runtime, env: Environment, guest: Module) -> None:
    process = env.spawn(guest, "park")
    registry = Registry(runtime)
    registry.put("api-solo", None, process.id)
    found = registry.get("api-solo")
    assert found == process and found is not None and found.is_alive()
    with pytest.raises(ValueError, match="separately"):
        registry.put("api-solo@1.0.0", None, process)
    with pytest.raises(ValueError, match="prefix"):
        Registry(runtime, "a@b")
    stop(process)
    registry.remove("api-solo")


def test_isolated_registries(runtime: Runtime, env: Environment, guest: Module) -> None:
    one = Environment(runtime, EnvConfig(), isolated_registry=True)
    two = Environment(runtime, EnvConfig(), isolated_registry=True)
    process = env.spawn(guest, "park")
    one.registry.put("api-iso", "1.0.0", process)
    assert one.registry.get("api-iso") == process
    assert two.registry.get("api-iso") is None
    assert env.registry.get("api-iso") is None
    assert runtime.registry_get(f"env{one.id}/api-iso@1.0.0") == process.id
    one.registry.remove("api-iso")
    stop(process)
