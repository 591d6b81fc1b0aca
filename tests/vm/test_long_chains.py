"""Long chains: a chain of messages between local processes that outlasts the chain budget runs on
within the same round, if the runner's ``listen`` says that whatever arrives meanwhile will make a
descriptor the ticker watches ready (a worker announces its doorbell); the first event, or the
next timer, ends it (runner.c, ticker.c). The engines here take the longest long slice (10 s), so
a chain that nothing ended would show as a wait of 10 s: each bound below is far under it."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import finish_ok, start

from lunatic_mp import Engine, Module
from lunatic_mp.vm import scheduler
from lunatic_mp.vm.preemption import MAX_TIME_SLICE_NS

GUESTS = Path(__file__).parents[1] / "guests"
BOUND_S = 8.0  # far under a long chain of 10 s, far over what the work takes
ENDLESS = 10**12  # round trips of a ping-pong that no test waits for


@pytest.fixture
def long_engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """An engine whose chains would end at their first check (a budget of 1 ns) but for a long
    chain, which may run on for 10 s."""
    monkeypatch.setattr(scheduler, "CHAIN_BUDGET_NS", 1)
    engine = Engine(long_slice_ns=MAX_TIME_SLICE_NS)
    yield engine
    engine.close()


@pytest.fixture
def ping_pong(long_engine: Engine) -> Module:
    return long_engine.load_module(GUESTS / "msg_ping_pong.wat")


def rounds_to_finish(engine: Engine, process: object) -> int:
    rounds = 0
    while getattr(process, "finished", None) is None:
        engine.scheduler.run_round(engine.scheduler.long_slice_ns)
        rounds += 1
    return rounds


class Listener:
    """A Runner.listen that gives ``answer`` (``times`` times, then the other one) and keeps what
    it gave."""

    def __init__(self, answer: bool, times: int | None = None) -> None:
        self.answer, self.times = answer, times
        self.asked: list[bool] = []

    def __call__(self) -> bool:
        given = self.answer if self.times is None or len(self.asked) < self.times else not self.answer
        self.asked.append(given)
        return given


def test_a_chain_runs_on_while_the_listener_says_so(long_engine: Engine, ping_pong: Module) -> None:
    """Past its budget, a ping-pong's chain asks once and runs to its end in one round."""
    listen = Listener(True)
    long_engine.scheduler.runner.listen = listen
    pinger = start(long_engine, ping_pong, "main", 2000)
    assert rounds_to_finish(long_engine, pinger) <= 2  # the pong is spawned in the first
    assert finish_ok(long_engine, pinger).result == (2000 * 1999,)
    assert listen.asked == [True]
    assert long_engine.preemption.ticker.long_chains == 1


@pytest.mark.parametrize("answer", [False, None], ids=["refused", "no-listener"])
def test_no_long_chain_unless_a_listener_agrees(
    long_engine: Engine, ping_pong: Module, answer: bool | None
) -> None:
    """A listener that says no, or none at all (an engine run by itself, whose caller's loop has
    its timers and sockets), keeps chains to their budget: a round every few hops."""
    long_engine.scheduler.runner.listen = None if answer is None else Listener(answer)
    pinger = start(long_engine, ping_pong, "main", 200)
    assert rounds_to_finish(long_engine, pinger) > 20
    assert long_engine.preemption.ticker.long_chains == 0


def test_a_ready_descriptor_ends_a_long_chain(long_engine: Engine, ping_pong: Module) -> None:
    """A descriptor the ticker watches is readable when the chain starts listening: the ticker
    sees it at once and the round returns, the endless ping-pong still under way."""
    ticker = long_engine.preemption.ticker
    readable, writable = os.pipe()
    try:
        ticker.watch(readable)
        os.write(writable, b"x")
        long_engine.scheduler.runner.listen = Listener(True)
        pinger = start(long_engine, ping_pong, "main", ENDLESS)
        began = time.monotonic()
        for _ in range(3):
            long_engine.scheduler.run_round(long_engine.scheduler.long_slice_ns)
        assert time.monotonic() - began < BOUND_S
        assert pinger.alive
        assert ticker.long_chains >= 1
        assert ticker.long_chains_cut == ticker.long_chains
    finally:
        long_engine.close()
        os.close(readable)
        os.close(writable)


def test_a_timer_set_during_a_long_chain_ends_it(long_engine: Engine, ping_pong: Module) -> None:
    """A receive with a 5 ms timeout begins in the round an endless chain runs in: no timer was
    due when the round began, but the one it sets ends the chain, and the receive times out on
    time instead of 10 s later. (The listener agrees once: the chain of the round that fires the
    timer, with nothing to end it, would run its whole 10 s.)"""
    long_engine.scheduler.runner.listen = Listener(True, times=1)
    start(long_engine, ping_pong, "main", ENDLESS)
    long_engine.scheduler.run_round()  # the pinger spawns its pong: the chain is under way
    waiter = start(long_engine, long_engine.load_module(GUESTS / "msg_timeout.wat"), "receive_within", 5)
    began = time.monotonic()
    finished = long_engine.run_until_finished(waiter, timeout=BOUND_S)
    assert finished is not None and finished.result == (9027,)  # timed out
    assert time.monotonic() - began < BOUND_S
    assert long_engine.preemption.ticker.long_chains >= 1


def test_cpu_bound_processes_alone_make_no_long_chain(long_engine: Engine) -> None:
    """Two spinners requeued by their slices' ends are no chain of messages: the round ends at its
    budget (they go on in later rounds, or in long slices), although the listener would agree."""
    long_engine.scheduler.runner.listen = listen = Listener(True)
    guest = long_engine.load_module(GUESTS / "preempt.wat")
    spinners = [start(long_engine, guest, "spin") for _ in range(2)]
    long_engine.scheduler.run_round(long_engine.scheduler.long_slice_ns)
    assert len(long_engine.scheduler.run_queue) == 2
    assert long_engine.scheduler.run_queue.preempted == 2
    assert long_engine.preemption.ticker.long_chains == 0
    assert listen.asked == []
    for spinner in spinners:
        long_engine.kill(spinner.pid)
