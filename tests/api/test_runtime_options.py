"""Runtime options that reach every worker's engine: the time slice, long slices, hibernation."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lunatic_mp.api.runtime import Runtime
from lunatic_mp.vm.preemption import DEFAULT_LONG_SLICE_NS, DEFAULT_TIME_SLICE_NS


def test_every_worker_keeps_the_time_slice_given() -> None:
    with Runtime(workers=2, time_slice_ns=4_000_000) as runtime:
        assert [entry["time_slice_ns"] for entry in runtime.stats()] == [4_000_000, 4_000_000]
    with Runtime(workers=1) as runtime:
        assert [entry["time_slice_ns"] for entry in runtime.stats()] == [DEFAULT_TIME_SLICE_NS]


@pytest.mark.parametrize("bad", [0, 5_000, 2**40, 1.5])
def test_a_time_slice_no_ticker_can_keep_is_refused_before_anything_starts(bad: object) -> None:
    with pytest.raises(ValueError, match=rf"time_slice_ns must be an int between .*, got {bad!r}"):
        Runtime(workers=1, time_slice_ns=bad)


def test_every_worker_keeps_the_long_slice_given() -> None:
    with Runtime(workers=1, long_slice_ns=0) as runtime:
        assert [entry["long_slice_ns"] for entry in runtime.stats()] == [0]
    with Runtime(workers=1, time_slice_ns=4_000_000) as runtime:
        assert [entry["long_slice_ns"] for entry in runtime.stats()] == [DEFAULT_LONG_SLICE_NS]


@pytest.mark.parametrize("bad", [-1, 999_999, 2**40, 2.5e7, True])
def test_a_long_slice_shorter_than_the_time_slice_is_refused_before_anything_starts(bad: object) -> None:
    with pytest.raises(ValueError, match=rf"long_slice_ns must be None .*, got {bad!r}"):
        Runtime(workers=1, long_slice_ns=bad)


GUESTS = Path(__file__).parents[1] / "guests"
TIMEOUT = 60.0


def test_idle_processes_hibernate_on_workers_and_still_answer() -> None:
    count = 50
    with Runtime(workers=2, hibernate_after=0.01) as runtime:
        module = runtime.load_module(GUESTS / "rt_basic.wat")
        pids = [runtime.spawn(module, "echo", (1,)) for _ in range(count)]
        deadline = time.monotonic() + TIMEOUT
        while sum(entry["hibernated"] for entry in runtime.stats()) < count:  # two sweeps each
            assert time.monotonic() < deadline, "the idle processes did not hibernate"
            time.sleep(0.01)
        for index, pid in enumerate(pids):
            runtime.send(pid, index.to_bytes(8, "little"), tag=10)
        answers = [runtime.receive(tags=[11], timeout=TIMEOUT) for _ in pids]
        indices = sorted(int.from_bytes(m.data[:8], "little") for m in answers if m is not None)
        assert indices == list(range(count))
        assert sum(entry["hibernated"] for entry in runtime.stats()) == 0


@pytest.mark.parametrize("bad", [0, -1.0, "1", 1e9])
def test_a_hibernation_delay_out_of_range_is_refused_before_anything_starts(bad: object) -> None:
    with pytest.raises(ValueError, match=rf"hibernate_after must be None or between .*, got {bad!r}"):
        Runtime(workers=1, hibernate_after=bad)
