"""``Runtime(wait=False)``: the host program goes on (compiles a module) while the processes start;
``wait_started`` waits for them, and calls that need the workers wait by themselves."""

from __future__ import annotations

from pathlib import Path

import pytest

from lunatic_mp.api.runtime import Runtime
from lunatic_mp.cluster import supervisor
from lunatic_mp.errors import EngineClosed, LunaticError

GUESTS = Path(__file__).parents[1] / "guests"
TIMEOUT = 60.0


def test_a_module_compiles_while_the_runtime_starts() -> None:
    with Runtime(workers=2, wait=False) as runtime:
        module = runtime.load_module(GUESTS / "rt_basic.wat")
        runtime.wait_started(TIMEOUT)
        assert len(runtime.worker_ids) == 2
        finished = runtime.join(runtime.spawn(module, "add", [1, 2]), TIMEOUT)
        assert finished is not None and finished.result == (3,)


def test_spawn_waits_for_the_start_by_itself() -> None:
    with Runtime(workers=1, wait=False) as runtime:
        module = runtime.load_module(GUESTS / "rt_basic.wat")
        finished = runtime.join(runtime.spawn(module, "add", [2, 3]), TIMEOUT)
        assert finished is not None and finished.result == (5,)


def test_a_failed_start_is_raised_by_wait_started(monkeypatch: pytest.MonkeyPatch) -> None:
    """The error that stopped the start comes out of wait_started; the runtime is closed then."""

    def no_room(rings: int, capacity: int) -> None:
        raise LunaticError("no room for the rings")

    monkeypatch.setattr(supervisor, "check_shm_space", no_room)
    runtime = Runtime(workers=1, wait=False)
    with pytest.raises(LunaticError, match="no room for the rings"):
        runtime.wait_started(TIMEOUT)
    with pytest.raises(EngineClosed):
        runtime.load_module(GUESTS / "rt_basic.wat")
    assert not runtime.run_dir.exists()


def test_close_while_starting_stops_everything() -> None:
    runtime = Runtime(workers=2, wait=False)
    module = runtime.load_module(GUESTS / "rt_basic.wat")
    runtime.close()
    assert not runtime.run_dir.exists()
    assert runtime.worker_pids() == {}
    with pytest.raises(EngineClosed):
        runtime.spawn(module, "add", [1, 2])
