"""Bounds a guest gets without asking for them (docs/reliability.md, "Bounds by default")."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lunatic_mp import Engine, EnvConfig, Finished, Module, Outcome
from lunatic_mp.config import DEFAULT_MAX_MAILBOX

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
