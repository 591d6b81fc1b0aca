"""The template process workers and the registry process are forked from
(:mod:`lunatic_mp.cluster.template`): it dies with the supervisor, leaving nothing; a worker forked
from it after the supervisor compiled modules compiles and runs guests; a replacement worker is
the spare it forked in advance; the registry process has no wasmtime in it."""

from __future__ import annotations

import os
import select
import signal
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest
import wasmtime

from lunatic_mp import EnvConfig
from lunatic_mp.api.runtime import Runtime
from lunatic_mp.cluster import supervisor, template
from lunatic_mp.vm.finished import Outcome
from lunatic_mp.vm.plugins import Call, Namespace, PythonPlugin

GUESTS = Path(__file__).parents[1] / "guests"
TIMEOUT = 60.0

pytestmark = pytest.mark.skipif(not template.available(), reason="no pidfds here: children are spawned")

ANSWER_WAT = '(module (memory (export "memory") 1) (func (export "answer") (result i64) (i64.const 42)))'


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    """Wait (on pidfds) until every process of ``pids`` has exited; those still running."""
    pidfds = {}
    for pid in pids:
        try:
            pidfds[os.pidfd_open(pid)] = pid
        except ProcessLookupError:
            continue  # gone already
    try:
        waiting = set(pidfds)
        while waiting:
            ready, _, _ = select.select(list(waiting), [], [], timeout)
            if not ready:
                break
            waiting -= set(ready)
        return sorted(pidfds[fd] for fd in waiting)
    finally:
        for fd in pidfds:
            os.close(fd)


def test_kill_9_of_the_supervisor_leaves_nothing(tmp_path: Path) -> None:
    """SIGKILL of the supervisor ends the template, its spare, the registry process and the
    workers. (And in a script, whose main module the template imports, the registry process still
    has no wasmtime.)"""
    script = tmp_path / "host.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            from lunatic_mp.api.runtime import Runtime

            if __name__ == "__main__":
                runtime = Runtime(workers=2)
                assert runtime._template is not None
                runtime._template.wait_spare(60)
                maps = open(f"/proc/{runtime.registry_os_pid()}/maps").read()
                print("ready", "wasmtime" in maps, flush=True)
                sys.stdin.read()
            """
        )
    )
    host = subprocess.Popen(
        [sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert host.stdout is not None
        # a script that imports the runtime: the registry process is forked before its import
        assert host.stdout.readline().split() == ["ready", "False"]
        descendants = psutil.Process(host.pid).children(recursive=True)
        names = " ".join(p.name() + " " + " ".join(p.cmdline()) for p in descendants)
        assert len(descendants) >= 5, names  # the template, its spare, the registry, two workers
        host.kill()
        host.wait(TIMEOUT)
        assert wait_gone([p.pid for p in descendants], TIMEOUT) == []
    finally:
        if host.poll() is None:
            host.kill()
            host.wait(TIMEOUT)
        if host.stdin is not None:
            host.stdin.close()
        if host.stdout is not None:
            host.stdout.close()


def test_a_worker_forked_after_the_supervisor_compiled_compiles_and_runs_guests() -> None:
    """The supervisor compiles modules; a replacement worker forked afterwards (from the template,
    which never compiled anything) runs them, and a guest on it compiles a module of its own."""
    with Runtime(workers=1) as runtime:
        compiler = runtime.load_module(GUESTS / "spawn_compile.wat")
        basic = runtime.load_module(GUESTS / "rt_basic.wat")
        (lost,) = runtime.worker_ids
        os.kill(runtime.worker_pids()[lost], signal.SIGKILL)
        assert runtime.wait_for_workers(TIMEOUT, losses=1)
        assert runtime.worker_ids != [lost]
        added = runtime.join(runtime.spawn(basic, "add", [1, 2]), TIMEOUT)
        assert added is not None and added.result == (3,)
        pid = runtime.spawn(compiler, "compile_and_spawn", config=EnvConfig.permissive())
        runtime.send(pid, bytes(wasmtime.wat2wasm(ANSWER_WAT)))
        finished = runtime.join(pid, TIMEOUT)
        assert finished is not None and finished.outcome is Outcome.NORMAL, finished
        assert finished.result == (0, 0)


def test_a_replacement_worker_is_the_spare() -> None:
    """The template keeps a child forked in advance: the next worker it starts is that one."""
    with Runtime(workers=1) as runtime:
        assert runtime._template is not None
        spare = runtime._template.wait_spare(TIMEOUT)
        assert spare is not None
        (lost,) = runtime.worker_ids
        os.kill(runtime.worker_pids()[lost], signal.SIGKILL)
        assert runtime.wait_for_workers(TIMEOUT, losses=1)
        assert list(runtime.worker_pids().values()) == [spare]


def mapped(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def test_the_registry_process_has_no_wasmtime_and_workers_do() -> None:
    """The registry process is forked before the template imports the worker: no wasmtime
    library is mapped in it (a worker has it)."""
    with Runtime(workers=1) as runtime:
        registry = runtime.registry_os_pid()
        assert registry is not None
        assert "wasmtime" not in mapped(registry)
        assert "wasmtime" in mapped(next(iter(runtime.worker_pids().values())))


def test_without_the_template_children_are_spawned(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where there are no pidfds, workers and the registry process are spawned, as before."""
    monkeypatch.setattr(supervisor, "template_available", lambda: False)
    with Runtime(workers=1) as runtime:
        assert runtime._template is None
        children = {p.pid for p in psutil.Process().children()}
        assert {*runtime.worker_pids().values(), runtime.registry_os_pid()} <= children
        basic = runtime.load_module(GUESTS / "rt_basic.wat")
        added = runtime.join(runtime.spawn(basic, "add", [1, 2]), TIMEOUT)
        assert added is not None and added.result == (3,)


