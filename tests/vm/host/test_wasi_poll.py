"""WASI's poll_oneoff (behind a guest's sleep() and nanosleep()) suspends only its process."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import finish, spawn

from lunatic_mp import Engine, Finished, Module

FOREVER_NS = 2**64 - 1
WASI_EINVAL = 28


@pytest.fixture
def guest(load: Callable[[str], Module]) -> Module:
    return load("wasi_poll.wat")


def test_a_sleeping_guest_does_not_hold_up_its_worker(engine: Engine, guest: Module) -> None:
    """A guest asleep for ever (u64::MAX ns) is suspended: another process runs to its end on the
    same thread, and the sleeper can still be killed."""
    sleeper = spawn(engine, guest, "sleep", (FOREVER_NS,))
    spinner = spawn(engine, guest, "spin", (100_000,))
    assert finish(engine, spinner).result == (100_000,)
    assert sleeper.alive and sleeper.waiting
    engine.kill(sleeper.pid, "enough")
    assert not finish(engine, sleeper).ok


def test_a_short_sleep_returns_its_event(run: Callable[..., Finished], guest: Module) -> None:
    assert run(guest, "sleep", (1_000_000,)).result == (0,)
    assert run(guest, "sleep", (0,)).result == (0,)


def test_the_earliest_clock_ends_the_wait_and_only_it_is_reported(
    run: Callable[..., Finished], guest: Module
) -> None:
    assert run(guest, "earliest").result == (11,)


def test_an_absolute_monotonic_deadline_is_on_the_guests_own_clock(
    run: Callable[..., Finished], guest: Module
) -> None:
    assert run(guest, "until").result == (1,)


def test_a_ready_descriptor_returns_at_once(run: Callable[..., Finished], guest: Module) -> None:
    assert run(guest, "fd_ready").result == (92,)


def test_no_subscriptions_is_einval(run: Callable[..., Finished], guest: Module) -> None:
    assert run(guest, "none").result == (WASI_EINVAL,)
