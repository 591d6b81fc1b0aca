"""Bounds of a runtime against hostile guests, across its processes (docs/reliability.md,
"Bounds by default")."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from lunatic_mp import EnvConfig, Outcome
from lunatic_mp.api.runtime import Runtime
from lunatic_mp.errors import LunaticError
from lunatic_mp.serve import prometheus
from lunatic_mp.vm.registry import MAX_NAME_LENGTH
from tests.vm.test_default_bounds import NAMES

WAIT = 30.0


@pytest.fixture(scope="module")
def runtime() -> Iterator[Runtime]:
    with Runtime(workers=1, max_metric_series=10) as runtime:
        yield runtime


def test_the_registry_process_refuses_a_long_name(runtime: Runtime) -> None:
    """A name past MAX_NAME_LENGTH never reaches the registry process's table: a guest's put
    traps before its name is read, the host program's put gets an error naming the length."""
    module = runtime.load_module(NAMES.encode())
    guest = runtime.spawn(module, "register", (32 << 20,), EnvConfig.permissive())
    finished = runtime.join(guest, timeout=WAIT)
    assert finished is not None and finished.outcome is Outcome.FAILED
    assert "bytes is longer than the limit" in str(finished)
    with pytest.raises(LunaticError, match=f"of {MAX_NAME_LENGTH + 1} bytes is longer than the limit"):
        runtime.registry_put("n" * (MAX_NAME_LENGTH + 1), runtime.pid)
    assert runtime.registry_get("n" * MAX_NAME_LENGTH) is None


def test_guest_metric_names_are_bounded_per_worker_and_dropped_ones_counted(runtime: Runtime) -> None:
    """Runtime(max_metric_series=10): a guest counting 50 names leaves 10 in the worker's
    statistics, and /metrics shows the 40 reports it dropped."""
    module = runtime.load_module(NAMES.encode())
    guest = runtime.spawn(module, "count_many", (50,), EnvConfig.permissive())
    finished = runtime.join(guest, timeout=WAIT)
    assert finished is not None and finished.ok, finished
    (stats,) = runtime.stats()
    assert len(stats["counters"]) == 10 and stats["metrics_dropped"] == 40
    text = prometheus.render(prometheus.Snapshot(runtime.stats(), 1, 0, 1, time.time())).decode()
    assert 'lunatic_guest_metrics_dropped_total{worker="' in text
    assert text.count("lunatic_guest_counter_total{") == 10
