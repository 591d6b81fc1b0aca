"""lunatic::version (the ABI version implemented) and lunatic::metrics (guest metrics landing in
``engine.metrics``)."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from conftest import spawn

from lunatic_mp import Engine, Finished, Module
from lunatic_mp.vm.finished import Outcome
from lunatic_mp.vm.host.version import ABI_VERSION

# Every export records into a metric with a fixed name: "requests" (counter), "temperature"
# (gauge), "latency" (histogram); `raw_counter` takes the name's pointer and length.
GUEST = r"""
(module
  (import "lunatic::version" "major" (func $major (result i32)))
  (import "lunatic::version" "minor" (func $minor (result i32)))
  (import "lunatic::version" "patch" (func $patch (result i32)))
  (import "lunatic::metrics" "counter" (func $counter (param i32 i32 i64)))
  (import "lunatic::metrics" "increment_counter" (func $increment_counter (param i32 i32)))
  (import "lunatic::metrics" "gauge" (func $gauge (param i32 i32 f64)))
  (import "lunatic::metrics" "increment_gauge" (func $increment_gauge (param i32 i32 f64)))
  (import "lunatic::metrics" "decrement_gauge" (func $decrement_gauge (param i32 i32 f64)))
  (import "lunatic::metrics" "histogram" (func $histogram (param i32 i32 f64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "requests")
  (data (i32.const 16) "temperature")
  (data (i32.const 32) "latency")
  (data (i32.const 48) "\ff\fe")
  (data (i32.const 64) "r\c3\a9ponses")
  ;; The ABI version as (major, minor, patch).
  (func (export "version") (result i32 i32 i32)
    (call $major) (call $minor) (call $patch))
  ;; counter("requests", value)
  (func (export "count") (param $value i64)
    (call $counter (i32.const 0) (i32.const 8) (local.get $value)))
  ;; increment_counter("requests")
  (func (export "increment")
    (call $increment_counter (i32.const 0) (i32.const 8)))
  ;; gauge / increment_gauge / decrement_gauge("temperature", value)
  (func (export "set_gauge") (param $value f64)
    (call $gauge (i32.const 16) (i32.const 11) (local.get $value)))
  (func (export "inc_gauge") (param $value f64)
    (call $increment_gauge (i32.const 16) (i32.const 11) (local.get $value)))
  (func (export "dec_gauge") (param $value f64)
    (call $decrement_gauge (i32.const 16) (i32.const 11) (local.get $value)))
  ;; histogram("latency", value)
  (func (export "observe") (param $value f64)
    (call $histogram (i32.const 32) (i32.const 7) (local.get $value)))
  ;; increment_counter with any name span (for bad pointers and encodings)
  (func (export "raw_counter") (param $ptr i32) (param $len i32)
    (call $increment_counter (local.get $ptr) (local.get $len)))
)
"""
INVALID_UTF8 = (48, 2)
UNICODE_NAME = (64, 9)  # "réponses"


@pytest.fixture
def guest(load: Callable[[str], Module]) -> Module:
    return load(GUEST)


def test_version(guest: Module, run: Callable[..., Finished]) -> None:
    """major/minor/patch report the lunatic ABI implemented: 0.13.x."""
    finished = run(guest, "version")
    assert finished.ok, finished
    major, minor, patch = finished.result
    assert (major, minor) == (0, 13)
    assert patch >= 0
    assert (major, minor, patch) == ABI_VERSION


def test_counter_and_increment(guest: Module, engine: Engine, run: Callable[..., Finished]) -> None:
    """counter(name, 5) then two increment_counter(name) leave the counter at 7."""
    assert run(guest, "count", (5,)).ok
    assert engine.metrics.counters == {"requests": 5}
    assert run(guest, "increment").ok
    assert run(guest, "increment").ok
    assert engine.metrics.counters == {"requests": 7}


def test_counter_value_is_unsigned(guest: Module, engine: Engine, run: Callable[..., Finished]) -> None:
    """counter's value is a u64 (as in lunatic): the i64 bits -1 mean 2**64 - 1, and a counter
    never goes down."""
    assert run(guest, "count", (1,)).ok
    assert run(guest, "count", (-1,)).ok
    assert engine.metrics.counters["requests"] >= 1


def test_increment_counter_creates_it(guest: Module, engine: Engine, run: Callable[..., Finished]) -> None:
    """increment_counter on a counter never seen starts it at 1."""
    assert run(guest, "increment").ok
    assert engine.metrics.counters["requests"] == 1


def test_counters_add_up_across_processes(guest: Module, engine: Engine) -> None:
    """Metrics are per engine: many processes counting into one name add up."""
    processes = [spawn(engine, guest, "increment") for _ in range(5)]
    engine.run(timeout=30)
    assert all(p.finished is not None and p.finished.ok for p in processes)
    assert engine.metrics.counters["requests"] == 5


def test_gauge_set_increment_decrement(guest: Module, engine: Engine, run: Callable[..., Finished]) -> None:
    """gauge sets the value; increment_gauge and decrement_gauge move it."""
    assert run(guest, "set_gauge", (20.5,)).ok
    assert engine.metrics.gauges == {"temperature": 20.5}
    assert run(guest, "inc_gauge", (2.0,)).ok
    assert run(guest, "dec_gauge", (0.25,)).ok
    assert engine.metrics.gauges["temperature"] == pytest.approx(22.25)
    assert run(guest, "set_gauge", (-1.0,)).ok
    assert engine.metrics.gauges["temperature"] == -1.0


def test_gauge_moves_from_zero(guest: Module, engine: Engine, run: Callable[..., Finished]) -> None:
    """decrement_gauge on a gauge never set starts from 0."""
    assert run(guest, "dec_gauge", (1.5,)).ok
    assert engine.metrics.gauges["temperature"] == -1.5


def test_histogram(guest: Module, engine: Engine, run: Callable[..., Finished]) -> None:
    """histogram records every observation: count, total, minimum, maximum."""
    for value in (3.0, 1.0, 8.5):
        assert run(guest, "observe", (value,)).ok
    histogram = engine.metrics.histograms["latency"]
    assert histogram.count == 3
    assert histogram.total == pytest.approx(12.5)
    assert (histogram.minimum, histogram.maximum) == (1.0, 8.5)


def test_metric_kinds_are_separate(guest: Module, engine: Engine, run: Callable[..., Finished]) -> None:
    """Each kind lands in its own table, only under its own name."""
    for function, params in (("count", (2,)), ("set_gauge", (1.0,)), ("observe", (0.5,))):
        assert run(guest, function, params).ok
    assert set(engine.metrics.counters) == {"requests"}
    assert set(engine.metrics.gauges) == {"temperature"}
    assert set(engine.metrics.histograms) == {"latency"}


def test_non_finite_values(guest: Module, engine: Engine, run: Callable[..., Finished]) -> None:
    """Non-finite floats are accepted as they are (no host error)."""
    assert run(guest, "set_gauge", (math.inf,)).ok
    assert engine.metrics.gauges["temperature"] == math.inf
    assert run(guest, "observe", (math.nan,)).ok
    assert engine.metrics.histograms["latency"].count == 1


def test_unicode_name(guest: Module, engine: Engine, run: Callable[..., Finished]) -> None:
    """Metric names are UTF-8."""
    assert run(guest, "raw_counter", UNICODE_NAME).ok
    assert engine.metrics.counters == {"réponses": 1}


def test_invalid_utf8_name_traps(guest: Module, engine: Engine, run: Callable[..., Finished]) -> None:
    """A name that is not UTF-8 traps the guest (no host error), and records nothing."""
    finished = run(guest, "raw_counter", INVALID_UTF8)
    assert finished.outcome is Outcome.FAILED
    assert "UTF-8" in finished.message
    assert engine.metrics.counters == {}


@pytest.mark.parametrize(("ptr", "length"), [(65530, 100), (-1, 4), (0, -1)])
def test_out_of_bounds_name_traps(
    guest: Module, engine: Engine, run: Callable[..., Finished], ptr: int, length: int
) -> None:
    """A name span outside guest memory traps the guest with an out-of-bounds reason."""
    finished = run(guest, "raw_counter", (ptr, length))
    assert finished.outcome is Outcome.FAILED
    assert "out-of-bounds" in finished.message
    assert engine.metrics.counters == {}


START_FUNCTION_GUEST = r"""
(module
  (import "lunatic::version" "minor" (func $minor (result i32)))
  (memory (export "memory") 1)
  (global $minor (mut i32) (i32.const 0))
  ;; The start function: remember the ABI minor version.
  (func $init (global.set $minor (call $minor)))
  (start $init)
  ;; The version the start function saw.
  (func (export "minor_at_start") (result i32) (global.get $minor))
)
"""

START_FUNCTION_METRICS_GUEST = r"""
(module
  (import "lunatic::metrics" "increment_counter" (func $increment_counter (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "init")
  ;; The start function counts "init".
  (func $init (call $increment_counter (i32.const 0) (i32.const 4)))
  (start $init)
  (func (export "nothing"))
)
"""


def test_version_in_start_function(load: Callable[[str], Module], run: Callable[..., Finished]) -> None:
    """lunatic::version works while the module is still initializing (its start function)."""
    finished = run(load(START_FUNCTION_GUEST), "minor_at_start")
    assert finished.ok, finished
    assert finished.result == (13,)


def test_metrics_in_start_function(
    load: Callable[[str], Module], engine: Engine, run: Callable[..., Finished]
) -> None:
    """A start function may record metrics: ABI.md only forbids spawning there (lunatic reads
    the caller's `memory` export, which exists during the start function)."""
    finished = run(load(START_FUNCTION_METRICS_GUEST), "nothing")
    assert finished.ok, finished
    assert engine.metrics.counters == {"init": 1}
