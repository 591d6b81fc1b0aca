"""Native processes (lunatic_mp.vm.native) in one engine: Python functions with a process's semantics,
beside Wasm processes. The runtime-level tests (across workers) are in test_native_runtime.py."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from typing import Any

import pytest
from conftest import finish, start

from lunatic_mp import ContextError, Engine, EnvConfig, Finished, Module, Outcome, SpawnError
from lunatic_mp.vm.mailbox import Kind
from lunatic_mp.vm.native import Context, NativeProcess, ProcessKilled


def native(engine: Engine, function: Callable[..., Any], *args: Any, **kwargs: Any) -> NativeProcess:
    return engine.spawn_native(function, args, kwargs, EnvConfig.permissive())


def done(engine: Engine, process: NativeProcess) -> Finished:
    finished = engine.run_until_finished(process, timeout=30)
    assert finished is not None, f"{process} did not finish"
    return finished


def echo(ctx: Context) -> int:
    """Answers every data message to its sender with the same tag, uppercased, until b"stop"."""
    served = 0
    while True:
        message = ctx.receive()
        assert message is not None
        if message.data == b"stop":
            return served
        ctx.send(message.pid, message.data.upper(), message.tag)
        served += 1


def test_request_reply_between_native_processes(engine: Engine) -> None:
    server = native(engine, echo)

    def client(ctx: Context, server: int) -> list[bytes]:
        replies = [ctx.request(server, word).data for word in (b"one", b"two")]
        ctx.send(server, b"stop")
        return replies

    caller = native(engine, client, server.pid)
    assert done(engine, caller).result == ([b"ONE", b"TWO"],)
    assert done(engine, server).result == (2,)


def test_the_return_value_is_the_result(engine: Engine) -> None:
    assert done(engine, native(engine, lambda ctx: {"a": [1, 2.5, "x", b"y", None]})).result == (
        {"a": [1, 2.5, "x", b"y", None]},
    )
    assert done(engine, native(engine, lambda ctx: None)).result == ()


def test_a_result_that_cannot_travel_fails_the_process(engine: Engine) -> None:
    finished = done(engine, native(engine, lambda ctx: object()))
    assert finished.outcome is Outcome.FAILED
    assert "returned a object, which cannot be sent back" in finished.message


def test_an_exception_fails_the_process_with_a_backtrace(engine: Engine) -> None:
    def inner(value: int) -> None:
        raise ValueError(f"bad value {value}")

    def outer(ctx: Context, value: int) -> None:
        inner(value)

    finished = done(engine, native(engine, outer, 3))
    assert finished.outcome is Outcome.FAILED
    assert finished.message == "ValueError: bad value 3"
    assert [line.split(" at ")[0] for line in finished.backtrace] == ["outer", "inner"]


def test_sys_exit(engine: Engine) -> None:
    def leave(ctx: Context, code: int) -> None:
        raise SystemExit(code)

    assert done(engine, native(engine, leave, 0)) == Finished(Outcome.NORMAL, exit_code=0)
    failed = done(engine, native(engine, leave, 3))
    assert (failed.outcome, failed.exit_code) == (Outcome.FAILED, 3)


def test_selective_receive_and_timeouts(engine: Engine) -> None:
    def picky(ctx: Context) -> list[Any]:
        ctx.send(ctx.id, b"a", tag=1)
        ctx.send(ctx.id, b"b", tag=2)
        second = ctx.receive(tags=[2])
        first = ctx.receive(tags=[1, 3])
        nothing = ctx.receive(timeout=0)
        late = ctx.receive(tags=[7], timeout=0.01)
        return [second.data if second else None, first.data if first else None, nothing, late]

    assert done(engine, native(engine, picky)).result == ([b"b", b"a", None, None],)


def test_sleep_and_yield_let_others_run(engine: Engine) -> None:
    order: list[str] = []

    def sleeper(ctx: Context) -> None:
        ctx.sleep(0.02)
        order.append("sleeper")

    def yielder(ctx: Context, name: str) -> None:
        for i in range(3):
            order.append(f"{name}{i}")
            ctx.yield_now()

    native(engine, sleeper)
    native(engine, yielder, "a")
    native(engine, yielder, "b")
    engine.run(timeout=30)
    assert order == ["a0", "b0", "a1", "b1", "a2", "b2", "sleeper"]


def test_a_native_process_requests_from_a_wasm_server(engine: Engine, load: Callable[[str], Module]) -> None:
    """msg_request.wat's server answers (reply-to pid, x) with noise (tag 0), then 2x with the
    request's tag."""
    server = start(engine, load("msg_request.wat"), "server")

    def client(ctx: Context, server: int) -> list[int]:
        reply = ctx.request(server, struct.pack("<qq", ctx.id, 21), tag=77)
        noise = ctx.receive(timeout=0)
        assert noise is not None
        return [reply.tag, struct.unpack("<q", reply.data)[0], noise.tag]

    assert done(engine, native(engine, client, server.pid)).result == ([77, 42, 0],)


