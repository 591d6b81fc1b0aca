"""Native processes on a Runtime's workers: shipped with cloudpickle, messaging, linking and
registering with Wasm processes across workers, and spawned from the host program and asyncio."""

from __future__ import annotations

import asyncio
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lunatic_mp import (
    AsyncRuntime,
    Context,
    EnvConfig,
    Environment,
    Module,
    Outcome,
    PythonProcess,
    Runtime,
    SpawnError,
    examples,
)
from lunatic_mp.pids import worker_of
from lunatic_mp.vm.mailbox import Kind

GUESTS = Path(__file__).parents[1] / "guests"
EXAMPLES = examples.DIRECTORY
TIMEOUT = 30


@pytest.fixture(scope="module")
def runtime() -> Iterator[Runtime]:
    with Runtime(workers=2) as rt:
        yield rt


@pytest.fixture(scope="module")
def env(runtime: Runtime) -> Environment:
    return runtime.environment(EnvConfig.permissive())


@pytest.fixture(scope="module")
def requests_guest(runtime: Runtime) -> Module:
    return runtime.load_module(EXAMPLES / "msg_request.wat")


@pytest.fixture(scope="module")
def links_guest(runtime: Runtime) -> Module:
    return runtime.load_module(GUESTS / "fail_links.wat")


def upper_echo(ctx: Context) -> int:
    served = 0
    while True:
        message = ctx.receive()
        assert message is not None
        if message.data == b"stop":
            return served
        ctx.send(message.pid, message.data.upper(), message.tag)
        served += 1


def test_spawn_request_join(env: Environment) -> None:
    server = env.spawn_native(upper_echo)
    assert isinstance(server, PythonProcess)
    assert server.request(b"hello", timeout=TIMEOUT).data == b"HELLO"
    assert server.is_alive()
    server.send(b"stop")
    finished = server.join(TIMEOUT)
    assert finished is not None and finished.ok and finished.result == (1,)


def test_closures_and_arguments_travel(env: Environment) -> None:
    offset = 1000

    def add(ctx: Context, a: int, *, b: int) -> int:
        return a + b + offset

    finished = env.spawn_native(add, (1,), {"b": 2}).join(TIMEOUT)
    assert finished is not None and finished.result == (1003,)


def test_failures_come_back_with_a_python_backtrace(env: Environment) -> None:
    def broken(ctx: Context) -> None:
        {}["missing"]

    finished = env.spawn_native(broken).join(TIMEOUT)
    assert finished is not None and finished.outcome is Outcome.FAILED
    assert finished.message == "KeyError: 'missing'"
    assert finished.backtrace and finished.backtrace[-1].startswith("broken at ")


def test_every_worker_runs_native_processes(runtime: Runtime, env: Environment) -> None:
    def where(ctx: Context) -> int:
        return worker_of(ctx.id)

    workers = {env.spawn_native(where, worker=w).join(TIMEOUT).result[0] for w in runtime.worker_ids}  # type: ignore[union-attr]
    assert workers == set(runtime.worker_ids)


def test_native_requests_a_wasm_server_on_another_worker(
    runtime: Runtime, env: Environment, requests_guest: Module
) -> None:
    first, second = runtime.worker_ids[:2]
    server = env.spawn(requests_guest, "server", worker=first)

    def client(ctx: Context, server: int) -> int:
        reply = ctx.request(server, struct.pack("<qq", ctx.id, 21), timeout=TIMEOUT)
        return int(struct.unpack("<q", reply.data)[0])

    assert env.spawn_native(client, (server.id,), worker=second).join(TIMEOUT).result == (42,)  # type: ignore[union-attr]
    server.kill()


def test_wasm_client_requests_a_native_server_on_another_worker(
    runtime: Runtime, env: Environment, requests_guest: Module
) -> None:
    def server(ctx: Context) -> None:
        while True:
            message = ctx.receive()
            assert message is not None
            reply_to, x = struct.unpack("<qq", message.data)
            ctx.send(reply_to, struct.pack("<q", 1), tag=0)
            ctx.send(reply_to, struct.pack("<q", 2 * x), tag=message.tag)

    first, second = runtime.worker_ids[:2]
    native_server = env.spawn_native(server, worker=first)
    client = env.spawn(requests_guest, "client", [native_server.id, 5, 21], worker=second)
    assert client.join(TIMEOUT).result == (0, 5, 42, 9901)  # type: ignore[union-attr]
    native_server.kill()


def test_a_native_process_dies_with_a_linked_wasm_process(
    runtime: Runtime, env: Environment, links_guest: Module
) -> None:
    """Linked across workers (the child is placed round robin): the Wasm child is killed, and
    the native parent dies with it."""

    def parent(ctx: Context, guest: Module, probe: int) -> None:
        child = ctx.spawn(guest, "park", link=3)
        ctx.send(probe, struct.pack("<q", child))
        ctx.receive()

    runtime_pid = runtime.pid
    process = env.spawn_native(parent, (links_guest, runtime_pid))
    child = struct.unpack("<q", runtime.receive(timeout=TIMEOUT).data)[0]  # type: ignore[union-attr]
    runtime.kill(child, "test kill")  # a kill is a failure: it spreads through the link
    finished = process.join(TIMEOUT)
    assert finished is not None and finished.outcome is Outcome.KILLED
    assert f"linked process {child}" in finished.message and "test kill" in finished.message


