"""Bounds a guest gets without asking for them (docs/reliability.md, "Bounds by default")."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lunatic_mp import Engine, EnvConfig, Finished, Module, Outcome
from lunatic_mp.config import DEFAULT_MAX_MAILBOX
from lunatic_mp.errors import InvalidNameError
from lunatic_mp.vm import metrics, registry, wasm
from lunatic_mp.vm.process import Process

GUESTS = Path(__file__).parents[1] / "guests"
DEADLINE = 60.0


@pytest.fixture
def lone() -> Iterator[tuple[Engine, Module]]:
    engine = Engine()
    yield engine, engine.load_module(GUESTS / "hostile.wat")
    engine.close()
    assert not engine.host_errors, engine.host_errors


def test_a_mailbox_is_bounded_by_default(lone: tuple[Engine, Module]) -> None:
    """A flood into a process that reads nothing stops at DEFAULT_MAX_MAILBOX queued messages
    with no limit set by anyone (it used to grow for ever: 1 M 8-byte messages took some
    170 MiB); the sender waits, and nothing is lost once the receiver reads."""
    engine, module = lone
    assert EnvConfig().max_mailbox == EnvConfig.permissive().max_mailbox == DEFAULT_MAX_MAILBOX
    count = DEFAULT_MAX_MAILBOX + 1000
    drain = engine.spawn(module, "drain", [count], EnvConfig.permissive())
    flood = engine.spawn(module, "flood", [drain.pid, count], EnvConfig.permissive())
    engine.run(timeout=DEADLINE)
    assert len(drain.mailbox) == DEFAULT_MAX_MAILBOX
    assert flood.finished is None and flood.parked and flood.blocked_on == {drain.pid}
    engine.send(drain.pid, tag=1)
    assert engine.run_until_finished(flood, timeout=DEADLINE) == Finished(Outcome.NORMAL, (count,))
    assert engine.run_until_finished(drain, timeout=DEADLINE) == Finished(Outcome.NORMAL, (count, 0))


def test_max_mailbox_0_is_unbounded(lone: tuple[Engine, Module]) -> None:
    """Who needs a mailbox without a bound (lunatic's and Erlang's send, which never waits)
    sets max_mailbox = 0."""
    engine, module = lone
    count = 3000
    drain = engine.spawn(module, "drain", [count], EnvConfig.permissive(max_mailbox=0))
    flood = engine.spawn(module, "flood", [drain.pid, count], EnvConfig.permissive(max_mailbox=10))
    assert engine.run_until_finished(flood, timeout=DEADLINE) == Finished(Outcome.NORMAL, (count,))
    assert len(drain.mailbox) == count
    engine.send(drain.pid, tag=1)
    assert engine.run_until_finished(drain, timeout=DEADLINE) == Finished(Outcome.NORMAL, (count, 0))


def test_a_registry_name_is_bounded(lone: tuple[Engine, Module]) -> None:
    """A guest registering a 32 MiB name (it used to be kept) traps with the length named, before
    the host reads it; the host's registry refuses a long name too; a name at the limit is fine."""
    engine, _ = lone
    names = engine.load_module(GUESTS / "bounds_names.wat")
    process = engine.spawn(names, "register", [32 << 20], EnvConfig.permissive())
    finished = engine.run_until_finished(process, timeout=DEADLINE)
    assert finished is not None and finished.outcome is Outcome.FAILED
    limit = registry.MAX_NAME_LENGTH
    assert f"a registry name of {32 << 20} bytes is longer than the limit of {limit}" in str(finished)
    with pytest.raises(InvalidNameError, match=f"of {limit + 1} bytes is longer"):
        engine.registry.put("n" * (limit + 1), 0, 1)
    with pytest.raises(InvalidNameError, match=f"of {limit + 2} bytes is longer"):
        engine.registry.put("é" * (limit // 2 + 1), 0, 1)  # bytes of UTF-8, not characters
    engine.registry.put("n" * limit, 0, 1)
    assert engine.registry.get("n" * limit) == (0, 1)
    ok = engine.spawn(names, "register", [10], EnvConfig.permissive())
    assert engine.run_until_finished(ok, timeout=DEADLINE) == Finished(Outcome.NORMAL, ())
    assert engine.registry.get("0123456789") == (engine.node_id, 1)


def test_guest_metrics_keep_a_bounded_number_of_names() -> None:
    """A guest inventing metric names (1 M of them made /metrics 65 MiB and 21 s to render) gets
    max_metric_series of them kept; the rest are dropped and counted, while names already kept
    go on counting; a name longer than the limit traps its process."""
    engine = Engine(max_metric_series=100)
    try:
        names = engine.load_module(GUESTS / "bounds_names.wat")
        process = engine.spawn(names, "count_many", [1000], EnvConfig.permissive())
        assert engine.run_until_finished(process, timeout=DEADLINE) == Finished(Outcome.NORMAL, ())
        assert len(engine.metrics) == 100 and engine.metrics.dropped == 900
        assert engine.metrics.counters["99"] == 1 and "100" not in engine.metrics.counters
        again = engine.spawn(names, "count_many", [200], EnvConfig.permissive())
        assert engine.run_until_finished(again, timeout=DEADLINE) == Finished(Outcome.NORMAL, ())
        assert engine.metrics.counters["99"] == 2 and engine.metrics.dropped == 1000
        engine.metrics.set_gauge("a gauge", 1.0)
        engine.metrics.observe("a histogram", 1.0)
        assert not engine.metrics.gauges and not engine.metrics.histograms
        long = engine.spawn(names, "count", [1 << 20], EnvConfig.permissive())
        finished = engine.run_until_finished(long, timeout=DEADLINE)
        assert finished is not None and finished.outcome is Outcome.FAILED
        limit = metrics.MAX_NAME_LENGTH
        assert f"a metric name of {1 << 20} bytes is longer than the limit of {limit}" in str(finished)
    finally:
        engine.close()
    assert metrics.Metrics().max_series == metrics.MAX_SERIES


MIB = 1 << 20


def memory_size(process: Process) -> int:
    """Bytes of a Wasm process's linear memory, read from its exported memory (the C core keeps
    its own view of it, so ``process.memory`` may never be made)."""
    assert process.store is not None and process.call is not None
    memory = wasm.export_memory(process.store, process.call)
    assert memory is not None
    return wasm.Memory(wasm.store_context(process.store), memory).size


def test_an_environments_memory_budget_bounds_children_that_take_all_they_may() -> None:
    """Children that each grow to their max_memory (16 MiB) in an environment with a budget of
    100 MiB: the bomb (16) and 5 children (80) fit, the 6th spawn fails with an error saying
    why, and the memory the children really hold stays under the budget. When they end, the
    budget is free again."""
    engine = Engine()
    try:
        module = engine.load_module(GUESTS / "memory_budget.wat")
        config = EnvConfig.permissive(max_memory=16 * MIB, max_env_memory=100 * MIB)
        bomb = engine.spawn(module, "bomb", [0], config)
        assert engine.run_until_finished(bomb, timeout=DEADLINE) == Finished(Outcome.NORMAL, (5,))
        engine.run(timeout=DEADLINE)
        children = list(engine.processes.values())
        assert len(children) == 5
        held = sum(memory_size(child) for child in children)
        assert held == 5 * 16 * MIB <= 100 * MIB  # each took all it may
        for child in children:
            engine.kill(child.pid)
        engine.run(timeout=DEADLINE)
        again = engine.spawn(module, "bomb", [0], config)
        assert engine.run_until_finished(again, timeout=DEADLINE) == Finished(Outcome.NORMAL, (5,))
        other = EnvConfig.permissive(max_memory=16 * MIB, max_processes=3, environment_id=1)
        elsewhere = engine.spawn(module, "bomb", [0], other)  # another environment: no budget
        assert engine.run_until_finished(elsewhere, timeout=DEADLINE) == Finished(Outcome.NORMAL, (2,))
    finally:
        engine.close()
    assert EnvConfig().max_env_memory == 0  # no budget unless asked for