def test_a_wasm_client_requests_from_a_native_server(engine: Engine, load: Callable[[str], Module]) -> None:
    def server(ctx: Context) -> None:
        while True:
            message = ctx.receive()
            assert message is not None
            reply_to, x = struct.unpack("<qq", message.data)
            ctx.send(reply_to, struct.pack("<q", 1), tag=0)  # noise, as msg_request.wat's server
            ctx.send(reply_to, struct.pack("<q", 2 * x), tag=message.tag)

    native_server = native(engine, server)
    client = start(engine, load("msg_request.wat"), "client", native_server.pid, 5, 21)
    assert finish(engine, client).result == (0, 5, 42, 9901)


def test_a_native_process_spawns_a_linked_wasm_child_that_traps(
    engine: Engine, load: Callable[[str], Module]
) -> None:
    guest = load("fail_links.wat")

    def parent(ctx: Context) -> list[int]:
        ctx.die_when_link_dies = False
        child = ctx.spawn(guest, "trap", link=5)
        message = ctx.receive()
        assert message is not None
        return [int(message.kind), message.tag, message.pid == child]

    assert done(engine, native(engine, parent)).result == ([int(Kind.LINK_DIED), 5, True],)


def test_a_linked_failure_kills_a_native_process_and_unwinds_it(
    engine: Engine, load: Callable[[str], Module]
) -> None:
    guest = load("fail_links.wat")
    cleaned: list[str] = []

    def parent(ctx: Context) -> None:
        try:
            ctx.spawn(guest, "trap", link=1)
            ctx.receive()
        finally:
            cleaned.append("finally")

    finished = done(engine, native(engine, parent))
    assert finished.outcome is Outcome.KILLED
    assert "linked process" in finished.message and "unreachable" in finished.message
    engine.run(timeout=5)  # the next round unwinds the killed process's stack
    assert cleaned == ["finally"]


def test_monitor_a_wasm_process(engine: Engine, load: Callable[[str], Module]) -> None:
    guest = load("api_guest.wat")
    seven = start(engine, guest, "seven")

    def watch(ctx: Context, pid: int) -> list[int]:
        ctx.monitor(pid)
        message = ctx.receive()
        assert message is not None
        return [int(message.kind), message.pid]

    assert done(engine, native(engine, watch, seven.pid)).result == ([int(Kind.PROCESS_DIED), seven.pid],)


def test_a_wasm_process_kills_a_native_one(engine: Engine, load: Callable[[str], Module]) -> None:
    """The kill comes from a host call inside a Wasm fiber: the native process's stack is
    unwound afterwards, from the scheduler, never from the fiber."""
    guest = load("fail_links.wat")
    unwound: list[bool] = []

    def victim(ctx: Context) -> None:
        try:
            ctx.receive()
        finally:
            unwound.append(True)

    target = native(engine, victim)
    killer = start(engine, guest, "kill_pid", target.pid)
    assert finish(engine, killer).result == (int(Kind.PROCESS_DIED), target.pid)
    assert target.finished == Finished(Outcome.KILLED, message=f"killed by process {killer.pid}")
    engine.run(timeout=5)
    assert unwound == [True]


def test_a_native_process_kills_itself(engine: Engine) -> None:
    steps: list[str] = []

    def suicide(ctx: Context) -> None:
        try:
            ctx.kill(ctx.id, "enough")
            steps.append("after kill")  # never runs
        except ProcessKilled as killed:
            steps.append(f"killed: {killed.reason}")
            raise

    finished = done(engine, native(engine, suicide))
    assert finished == Finished(Outcome.KILLED, message="enough")
    assert steps == ["killed: enough"]


def test_killing_a_native_process_that_never_ran(engine: Engine) -> None:
    process = native(engine, echo)
    assert engine.kill(process.pid)
    assert process.finished == Finished(Outcome.KILLED, message="killed")
    engine.run(timeout=5)


