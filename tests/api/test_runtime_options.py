"""Runtime options that reach every worker's engine: the time slice."""

from __future__ import annotations

import pytest

from lunatic_mp.api.runtime import Runtime
from lunatic_mp.vm.preemption import DEFAULT_TIME_SLICE_NS


def test_every_worker_keeps_the_time_slice_given() -> None:
    with Runtime(workers=2, time_slice_ns=4_000_000) as runtime:
        assert [entry["time_slice_ns"] for entry in runtime.stats()] == [4_000_000, 4_000_000]
    with Runtime(workers=1) as runtime:
        assert [entry["time_slice_ns"] for entry in runtime.stats()] == [DEFAULT_TIME_SLICE_NS]


@pytest.mark.parametrize("bad", [0, 5_000, 2**40, 1.5])
def test_a_time_slice_no_ticker_can_keep_is_refused_before_anything_starts(bad: object) -> None:
    with pytest.raises(ValueError, match=rf"time_slice_ns must be an int between .*, got {bad!r}"):
        Runtime(workers=1, time_slice_ns=bad)
