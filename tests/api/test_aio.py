"""End-to-end tests of :class:`lunatic_mp.api.aio.AsyncRuntime` with real workers.

The tests share one event loop and one two-worker runtime started on it (pytest-asyncio is not
used: each test runs its coroutine with ``loop.run_until_complete``). They cover spawn and join,
the host program's mailbox (receive with tags, timeouts, cancellation), request/reply (also many
at once), the registry with versions, environments, and that the loop never blocks meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lunatic_mp import EnvConfig, Module, Outcome
from lunatic_mp.api.aio import AsyncRuntime, AsyncWasmProcess
from lunatic_mp.errors import EngineClosed
from lunatic_mp.vm.mailbox import Kind

GUESTS = Path(__file__).parents[1] / "guests"
TIMEOUT = 30.0
STOP = 9  # the tag that ends api_guest.wat's `park`


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def rt(loop: asyncio.AbstractEventLoop) -> Iterator[AsyncRuntime]:
    runtime = loop.run_until_complete(AsyncRuntime(workers=2).start())
    yield runtime
    loop.run_until_complete(runtime.close())


@pytest.fixture(scope="module")
def guest(loop: asyncio.AbstractEventLoop, rt: AsyncRuntime) -> Module:
    return loop.run_until_complete(rt.load_module(GUESTS / "api_guest.wat"))


PERMISSIVE = EnvConfig.permissive()


async def stop(process: AsyncWasmProcess) -> None:
    process.send(b"", tag=STOP)
    finished = await process.join(TIMEOUT)
    assert finished is not None and finished.ok, finished


def test_async_with_end_to_end() -> None:
    """The whole life of an AsyncRuntime in one ``asyncio.run``."""

    async def main() -> tuple[int, ...]:
        async with AsyncRuntime(workers=2) as rt:
            module = await rt.load_module(GUESTS / "api_guest.wat")
            process = await rt.spawn(module, "add", (2, 3), PERMISSIVE)
            finished = await rt.join(process)
            assert finished is not None
            return tuple(int(v) for v in finished.result if isinstance(v, int))

    assert asyncio.run(main()) == (5,)


def test_not_started() -> None:
    with pytest.raises(EngineClosed, match="not started"):
        AsyncRuntime().send(1, b"")


def test_spawn_join(loop: asyncio.AbstractEventLoop, rt: AsyncRuntime, guest: Module) -> None:
    async def main() -> None:
        processes = await asyncio.gather(*(rt.spawn(guest, "add", (i, i), PERMISSIVE) for i in range(20)))
        results = await asyncio.gather(*(p.join(TIMEOUT) for p in processes))
        assert [r.result if r else None for r in results] == [(2 * i,) for i in range(20)]
        assert len({p.id for p in processes}) == 20

    loop.run_until_complete(main())


def test_join_timeout_then_join(loop: asyncio.AbstractEventLoop, rt: AsyncRuntime, guest: Module) -> None:
    async def main() -> None:
        process = await rt.spawn(guest, "park", config=PERMISSIVE)
        assert await process.join(0.01) is None
        assert await process.is_alive()
        await stop(process)  # joins again, after the timeout
        assert not await rt.exists(process)

    loop.run_until_complete(main())


def test_kill_and_monitor(loop: asyncio.AbstractEventLoop, rt: AsyncRuntime, guest: Module) -> None:
    async def main() -> None:
        process = await rt.spawn(guest, "spin", config=PERMISSIVE)
        process.monitor()
        process.kill()
        notice = await rt.receive(tags=(0,), timeout=TIMEOUT)
        assert notice is not None and notice.kind is Kind.PROCESS_DIED and notice.pid == process.id
        finished = await process.join(TIMEOUT)
        assert finished is not None and finished.outcome is Outcome.KILLED

    loop.run_until_complete(main())


def test_receive_and_request(loop: asyncio.AbstractEventLoop, rt: AsyncRuntime, guest: Module) -> None:
    async def main() -> None:
        echo = await rt.spawn(guest, "echo", (102,), PERMISSIVE)
        # replies with tags 11 and 12 arrive; a receive for 12 leaves 11 in the mailbox
        rt.send(echo, b"eleven", tag=11)
        rt.send(echo.id, b"twelve", tag=12)
        twelve = await rt.receive(tags=[12], timeout=TIMEOUT)
        eleven = await rt.receive(timeout=TIMEOUT)
        assert twelve is not None and bytes(twelve.data) == b"twelve" and twelve.pid == echo.id
        assert eleven is not None and bytes(eleven.data) == b"eleven"
        assert await rt.receive(tags=[11, 12], timeout=0.01) is None
        replies = await asyncio.gather(*(echo.request(str(i).encode(), timeout=TIMEOUT) for i in range(100)))
        assert [bytes(r.data) for r in replies] == [str(i).encode() for i in range(100)]
        finished = await echo.join(TIMEOUT)
        assert finished is not None and finished.result == (102,)

    loop.run_until_complete(main())


def test_request_timeout(loop: asyncio.AbstractEventLoop, rt: AsyncRuntime, guest: Module) -> None:
    async def main() -> None:
        process = await rt.spawn(guest, "park", config=PERMISSIVE)
        with pytest.raises(TimeoutError, match="did not reply"):
            await process.request(b"?", tag=3, timeout=0.02)
        await stop(process)

    loop.run_until_complete(main())


def test_cancelled_receive_takes_nothing(
    loop: asyncio.AbstractEventLoop, rt: AsyncRuntime, guest: Module
) -> None:
    async def main() -> None:
        waiting = asyncio.ensure_future(rt.receive(tags=[21]))
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        echo = await rt.spawn(guest, "echo", (1,), PERMISSIVE)
        echo.send(b"kept", tag=21)
        kept = await rt.receive(tags=[21], timeout=TIMEOUT)
        assert kept is not None and bytes(kept.data) == b"kept"
        assert await echo.join(TIMEOUT) is not None

    loop.run_until_complete(main())


def test_loop_stays_responsive(loop: asyncio.AbstractEventLoop, rt: AsyncRuntime, guest: Module) -> None:
    """While a receive waits, other tasks run: the loop is not blocked."""

    async def main() -> None:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        task = asyncio.ensure_future(ticker())
        start = time.monotonic()
        assert await rt.receive(tags=[31], timeout=0.1) is None
        assert time.monotonic() - start >= 0.09
        task.cancel()
        assert ticks >= 5

    loop.run_until_complete(main())


def test_registry_and_environment(loop: asyncio.AbstractEventLoop, rt: AsyncRuntime, guest: Module) -> None:
    async def main() -> None:
        env = rt.environment(EnvConfig(max_fuel=10))
        finished = await (await env.spawn(guest, "spin")).join(TIMEOUT)
        assert finished is not None and finished.outcome is Outcome.FAILED and "fuel" in finished.message
        old = await rt.spawn(guest, "park", config=PERMISSIVE)
        new = await rt.spawn(guest, "park", config=PERMISSIVE)
        await rt.registry.put("aio-svc", "1.0.0", old)
        await rt.registry.put("aio-svc", "2.1.0", new.id)
        assert await rt.registry.get("aio-svc") == new
        assert await rt.registry.get("aio-svc", "^1") == old
        assert await rt.registry.get("aio-svc", "3") is None
        await rt.registry.remove("aio-svc")
        assert await rt.registry.get("aio-svc") is None
        await stop(old)
        await stop(new)

    loop.run_until_complete(main())
