"""Limits enforced on guests: memory, fuel, message size and the engine's process capacity."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import finish

from lunatic_mp import CapacityError, Engine, EnvConfig, Finished, Module, Outcome
from lunatic_mp.config import FUEL_UNIT

GUESTS = Path(__file__).parents[1] / "guests"
PAGE = 65536


def own_engine(**options: object) -> Iterator[Engine]:
    engine = Engine(**options)  # type: ignore[arg-type]
    yield engine
    engine.close()
    assert not engine.host_errors, f"host functions raised: {engine.host_errors}"


@pytest.fixture
def small_message_engine() -> Iterator[Engine]:
    """An engine whose messages may hold at most 1024 bytes."""
    yield from own_engine(max_message_size=1024)


@pytest.fixture
def small_engine() -> Iterator[Engine]:
    """An engine that holds at most 3 live processes."""
    yield from own_engine(max_processes=3)


# --- memory ---------------------------------------------------------------------------------------


def test_grow_past_max_memory_returns_minus_one(
    load: Callable[[str], Module], run: Callable[..., Finished]
) -> None:
    """Under max_memory = 2 pages, growing 1 -> 2 pages works and 2 -> 3 gives -1; the guest goes on."""
    finished = run(load("lim_memory.wat"), "grow_twice", max_memory=2 * PAGE)
    assert finished.ok, finished
    assert finished.result == (1, -1, 2)


def test_grow_without_max_memory_is_not_limited(
    load: Callable[[str], Module], run: Callable[..., Finished]
) -> None:
    """max_memory = 0 means no limit: the same two grows both succeed."""
    finished = run(load("lim_memory.wat"), "grow_twice")
    assert finished.result == (1, 2, 3)


def test_one_big_grow_is_refused_whole(load: Callable[[str], Module], run: Callable[..., Finished]) -> None:
    """A single grow that would cross the limit fails as a whole, rather than partly succeeding."""
    finished = run(load("lim_memory.wat"), "grow", (16,), max_memory=8 * PAGE)
    assert finished.result == (-1,)


def test_initial_memory_over_max_memory_fails_to_instantiate(
    load: Callable[[str], Module], run: Callable[..., Finished]
) -> None:
    """A module needing 4 pages up front, limited to 3, ends FAILED saying why."""
    finished = run(load("lim_big_memory.wat"), "pages", max_memory=3 * PAGE)
    assert finished.outcome is Outcome.FAILED
    assert "memory" in finished.message
    assert "4 pages" in finished.message or "limit" in finished.message, finished.message


def test_initial_memory_at_max_memory_is_fine(
    load: Callable[[str], Module], run: Callable[..., Finished]
) -> None:
    """The limit is inclusive: 4 pages under max_memory = 4 pages instantiates."""
    finished = run(load("lim_big_memory.wat"), "pages", max_memory=4 * PAGE)
    assert finished.ok, finished
    assert finished.result == (4,)


# --- fuel ---------------------------------------------------------------------------------------------


def test_infinite_loop_runs_out_of_fuel(load: Callable[[str], Module], run: Callable[..., Finished]) -> None:
    """With max_fuel = 1 (100,000 instructions) a spinning guest ends FAILED: out of fuel."""
    finished = run(load("lim_fuel.wat"), "spin", max_fuel=1)
    assert finished.outcome is Outcome.FAILED
    assert finished.message == "out of fuel"


def test_short_loop_under_fuel_limit_finishes(
    load: Callable[[str], Module], run: Callable[..., Finished]
) -> None:
    """A loop of 1,000 turns fits in 100,000 instructions and returns normally."""
    finished = run(load("lim_fuel.wat"), "count", (1000,), max_fuel=1)
    assert finished.ok, finished
    assert finished.result == (1000,)


def test_fuel_is_counted_in_units_of_100k_instructions(
    load: Callable[[str], Module], run: Callable[..., Finished]
) -> None:
    """FUEL_UNIT loop turns (several instructions each) exceed 1 unit but fit in 20 units."""
    module = load("lim_fuel.wat")
    assert FUEL_UNIT == 100_000
    assert run(module, "count", (FUEL_UNIT,), max_fuel=1).message == "out of fuel"
    assert run(module, "count", (FUEL_UNIT,), max_fuel=20).result == (FUEL_UNIT,)


def test_huge_max_fuel_is_not_wrapped_to_a_tiny_limit(
    load: Callable[[str], Module], run: Callable[..., Finished]
) -> None:
    """max_fuel = 2**62 (an i64 a guest can set too) is a huge limit, not an instant out-of-fuel."""
    finished = run(load("lim_fuel.wat"), "count", (1000,), max_fuel=2**62)
    assert finished.ok, finished
    assert finished.result == (1000,)


def test_spinning_guest_out_of_fuel_does_not_stop_others(
    engine: Engine, load: Callable[[str], Module]
) -> None:
    """Another process spawned alongside the spinner still completes, with its own result."""
    module = load("lim_fuel.wat")
    spinner = engine.spawn(module, "spin", (), EnvConfig.permissive(max_fuel=1))
    counter = engine.spawn(module, "count", (5000,), EnvConfig.permissive())
    assert finish(engine, spinner).message == "out of fuel"
    assert finish(engine, counter).result == (5000,)


# --- message size ----------------------------------------------------------------------------------


def test_message_up_to_max_message_size_is_fine(small_message_engine: Engine) -> None:
    """Exactly max_message_size bytes (2 x 512 of 1024) can be written to a message."""
    module = small_message_engine.load_module(GUESTS / "lim_message.wat")
    process = small_message_engine.spawn(module, "build", (512, 2), EnvConfig.permissive())
    finished = finish(small_message_engine, process)
    assert finished.ok, finished
    assert finished.result == (1024,)


def test_write_data_beyond_max_message_size_traps(small_message_engine: Engine) -> None:
    """One byte past max_message_size kills the writer with a message naming the limit."""
    engine = small_message_engine
    module = engine.load_module(GUESTS / "lim_message.wat")
    writer = engine.spawn(module, "build", (1025, 1), EnvConfig.permissive())
    other = engine.spawn(module, "build", (100, 3), EnvConfig.permissive())
    finished = finish(engine, writer)
    assert finished.outcome is Outcome.FAILED
    assert "1024-byte limit" in finished.message, finished.message
    assert finish(engine, other).result == (300,)


def test_limit_counts_the_whole_message_not_one_write(small_message_engine: Engine) -> None:
    """Three writes of 512 bytes: the third one crosses 1024 and traps."""
    module = small_message_engine.load_module(GUESTS / "lim_message.wat")
    process = small_message_engine.spawn(module, "build", (512, 3), EnvConfig.permissive())
    finished = finish(small_message_engine, process)
    assert finished.outcome is Outcome.FAILED
    assert "limit" in finished.message


def test_host_send_beyond_max_message_size_raises(small_message_engine: Engine) -> None:
    """The host side of the same limit: Engine.send refuses an oversized message."""
    module = small_message_engine.load_module(GUESTS / "lim_capacity.wat")
    waiter = small_message_engine.spawn(module, "wait", (), EnvConfig.permissive())
    with pytest.raises(ValueError, match="1024-byte limit"):
        small_message_engine.send(waiter.pid, bytes(1025))
    assert small_message_engine.send(waiter.pid, bytes(1024))
    assert finish(small_message_engine, waiter).result == (1024,)


@pytest.mark.parametrize("size", [0, 2**32, -1])
def test_max_message_size_must_fit_the_read_cursor(size: int) -> None:
    """A message's read cursor is 32 bits: an engine refuses a limit it could not reach, by name."""
    with pytest.raises(
        ValueError, match=rf"max_message_size must be between 1 and 2\*\*32 - 1 bytes, got {size}"
    ):
        Engine(max_message_size=size)


