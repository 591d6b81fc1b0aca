"""``lunatic::message``: the scratch message, sending, and (selective) receiving.

Each process has one scratch message: ``create_data`` starts one to send, ``receive`` replaces it
with what arrived, and the read and write calls work on it.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from lunatic_mp.vm.host._common import OK, TIMEOUT, HostEngine, current, lookup, memory_of
from lunatic_mp.vm.mailbox import Message
from lunatic_mp.vm.wasm import PENDING, GuestTrap

if TYPE_CHECKING:
    from lunatic_mp.vm.process import Process

NAMESPACE = "lunatic::message"
MAX_RECEIVE_TAGS = 4096
NO_PID_ZERO = (
    "send to pid 0: no process has pid 0. A message made with create_data has sender 0, so "
    "get_process_id after create_data returns 0: to reply, call get_process_id on the received "
    "message before create_data"
)
"""Why a guest's send to pid 0 traps: it is nearly always that mistake, and the reply would
otherwise vanish (or, before, land in the host program's mailbox)."""


def scratch_of(process: Process) -> Message:
    message = process.scratch
    if message is None:
        raise GuestTrap("no message in the scratch area: call create_data or receive first")
    return message


def take_scratch(process: Process) -> Message:
    message = scratch_of(process)
    process.scratch = None
    return message


def register(engine: HostEngine) -> None:
    define, define_async = engine.linker.define, engine.linker.define_async
    max_size = engine.max_message_size

    def create_data(tag: int, capacity: int) -> None:
        current(engine).scratch = Message(tag, bytearray())

    def write_data(ptr: int, length: int) -> int:
        process = current(engine)
        message = scratch_of(process)
        if len(message.data) + (length & 0xFFFFFFFF) > max_size:
            raise GuestTrap(f"message exceeds the {max_size}-byte limit")
        if isinstance(message.data, bytes):  # a received message being extended: copy it first
            message.data = bytearray(message.data)
        message.data += memory_of(process, engine).read(ptr, length)
        return length

    def read_data(ptr: int, length: int) -> int:
        process = current(engine)
        message = scratch_of(process)
        data = message.data if isinstance(message.data, bytes) else bytes(message.data)
        count = memory_of(process, engine).read_into(ptr, data, message.cursor, length & 0xFFFFFFFF)
        message.cursor += count
        return count

    def seek_data(position: int) -> None:
        scratch_of(current(engine)).cursor = max(position, 0)

    def push_module(module_id: int) -> int:
        process = current(engine)
        message = scratch_of(process)
        message.modules.append(lookup(process.resources.modules, module_id, "module"))
        return len(message.modules) - 1

    def take_module(index: int) -> int:
        process = current(engine)
        message = scratch_of(process)
        if not 0 <= index < len(message.modules) or message.modules[index] is None:
            raise GuestTrap(f"no module at index {index} of the message")
        module = message.modules[index]
        message.modules[index] = None
        return process.resources.add(process.resources.modules, module)

    define(NAMESPACE, "create_data", "II", "", create_data)
    define(NAMESPACE, "write_data", "ii", "i", write_data)
    define(NAMESPACE, "read_data", "ii", "i", read_data)
    define(NAMESPACE, "seek_data", "I", "", seek_data)
    define(NAMESPACE, "get_tag", "", "I", lambda: scratch_of(current(engine)).tag)
    define(NAMESPACE, "data_size", "", "I", lambda: len(scratch_of(current(engine)).data))
    define(NAMESPACE, "get_process_id", "", "I", lambda: scratch_of(current(engine)).pid)
    define(NAMESPACE, "push_module", "I", "I", push_module)
    define(NAMESPACE, "take_module", "I", "I", take_module)

    deliver = engine.deliver

    def send(pid: int) -> int:
        process = current(engine)
        if pid == 0:
            raise GuestTrap(NO_PID_ZERO)
        message = take_scratch(process)
        message.data = bytes(message.data)  # immutable from here: read_data copies it without a view
        message.cursor = 0
        message.pid = process.pid
        deliver(pid, message)
        return OK

    def wait_for(process: Process, tags: tuple[int, ...] | None, start: int, timeout_ms: int) -> object:
        """Take the oldest wanted message, or suspend until one comes (or the timeout)."""
        message = process.mailbox.take(tags, start)
        if message is not None:
            process.scratch = message
            return int(message.kind)
        if timeout_ms == 0:
            return TIMEOUT
        process.receive_tags = tags
        process.receive_start = start
        engine.wait(process, timeout_ms, on_timeout=TIMEOUT)  # NO_TIMEOUT (-1) waits forever
        return PENDING

    def receive(tags_ptr: int, tags_count: int, timeout_ms: int) -> object:
        process = current(engine)
        tags: tuple[int, ...] | None = None
        if tags_count:
            if not 0 < tags_count <= MAX_RECEIVE_TAGS:
                raise GuestTrap(f"receive takes at most {MAX_RECEIVE_TAGS} tags, got {tags_count}")
            raw = memory_of(process, engine).read(tags_ptr, tags_count * 8)
            tags = struct.unpack(f"<{tags_count}q", raw)
        return wait_for(process, tags, 0, timeout_ms)

    def send_receive_skip_search(pid: int, wait_tag: int, timeout_ms: int) -> object:
        process = current(engine)
        start = len(process.mailbox)  # only a reply can match: skip what was already there
        send(pid)
        return wait_for(process, (wait_tag,), start, timeout_ms)

    define(NAMESPACE, "send", "I", "i", send)
    define_async(NAMESPACE, "receive", "iiI", "i", receive)
    define_async(NAMESPACE, "send_receive_skip_search", "III", "i", send_receive_skip_search)
