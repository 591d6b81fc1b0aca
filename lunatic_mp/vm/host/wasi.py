"""``lunatic::wasi``: WASI arguments, environment and directories of configs for children; and
``poll_oneoff``, the one WASI function that must not come from wasmtime.

The ``wasi_snapshot_preview1`` functions come from wasmtime, given each process's own arguments,
environment and preopened directories when it is spawned. wasmtime's ``poll_oneoff`` sleeps on
the calling thread, so a guest's ``sleep()`` or ``nanosleep()`` would stop every process of its
worker; here it suspends only its process, like ``lunatic::process::sleep_ms``. Subscriptions to
file descriptors are reported ready at once (a worker's WASI files are regular files, stdout and
stderr, which never block); the call then does not wait for its clocks.
"""

from __future__ import annotations

import struct
import time

from lunatic_mp.config import EnvConfig
from lunatic_mp.vm.host._common import HostEngine, current, lookup, memory_of
from lunatic_mp.vm.wasm import PENDING

NAMESPACE = "lunatic::wasi"
WASI = "wasi_snapshot_preview1"

SUBSCRIPTION = struct.Struct("<QB7xIxxxxQQH6x")  # userdata, tag; clock: id, timeout, precision, flags
EVENT = struct.Struct("<QHB5xQH6x")  # userdata, error, type; fd_readwrite: nbytes, flags
CLOCK, FD_READ, FD_WRITE = 0, 1, 2
REALTIME, MONOTONIC, PROCESS_CPUTIME, THREAD_CPUTIME = 0, 1, 2, 3
ABSTIME = 1
ERRNO_SUCCESS, ERRNO_INVAL = 0, 28
FOREVER_S = 10**9
"""Waits longer than this (about 32 years) never end: the timer is left out."""


def register(engine: HostEngine) -> None:
    def config_and_text(config_id: int, *spans: tuple[int, int]) -> tuple[EnvConfig, list[str]]:
        process = current(engine)
        config = lookup(process.resources.configs, config_id, "config")
        memory = memory_of(process, engine)
        return config, [memory.read_str(ptr, length) for ptr, length in spans]

    def add_environment_variable(
        config_id: int, key_ptr: int, key_len: int, value_ptr: int, value_len: int
    ) -> None:
        config, (key, value) = config_and_text(config_id, (key_ptr, key_len), (value_ptr, value_len))
        config.env[key] = value

    def add_command_line_argument(config_id: int, ptr: int, length: int) -> None:
        config, (argument,) = config_and_text(config_id, (ptr, length))
        config.args.append(argument)

    def preopen_dir(config_id: int, ptr: int, length: int) -> None:
        config, (path,) = config_and_text(config_id, (ptr, length))
        config.preopened_dirs[path] = path

    def poll_oneoff(in_ptr: int, out_ptr: int, count: int, nevents_ptr: int) -> object:
        process = current(engine)
        memory = memory_of(process, engine)
        if count <= 0:
            return ERRNO_INVAL
        raw = memory.read(in_ptr, count * SUBSCRIPTION.size)
        memory.check(out_ptr, count * EVENT.size)
        memory.check(nevents_ptr, 4)
        ready: list[tuple[int, int]] = []  # (userdata, type) of the descriptor subscriptions
        clocks: list[tuple[float, int]] = []  # (seconds from now, userdata)
        for offset in range(0, len(raw), SUBSCRIPTION.size):
            userdata, tag, clock, timeout, _precision, flags = SUBSCRIPTION.unpack_from(raw, offset)
            if tag in (FD_READ, FD_WRITE):
                ready.append((userdata, tag))
            elif tag != CLOCK or clock not in (REALTIME, MONOTONIC, PROCESS_CPUTIME, THREAD_CPUTIME):
                return ERRNO_INVAL
            elif not flags & ABSTIME:
                clocks.append((timeout / 1e9, userdata))
            elif clock == REALTIME:
                clocks.append((timeout / 1e9 - time.time(), userdata))
            elif clock == MONOTONIC:  # its zero is when the process's WASI context was made
                clocks.append((process.wasi_epoch + timeout / 1e9 - time.monotonic(), userdata))
            else:
                return ERRNO_INVAL  # an absolute CPU time cannot be waited for

        def report(events: list[tuple[int, int]]) -> None:
            packed = b"".join(EVENT.pack(userdata, ERRNO_SUCCESS, kind, 0, 0) for userdata, kind in events)
            memory.write(out_ptr, packed)
            memory.write_u32(nevents_ptr, len(events))

        if ready:
            report(ready)
            return ERRNO_SUCCESS
        first = min(delay for delay, _ in clocks)
        due = [(userdata, CLOCK) for delay, userdata in clocks if delay <= first]
        if first <= 0:
            report(due)
            return ERRNO_SUCCESS

        def expire() -> None:
            process.timer = None
            engine.resume(process, ERRNO_SUCCESS, lambda: report(due))

        if first < FOREVER_S:
            process.timer = engine.scheduler.call_later(first, expire)
        return PENDING

    engine.linker.define_async(WASI, "poll_oneoff", "iiii", "i", poll_oneoff)
    engine.linker.define(NAMESPACE, "config_add_environment_variable", "Iiiii", "", add_environment_variable)
    engine.linker.define(NAMESPACE, "config_add_command_line_argument", "Iii", "", add_command_line_argument)
    engine.linker.define(NAMESPACE, "config_preopen_dir", "Iii", "", preopen_dir)