def test_trapping_link_deaths_natively(runtime: Runtime, env: Environment, links_guest: Module) -> None:
    def parent(ctx: Context, guest: Module) -> list[Any]:
        ctx.die_when_link_dies = False
        child = ctx.spawn(guest, "trap", link=8)
        message = ctx.receive(timeout=TIMEOUT)
        assert message is not None
        return [int(message.kind), message.tag, message.pid == child]

    finished = env.spawn_native(parent, (links_guest,)).join(TIMEOUT)
    assert finished is not None and finished.result == ([int(Kind.LINK_DIED), 8, True],)


def test_wasm_monitors_a_native_process(runtime: Runtime, env: Environment, links_guest: Module) -> None:
    target = env.spawn_native(upper_echo)
    watcher = env.spawn(links_guest, "monitor_pid", [target.id, TIMEOUT * 1000])
    target.send(b"stop")
    assert watcher.join(TIMEOUT).result == (int(Kind.PROCESS_DIED), target.id)  # type: ignore[union-attr]


def test_registry_between_native_wasm_and_host(runtime: Runtime, env: Environment) -> None:
    def service(ctx: Context, ready_to: int) -> None:
        ctx.registry.put("native-svc", "1.4.0", ctx.id)
        ctx.send(ready_to, b"registered")
        upper_echo(ctx)

    def client(ctx: Context) -> bytes:
        pid = ctx.registry.get("native-svc", "^1.2")
        assert pid is not None
        return ctx.request(pid, b"via the registry", timeout=TIMEOUT).data

    server = env.spawn_native(service, (runtime.pid,))
    assert runtime.receive(timeout=TIMEOUT).data == b"registered"  # type: ignore[union-attr]
    assert env.spawn_native(client).join(TIMEOUT).result == (b"VIA THE REGISTRY",)  # type: ignore[union-attr]
    assert runtime.registry.get("native-svc", "1") == server
    server.send(b"stop")
    assert server.join(TIMEOUT) is not None


def test_native_spawns_native_and_wasm_across_workers(
    runtime: Runtime, env: Environment, requests_guest: Module
) -> None:
    def square(ctx: Context, reply_to: int, n: int) -> None:
        ctx.send(reply_to, struct.pack("<q", n * n), tag=n)

    def fan_out(ctx: Context, guest: Module) -> list[Any]:
        children = [ctx.spawn_native(square, ctx.id, n) for n in range(1, 5)]
        squares = sorted(struct.unpack("<q", ctx.receive(tags=[n]).data)[0] for n in range(1, 5))  # type: ignore[union-attr]
        server = ctx.spawn(guest, "server")
        reply = ctx.request(server, struct.pack("<qq", ctx.id, 8), timeout=TIMEOUT)
        ctx.kill(server)
        return [squares, len({worker_of(c) for c in children}), struct.unpack("<q", reply.data)[0]]

    finished = env.spawn_native(fan_out, (requests_guest,)).join(TIMEOUT)
    assert finished is not None and finished.result == ([[1, 4, 9, 16], 2, 16],)


def test_host_kills_a_native_process(env: Environment) -> None:
    process = env.spawn_native(upper_echo)
    assert process.request(b"x", timeout=TIMEOUT).data == b"X"
    process.kill()
    finished = process.join(TIMEOUT)
    assert finished is not None and finished.outcome is Outcome.KILLED


def test_unpicklable_functions_are_refused(env: Environment) -> None:
    lock = threading.Lock()

    def holds_a_lock(ctx: Context) -> None:
        with lock:
            pass

    with pytest.raises(SpawnError, match="cannot pickle"):
        env.spawn_native(holds_a_lock)


class _LoadBomb:
    """Pickles fine; fails when a worker loads it."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_explode, ("no such thing on the worker",))


def _explode(reason: str) -> None:
    raise ImportError(reason)


def test_a_function_that_cannot_load_on_the_worker_is_a_spawn_error(env: Environment) -> None:
    with pytest.raises(SpawnError, match="cannot load the native process's function here: ImportError"):
        env.spawn_native(lambda ctx, bomb: None, (_LoadBomb(),))
    assert env.spawn_native(lambda ctx: 1).join(TIMEOUT).result == (1,)  # type: ignore[union-attr]


def test_spawn_past_capacity() -> None:
    with Runtime(workers=1, max_processes_per_worker=1) as rt:
        env = rt.environment()
        first = env.spawn_native(upper_echo)
        with pytest.raises(SpawnError, match="capacity"):
            env.spawn_native(upper_echo)
        first.kill()
        assert first.join(TIMEOUT) is not None


def test_async_runtime_spawns_coroutine_functions() -> None:
    async def doubler(ctx: Any) -> int:
        message = await ctx.receive(timeout=TIMEOUT)
        ctx.send(message.pid, message.data * 2, message.tag)
        return len(message.data)

    async def main() -> tuple[bytes, Any]:
        async with AsyncRuntime(workers=2) as rt:
            process = await rt.spawn_native(doubler)
            reply = await process.request(b"ab", timeout=TIMEOUT)
            return reply.data, await process.join(TIMEOUT)

    data, finished = asyncio.run(main())
    assert data == b"abab"
    assert finished.ok and finished.result == (2,)