# --- capacity ------------------------------------------------------------------------------------


def test_capacity_error_from_python(small_engine: Engine) -> None:
    """A 4th live process on a 3-process engine raises CapacityError; after one exits, it fits."""
    engine = small_engine
    module = engine.load_module(GUESTS / "lim_capacity.wat")
    waiters = [engine.spawn(module, "wait", (), EnvConfig.permissive()) for _ in range(3)]
    with pytest.raises(CapacityError, match="capacity"):
        engine.spawn(module, "wait", (), EnvConfig.permissive())
    assert len(engine.processes) == 3

    engine.send(waiters[0].pid, b"bye")
    assert finish(engine, waiters[0]).result == (3,)
    fourth = engine.spawn(module, "wait", (), EnvConfig.permissive())
    assert fourth.pid in engine.processes


def test_capacity_error_from_guest(small_engine: Engine) -> None:
    """A guest's spawn past capacity returns 1 with an error mentioning capacity; later it works."""
    engine = small_engine
    module = engine.load_module(GUESTS / "lim_capacity.wat")
    waiters = [engine.spawn(module, "wait", (), EnvConfig.permissive()) for _ in range(2)]

    spawner = engine.spawn(module, "spawn_waiter", (), EnvConfig.permissive())
    assert finish(engine, spawner).result == (1,)
    reported = [name for name in engine.metrics.counters if "capacity" in name]
    assert reported, engine.metrics.counters
    assert len(engine.processes) == 2

    engine.send(waiters[0].pid, b"")
    assert finish(engine, waiters[0]).ok
    spawner = engine.spawn(module, "spawn_waiter", (), EnvConfig.permissive())
    assert finish(engine, spawner).result == (0,)
    assert len(engine.processes) == 2  # the remaining waiter and the spawner's child
