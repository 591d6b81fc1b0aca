"""The C core: built, bound to wasmtime-py's own library, its ticker thread never leaked."""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import wasmtime
from conftest import GUESTS, ticker_threads, ticker_threads_settle

from lunatic_mp.errors import NativeCoreError
from lunatic_mp.vm import _core, core, wasm
from lunatic_mp.vm.engine import Engine

ROOT = Path(__file__).resolve().parents[2]
HEADER = ROOT / "lunatic_mp" / "vm" / "wasmtime_api.h"


def test_every_declared_function_is_in_wasmtimes_library() -> None:
    missing = _core.missing()
    assert not missing, f"wasmtime's library lacks these functions of wasmtime_api.h: {', '.join(missing)}"


def test_the_resolved_functions_are_exactly_the_headers_list() -> None:
    declared = re.findall(r"^\s*X\([^,]+,\s*(\w+),", HEADER.read_text(), re.MULTILINE)
    assert declared, "no X(...) entries found in wasmtime_api.h"
    assert _core.symbols() == tuple(declared)


def test_the_core_uses_the_library_wasmtime_py_loaded() -> None:
    from wasmtime import _ffi

    handle, path = core._library()
    assert handle == _ffi.dll._handle
    assert Path(path).name == "_libwasmtime.so"
    assert Path(path).parent.parent == Path(wasmtime.__file__).parent


def test_a_library_lacking_functions_is_named_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    libc = ctypes.CDLL(None)
    monkeypatch.setattr(core, "_library", lambda: (libc._handle, "libc"))
    with pytest.raises(NativeCoreError, match="wasmtime_engine_increment_epoch") as info:
        core.load()
    for name in _core.symbols():
        assert name in str(info.value)
    assert _core.missing() == (), "a failed load must leave the resolved functions alone"


def test_the_ticker_sleeps_while_no_guest_runs_and_its_thread_ends_at_close() -> None:
    """Nothing is polled here: the thread waits for a guest to run instead of ticking (it ticks
    while one runs: tests/vm/test_preemption.py), and close joins it even then."""
    engine = wasmtime.Engine()
    before = ticker_threads()
    ticker = core.Ticker(100_000, idle_ns=0)  # sleeps after one idle period
    ticker.add(engine, core.address(engine.ptr()))
    assert ticker.running
    assert ticker_threads() == before + 1
    time.sleep(0.02)  # 200 periods: an awake ticker would have ticked
    assert ticker.ticks == 0
    ticker.close()
    assert not ticker.running
    assert ticker_threads_settle(before) == before
    ticker.close()  # twice is fine
    with pytest.raises(RuntimeError, match="closed"):
        ticker.add(engine, core.address(engine.ptr()))


