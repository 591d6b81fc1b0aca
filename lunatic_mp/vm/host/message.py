"""``lunatic::message``: the scratch message, sending, and (selective) receiving.

Each process has one scratch message (``Process.scratch``): ``create_data`` starts one to send,
``receive`` replaces it with what arrived, and the read and write calls work on it. All but
``push_module``/``take_module`` (and the TCP-stream calls, :mod:`lunatic_mp.vm.host.networking`)
are C host functions (``lunatic_mp/vm/message.c``); what they call back is here: ``wait_for`` (the
mailbox) and ``Engine.deliver``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lunatic_mp.vm import core
from lunatic_mp.vm.host._common import TIMEOUT, HostEngine, current, lookup
from lunatic_mp.vm.mailbox import Message
from lunatic_mp.vm.wasm import PENDING, GuestTrap

if TYPE_CHECKING:
    from lunatic_mp.vm.process import Process

NAMESPACE = "lunatic::message"
MAX_RECEIVE_TAGS = 4096
"""Why a guest's send to pid 0 traps: it is nearly always that mistake, and the reply would
otherwise vanish (or, before, land in the host program's mailbox)."""


def scratch_of(process: Process) -> Message:
    message = process.scratch
    if message is None:
        raise GuestTrap("no message in the scratch area: call create_data or receive first")
    return message


def extensible_scratch(process: Process) -> Message:
    """The scratch message, made able to take resources: a received message that holds its data
    inline (fixed, and without resources) is replaced by a copy that can."""
    message = process.scratch = scratch_of(process).extensible()
    return message


def take_scratch(process: Process) -> Message:
    message = scratch_of(process)
    process.scratch = None
    return message


def register(engine: HostEngine) -> None:
    define = engine.linker.define
    max_size = engine.max_message_size

    def push_module(module_id: int) -> int:
        process = current(engine)
        message = extensible_scratch(process)
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

    define(NAMESPACE, "push_module", "I", "I", push_module)
    define(NAMESPACE, "take_module", "I", "I", take_module)

    def wait_for(process: Process, tags: tuple[int, ...] | None, start: int, timeout_ms: int) -> object:
        """Suspend until a wanted message comes or the timeout (> 0) passes: the C receive found
        none in the mailbox, and nothing can arrive between its look and this call (one thread).
        Without a timeout the C receive does the same itself (lmp_wait_forever: keep in step)."""
        process.mailbox.wait(tags, start)
        process.waiting = process.receiving = True  # the C side suspends the call
        engine.wait(process, timeout_ms, on_timeout=TIMEOUT)  # NO_TIMEOUT (-1) waits forever
        return PENDING

    # create_data, write_data, read_data, seek_data, get_tag, data_size, get_process_id, send,
    # receive and send_receive_skip_search: C host functions (lunatic_mp/vm/message.c), no Python
    # trampoline; they check every pointer. send puts a message straight into a local mailbox when
    # nothing else must happen (no receive waits for it, no bound is reached), and calls
    # Engine.deliver otherwise (a waiting receiver, another worker). receive takes a message
    # already in the mailbox in C, and calls wait_for only to suspend: the call then waits in C
    # until Engine.resume wakes it (Store.wake). send_receive_skip_search sends as send does, then
    # waits for a reply among the messages that arrive after it. One hooks tuple serves them all
    # (the lambdas keep it alive as long as the linker).
    on_error = engine.linker.on_host_error
    run_queue = engine.scheduler.run_queue
    # link_batches and worker_batches: a send to a pid on another node, or on another worker of
    # this one, is appended there in C, when the worker offers a batch for it (lunatic_mp.cluster.worker)
    deliver, processes = engine.deliver, engine.processes
    batches = (engine.link_batches, engine.worker_batches)
    hooks = (wait_for, GuestTrap, on_error, PENDING, deliver, processes, TIMEOUT, run_queue, *batches)
    engine.message_hooks = hooks  # a worker's inbound messages take the same path (core.deliver_messages)
    engine.linker.define_native(lambda linker: core.define_message(linker, max_size, hooks))
    engine.linker.define_native(lambda linker: core.define_receive(linker, hooks))