def test_a_lost_template_takes_its_children_and_they_are_spawned_again() -> None:
    """SIGKILL of the template ends the children forked from it; the supervisor replaces them
    with spawned ones, which serve."""
    with Runtime(workers=1) as runtime:
        assert runtime._template is not None
        os.kill(runtime._template.process.pid, signal.SIGKILL)
        assert runtime.wait_for_workers(TIMEOUT, losses=2)  # the worker and the registry process
        assert runtime._template is None
        basic = runtime.load_module(GUESTS / "rt_basic.wat")
        added = runtime.join(runtime.spawn(basic, "add", [1, 2]), TIMEOUT)
        assert added is not None and added.result == (3,)
        runtime.registry_put("after@1.0.0", runtime.pid)
        assert runtime.registry_get("after") == runtime.pid


def register_greeter(namespace: Namespace) -> None:
    @namespace.function("greet", "ii", "i")
    def greet(call: Call, ptr: int, length: int) -> int:
        call.write(ptr, call.read(ptr, length).upper())
        return length


def test_a_replacement_has_the_plugins() -> None:
    """With plugins, a spare makes no engine ahead (a plugin's register() sees its own worker):
    the replacement makes its engine with them, and serves them."""
    with Runtime(
        workers=1, plugins=[PythonPlugin("greeter", register_greeter)], discover_plugins=False
    ) as runtime:
        (lost,) = runtime.worker_ids
        os.kill(runtime.worker_pids()[lost], signal.SIGKILL)
        assert runtime.wait_for_workers(TIMEOUT, losses=1)
        guest = runtime.load_module(GUESTS / "plugin_greeter.wat")
        env = runtime.environment(EnvConfig.permissive(), plugins=["greeter"])
        finished = env.spawn(guest, "shout").join(TIMEOUT)
        assert finished is not None and finished.outcome is Outcome.NORMAL, finished
        assert struct.pack("<q", finished.result[0]) == b"LUNATIC!"


def test_a_main_module_that_starts_threads_is_warned_of(tmp_path: Path) -> None:
    """Threads started when the main module is imported are not in the workers forked after it:
    the supervisor's log says so."""
    script = tmp_path / "threads.py"
    script.write_text(
        textwrap.dedent(
            """
            import threading
            from lunatic_mp.api.runtime import Runtime

            stop = threading.Event()
            threading.Thread(target=stop.wait, daemon=True).start()

            if __name__ == "__main__":
                with Runtime(workers=1):
                    pass
            """
        )
    )
    result = subprocess.run(
        [sys.executable, str(script)], check=False, capture_output=True, text=True, timeout=TIMEOUT
    )
    assert result.returncode == 0, result.stderr
    assert "the main module started 1 threads when imported" in result.stderr