def test_registry(engine: Engine) -> None:
    def register(ctx: Context) -> list[Any]:
        ctx.registry.put("svc", "1.2.0", ctx.id)
        ctx.registry.put("svc", "2.0.0", 12345)
        found = [ctx.registry.get("svc", "^1"), ctx.registry.get("svc"), ctx.registry.get("nope")]
        ctx.registry.remove("svc", "2.0.0")
        return [*found, ctx.registry.get("svc")]

    process = native(engine, register)
    assert done(engine, process).result == ([process.pid, 12345, None, process.pid],)
    assert engine.registry.get("svc") is None  # its names go with it


def test_spawn_native_children(engine: Engine) -> None:
    def child(ctx: Context, parent: int, n: int) -> None:
        ctx.send(parent, str(n * n).encode())

    def parent(ctx: Context) -> list[int]:
        for n in range(3):
            ctx.spawn_native(child, ctx.id, n)
        return sorted(int(ctx.receive().data) for _ in range(3))  # type: ignore[union-attr]

    assert done(engine, native(engine, parent)).result == ([0, 1, 4],)


async def async_echo(ctx: Any, rounds: int) -> int:
    for _ in range(rounds):
        message = await ctx.receive()
        ctx.send(message.pid, message.data[::-1], message.tag)
        await ctx.yield_now()
    await ctx.sleep(0)
    return rounds


def test_coroutine_functions(engine: Engine) -> None:
    server = native(engine, async_echo, 2)

    async def client(ctx: Any, server: int) -> list[bytes]:
        return [(await ctx.request(server, b"abc")).data, (await ctx.request(server, b"xy")).data]

    assert done(engine, native(engine, client, server.pid)).result == ([b"cba", b"yx"],)
    assert done(engine, server).result == (2,)


def test_a_coroutine_that_awaits_something_else_fails_clearly(engine: Engine) -> None:
    async def wrong(ctx: Any) -> None:
        await asyncio.sleep(0)

    finished = done(engine, native(engine, wrong))
    assert finished.outcome is Outcome.FAILED
    assert "ContextError" in finished.message and "only await its context's calls" in finished.message


def test_a_context_belongs_to_its_process(engine: Engine) -> None:
    stolen: list[Context] = []

    def victim(ctx: Context) -> None:
        stolen.append(ctx)
        ctx.receive()

    def thief(ctx: Context) -> str:
        try:
            stolen[0].send(ctx.id, b"x")
        except ContextError as exc:
            return str(exc)
        return "no error"

    victim_process = native(engine, victim)
    assert "can only be used by that process" in done(engine, native(engine, thief)).result[0]
    engine.kill(victim_process.pid)
    engine.run(timeout=5)
    with pytest.raises(ContextError, match="has ended"):
        stolen[0].send(1, b"x")


def test_bad_input_fails_only_that_process(engine: Engine) -> None:
    survivor = native(engine, echo)
    for bad in (
        lambda ctx: ctx.send(survivor.pid, "text, not bytes"),
        lambda ctx: ctx.send(survivor.pid, b"x", tag=2**64),
        lambda ctx: ctx.send("not a pid", b"x"),
        lambda ctx: ctx.receive(timeout=-1),
        lambda ctx: ctx.spawn_native("not callable"),
        lambda ctx: ctx.send(survivor.pid, bytes(engine.max_message_size + 1)),
    ):
        assert done(engine, native(engine, bad)).outcome is Outcome.FAILED
    with pytest.raises(SpawnError, match="runs a function"):
        engine.spawn_native("not callable")  # type: ignore[arg-type]

    def client(ctx: Context) -> bytes:
        return ctx.request(survivor.pid, b"still here").data

    assert done(engine, native(engine, client)).result == (b"STILL HERE",)


def test_capacity_counts_native_processes() -> None:
    engine = Engine(max_processes=2)
    try:
        engine.spawn_native(echo)
        engine.spawn_native(echo)
        with pytest.raises(SpawnError, match="capacity"):
            engine.spawn_native(echo)
    finally:
        engine.close()


def test_closing_the_engine_unwinds_native_processes() -> None:
    engine = Engine()
    unwound: list[bool] = []

    def waiter(ctx: Context) -> None:
        try:
            ctx.receive()
        finally:
            unwound.append(True)

    engine.spawn_native(waiter)
    engine.run(timeout=5)
    engine.close()
    assert unwound == [True]