def test_a_dropped_ticker_joins_its_thread() -> None:
    before = ticker_threads()
    engine = wasmtime.Engine()
    ticker = core.Ticker(1_000_000)
    ticker.add(engine, core.address(engine.ptr()))
    del ticker
    assert ticker_threads_settle(before) == before


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="period_ns"):
        core.Ticker(0)
    with pytest.raises(ValueError, match="idle_ns must not be negative"):
        core.Ticker(100_000, idle_ns=-1)
    with pytest.raises(ValueError, match="null pointer"):
        _core.Store(0, object(), -1, 0)
    with pytest.raises(ValueError, match="null pointer"):
        _core.instantiate(0, 1)
    with pytest.raises(TypeError, match="2 or 5 arguments"):
        _core.instantiate(0, 1, b"f")  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="name must be bytes"):
        _core.instantiate(1, 1, "f", [], 0)  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="null pointer"):
        _core.Store(ctypes.c_void_p(), object(), -1, 0)  # a ctypes pointer is read through its buffer
    with pytest.raises(TypeError, match="address or a ctypes pointer"):
        _core.Store("0x1234", object(), -1, 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be a pointer"):
        _core.Store(ctypes.c_int32(5), object(), -1, 0)
    with pytest.raises(TypeError, match="4 arguments"):
        _core.Store(1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="no keyword arguments"):
        _core.Store(1, object(), -1, max_memory=0)  # type: ignore[call-arg]
    ticker = core.Ticker(1_000_000)
    try:
        with pytest.raises(ValueError, match="null pointer"):
            ticker.add(object(), 0)
    finally:
        ticker.close()
    with pytest.raises(TypeError, match="hooks must be a tuple"):
        _core.define_message(1, 1024, (1, 2, 3))
    with pytest.raises(TypeError, match="hooks must be a tuple"):
        _core.define_receive(1, ())
    with pytest.raises(TypeError, match="hooks must be a tuple"):  # run_queue: a RunQueue
        _core.define_receive(1, (print, Exception, print, object(), print, {}, 1, []))
    with pytest.raises(TypeError, match="must be callable"):
        core.Runner(core.RunQueue(), object(), 1, 2, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"must be lunatic_mp\.vm\._core\.RunQueue"):
        core.Runner([], object(), print, print, None)  # type: ignore[arg-type]


def test_the_runner_reads_any_process_type_by_name() -> None:
    """The resume loop reads a Process's slots directly, but any other object goes by name: a
    native process runs through run_slice, and a would-be Wasm process without a Call is refused
    by name, never read at a wrong offset."""
    ran: list[object] = []
    native = SimpleNamespace(native=True, queued=False, finished=None, run_slice=ran.append)
    fake = SimpleNamespace(native=False, queued=False, finished=None, call="not a call")
    queue = core.RunQueue()
    assert queue.make_ready(native) and queue.make_ready(fake) and native.queued is True
    runner = core.Runner(queue, object(), lambda process: None, lambda pid, why: None, "running")
    with pytest.raises(TypeError, match="a process's call must be a Call, not str"):
        runner.run(2)
    assert len(ran) == 1 and native.queued is False and fake.queued is False
    assert runner.current is None and len(queue) == 0


def test_the_run_queue_is_fifo_and_queues_a_process_once() -> None:
    """make_ready queues a process at the back unless its queued flag says it is queued; the
    queue grows past its first ring, keeps FIFO order across the wrap, and clear() forgets all."""
    queue = core.RunQueue()
    processes = [SimpleNamespace(queued=False, n=n) for n in range(200)]
    assert all(queue.make_ready(process) for process in processes[:50])
    assert not queue.make_ready(processes[0]) and len(queue) == 50
    for process in processes[:50]:
        process.queued = False  # as if the loop had taken them: the ring's head moves on
    queue.clear()
    assert len(queue) == 0 and not queue
    for process in processes:
        assert queue.make_ready(process)
    assert [p.n for p in queue.processes()] == list(range(200)) and len(queue) == 200
    queue.clear()


def test_an_instantiation_goes_on_into_its_export_in_c() -> None:
    """A process's instantiation is made with its export to call next: the resume loop starts
    that call in C (the process is RUNNING, with its instance), and Python hears only of the end; a
    missing export fails the process instead."""
    engine = Engine()
    calls: list[object] = []
    on_call_done = engine.on_call_done

    def spy(process: object) -> None:
        calls.append(process)
        on_call_done(process)  # type: ignore[arg-type]

    engine.scheduler.runner = core.Runner(engine.scheduler.run_queue, engine, spy, engine.kill, "RUNNING")
    module = engine.load_module(
        '(module (memory (export "memory") 1) (func (export "three") (result i32) (i32.const 3)))'
    )
    try:
        process = engine.spawn(module, "three")
        engine.run()
        assert process.finished is not None and process.finished.result == (3,)
        assert calls == [process] and process.phase.value == "done"
        lost = engine.spawn(module, "three")
        assert lost.call is not None
        lost.call = wasm.instantiate(module.instance_pre, lost.store, b"gone", [], 0)  # type: ignore[arg-type]
        engine.run()
        assert lost.finished is not None and not lost.finished.ok
        assert "no function export b'gone'" in lost.finished.message
    finally:
        engine.close()


def test_store_set_wasi_refuses_bad_settings() -> None:
    """WASI settings come from wasm.Wasi; anything else is refused with what is wrong, and the
    store stays usable."""
    engine = Engine()
    try:
        store = wasm.new_store(engine.wasm_engine, fuel=None, max_memory=0, owner=SimpleNamespace(pid=7))
        with pytest.raises(TypeError, match="6 arguments"):
            store.set_wasi(0, 0)  # type: ignore[call-arg]
        with pytest.raises(ValueError, match="argv"):
            store.set_wasi(1, 0, 0, 0, 0, ())
        with pytest.raises(TypeError, match=r"\(host, guest\) bytes pairs"):
            store.set_wasi(0, 0, 0, 0, 0, [("/tmp", "/tmp")])
        store.set_wasi(*wasm.Wasi(("prog", "arg"), (("KEY", "value"),), ()).settings)  # then a good one
        store.close()
        store.close()  # again: nothing
        with pytest.raises(ValueError, match="closed"):
            store.set_wasi(0, 0, 0, 0, 0, ())
        assert store.context_address == 0 and store.state == 0
        store.yield_soon()  # nothing once closed
    finally:
        engine.close()


def test_waking_a_store_that_does_not_wait_is_refused() -> None:
    """wake() gives a value to a guest suspended in a C receive; any other store refuses it, so a
    misplaced wake cannot write a result slot that no call owns."""
    engine = Engine()
    store = wasm.new_store(engine.wasm_engine, fuel=None, max_memory=0, owner=SimpleNamespace(pid=7))
    try:
        with pytest.raises(RuntimeError, match="not suspended in a C receive"):
            store.wake(0)
        with pytest.raises(OverflowError, match="not an i32"):
            store.wake(2**31)
    finally:
        store.close()
        engine.close()


def test_a_store_needs_an_owner_with_a_pid() -> None:
    engine = Engine()
    try:
        with pytest.raises(AttributeError, match="pid"):
            wasm.new_store(engine.wasm_engine, fuel=None, max_memory=0, owner=object())
    finally:
        engine.close()


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs the C toolchain to reach the check")
def test_building_without_a_compiler_says_so(tmp_path: Path) -> None:
    env = {**os.environ, "CC": str(tmp_path / "no-such-cc")}
    command = [sys.executable, "setup.py", "-q", "build_ext"]
    command += ["--build-lib", str(tmp_path), "--build-temp", str(tmp_path)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert done.returncode != 0
    assert "no C compiler found" in done.stderr


_DROPPED_MIDWAY = """
import gc
from lunatic_mp import Engine, EnvConfig, examples

engine = Engine()
config = EnvConfig.permissive()
pong = engine.load_module(examples.path("ping_pong.wat"))
guests = {name: engine.load_module(f"{GUESTS}/{name}.wat") for name in ("msg_timeout", "timer_sleep")}
engine.spawn(guests["msg_timeout"], "receive_within", [60_000], config)  # a receive with a timeout
engine.spawn(guests["timer_sleep"], "sleep_then_report", [60_000, 0], config)  # a Python host call
# main's pong is left suspended in a C receive; the two above have run up to their waits.
main = engine.spawn(pong, "main", [10], config)
assert engine.run_until_finished(main).ok
engine.spawn(pong, "main", [10], config)  # never run: its instantiation is pending
del engine, guests, pong, main
print("collected", gc.collect() > 0, flush=True)
"""


def test_an_engine_dropped_with_processes_midway_is_collected_cleanly(tmp_path: Path) -> None:
    """Suspended calls are dropped before their stores, and no ctypes callback is left to call: the
    cyclic collector (or exit) frees an engine that nobody closed without a crash."""
    script = tmp_path / "dropped.py"
    script.write_text(_DROPPED_MIDWAY.replace("{GUESTS}", str(GUESTS)))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "collected True\n", "")
