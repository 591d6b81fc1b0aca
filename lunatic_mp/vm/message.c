/* lunatic::message as C host functions on the engine's linker (no ctypes trampoline).
 *
 * create_data, write_data, read_data, seek_data, get_tag, data_size and get_process_id work on the
 * calling process's scratch message, a Message (mailbox.c) held in Process.scratch, which the
 * Python side (push/take_module, the timer's send_after: lunatic_mp/vm/host/) shares. send puts it
 * straight into a local process's mailbox when nothing else has to happen (no receive waits for
 * it, no bound is reached), and hands it to Engine.deliver otherwise; receive takes from the
 * mailbox in C and calls wait_for (lunatic_mp/vm/host/message.py) only to suspend. The process is
 * found from the caller's context: its store's data is the process's lmp_proc state.
 *
 * Guests are hostile: every pointer and length is checked against the guest's memory before it is
 * used; a bad one, a missing scratch message or a message past the engine's size limit traps the
 * guest with a message saying which, and never reaches the worker. These functions run on the
 * guest's fiber with the GIL released by poll: each takes it for its duration.
 */
#include "message.h"

#include <string.h>

wasm_trap_t *lmp_trap(const char *message) {
    return lmp_wasmtime_trap_new(message, strlen(message));
}

/* A trap carrying the pending Python exception (cleared): a host error, never an escape into C. */
static wasm_trap_t *lmp_trap_from_error(const char *function) {
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyObject *text = value != NULL ? PyObject_Repr(value) : NULL;
    const char *what = text != NULL ? PyUnicode_AsUTF8(text) : NULL;
    char message[512];
    snprintf(message, sizeof(message), "host error in lunatic::message::%s: %s", function,
             what != NULL ? what : "unknown error");
    PyErr_Clear();
    Py_XDECREF(text);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(traceback);
    return lmp_trap(message);
}

lmp_proc *lmp_caller_state(wasmtime_caller_t *caller) {
    return lmp_wasmtime_context_get_data(lmp_wasmtime_caller_context(caller));
}

/* The guest memory at [ptr, ptr + len), or NULL if any of it is out of bounds (or no memory). */
uint8_t *lmp_span(lmp_proc *state, wasmtime_caller_t *caller, uint32_t ptr, uint32_t len) {
    wasmtime_context_t *context = lmp_wasmtime_caller_context(caller);
    if (!state->have_memory) {
        wasmtime_extern_t item;
        memset(&item, 0, sizeof(item));
        if (!lmp_wasmtime_caller_export_get(caller, "memory", 6, &item) || item.kind != WASMTIME_EXTERN_MEMORY)
            return NULL;
        state->memory = item.of.memory;
        state->base = lmp_wasmtime_memory_data(context, &state->memory);
        state->size = lmp_wasmtime_memory_data_size(context, &state->memory);
        state->have_memory = 1;
    }
    uint64_t end = (uint64_t)ptr + len;
    if (end > state->size) {
        state->size = lmp_wasmtime_memory_data_size(context, &state->memory);
        if (end > state->size)
            return NULL;
    }
    return state->base + ptr;
}

wasm_trap_t *lmp_out_of_bounds(lmp_proc *state, uint32_t ptr, uint32_t len) {
    char message[160];
    if (!state->have_memory)
        return lmp_trap("the module does not export its memory as `memory`");
    snprintf(message, sizeof(message), "out-of-bounds pointer: %u+%u exceeds memory size %zu", ptr, len,
             state->size);
    return lmp_trap(message);
}

const char LMP_OUTSIDE[] = "host function called outside a process";
static const char LMP_NO_SCRATCH[] = "no message in the scratch area: call create_data or receive first";

/* The caller's scratch message (a new reference), or NULL with *trap set. The GIL is held. */
static lmp_message *lmp_scratch(lmp_proc *state, wasm_trap_t **trap) {
    if (state == NULL || state->owner == NULL) {
        *trap = lmp_trap(LMP_OUTSIDE);
        return NULL;
    }
    PyObject *scratch = LMP_GET(state->owner, LMP_SCRATCH);
    if (scratch == NULL) {
        *trap = lmp_trap_from_error("scratch");
        return NULL;
    }
    if (!Py_IS_TYPE(scratch, &lmp_MessageType)) {
        Py_DECREF(scratch);
        *trap = lmp_trap(LMP_NO_SCRATCH);
        return NULL;
    }
    return (lmp_message *)scratch;
}

/* The draft create_data makes (an external message whose data is a bytearray), kept for the next
 * create_data once a send has copied it inline: a message then costs one allocation, not four
 * (the draft, its bytearray, the bytearray's buffer and the sent copy). One spare is enough:
 * guests run one at a time, each host call holding the GIL. */
static lmp_message *lmp_spare_draft;
#define LMP_SPARE_MAX 8192 /* a draft whose buffer grew past this is freed, not kept (4 KiB messages are kept) */

static lmp_message *lmp_new_draft(int64_t tag) {
    lmp_message *draft = lmp_spare_draft;
    if (draft == NULL) {
        PyObject *data = PyByteArray_FromStringAndSize(NULL, 0);
        draft = data != NULL ? lmp_message_external(tag, data) : NULL;
        Py_XDECREF(data);
        return draft;
    }
    lmp_spare_draft = NULL;
    draft->tag = tag;
    draft->pid = 0;
    draft->cursor = 0;
    draft->kind = LMP_KIND_DATA;
    draft->reason = 0;
    return draft;
}

/* Keep draft (a reference given up) as the spare if nothing else holds it or its bytes, emptied
 * but with its buffer; else let it go. */
static void lmp_recycle_draft(lmp_message *draft) {
    lmp_message_extras *extras = lmp_extras(draft);
    PyByteArrayObject *bytes = (PyByteArrayObject *)extras->data;
    if (lmp_spare_draft == NULL && Py_REFCNT(draft) == 1 && PyByteArray_CheckExact(extras->data) &&
        Py_REFCNT(extras->data) == 1 && bytes->ob_exports == 0 && bytes->ob_alloc <= LMP_SPARE_MAX &&
        extras->modules == NULL && extras->streams == NULL) {
        Py_SET_SIZE(bytes, 0);
        bytes->ob_start = bytes->ob_bytes;
        if (bytes->ob_bytes != NULL)
            bytes->ob_bytes[0] = '\0';
        lmp_spare_draft = draft;
        return;
    }
    Py_DECREF(draft);
}

/* create_data(tag: i64, capacity: i64): a new, empty scratch message (capacity is a hint). */
static wasm_trap_t *lmp_create_data(void *env, wasmtime_caller_t *caller, wasmtime_val_raw_t *raw, size_t n) {
    (void)env;
    (void)n;
    lmp_proc *state = lmp_caller_state(caller);
    if (state == NULL || state->owner == NULL)
        return lmp_trap(LMP_OUTSIDE);
    wasm_trap_t *trap = NULL;
    lmp_gil_t gil = lmp_gil_take();
    lmp_message *message = lmp_new_draft(raw[0].i64);
    if (message == NULL || LMP_SET(state->owner, LMP_SCRATCH, (PyObject *)message) < 0)
        trap = lmp_trap_from_error("create_data");
    Py_XDECREF(message);
    lmp_gil_give(gil);
    return trap;
}

/* write_data(ptr: i32, len: i32) -> i32: append guest bytes to the scratch message. */
static wasm_trap_t *lmp_write_data(void *env, wasmtime_caller_t *caller, wasmtime_val_raw_t *raw, size_t n) {
    (void)n;
    size_t max_size = (size_t)(uintptr_t)env;
    uint32_t ptr = (uint32_t)raw[0].i32, len = (uint32_t)raw[1].i32;
    lmp_proc *state = lmp_caller_state(caller);
    wasm_trap_t *trap = NULL;
    lmp_gil_t gil = lmp_gil_take();
    lmp_message *scratch = lmp_scratch(state, &trap);
    if (scratch != NULL && !scratch->external) { /* a received message extended: an external copy */
        Py_SETREF(scratch, lmp_message_external_copy(scratch, PyByteArray_FromStringAndSize));
        if (scratch == NULL || LMP_SET(state->owner, LMP_SCRATCH, (PyObject *)scratch) < 0)
            trap = lmp_trap_from_error("write_data");
    }
    if (scratch != NULL && trap == NULL && !PyByteArray_CheckExact(lmp_extras(scratch)->data)) {
        PyObject *copy = PyByteArray_FromObject(lmp_extras(scratch)->data); /* sent data extended */
        if (copy == NULL)
            trap = lmp_trap_from_error("write_data");
        else
            Py_SETREF(lmp_extras(scratch)->data, copy);
    }
    if (scratch != NULL && trap == NULL) {
        PyObject *data = lmp_extras(scratch)->data;
        size_t have = (size_t)PyByteArray_GET_SIZE(data);
        uint8_t *source = lmp_span(state, caller, ptr, len);
        if ((uint64_t)have + len > max_size) {
            char message[96];
            snprintf(message, sizeof(message), "message exceeds the %zu-byte limit", max_size);
            trap = lmp_trap(message);
        } else if (source == NULL) {
            trap = lmp_out_of_bounds(state, ptr, len);
        } else if (PyByteArray_Resize(data, (Py_ssize_t)(have + len)) < 0) {
            trap = lmp_trap_from_error("write_data");
        } else {
            memcpy(PyByteArray_AS_STRING(data) + have, source, len);
            raw[0].i32 = (int32_t)len;
        }
    }
    Py_XDECREF(scratch);
    lmp_gil_give(gil);
    return trap;
}

/* read_data(ptr: i32, len: i32) -> i32: copy up to len bytes from the cursor into the guest. */
static wasm_trap_t *lmp_read_data(void *env, wasmtime_caller_t *caller, wasmtime_val_raw_t *raw, size_t n) {
    (void)env;
    (void)n;
    uint32_t ptr = (uint32_t)raw[0].i32, len = (uint32_t)raw[1].i32;
    lmp_proc *state = lmp_caller_state(caller);
    wasm_trap_t *trap = NULL;
    lmp_gil_t gil = lmp_gil_take();
    lmp_message *scratch = lmp_scratch(state, &trap);
    if (scratch != NULL) {
        size_t size;
        const uint8_t *bytes = lmp_message_bytes(scratch, &size);
        size_t cursor = scratch->cursor;
        size_t end = size < UINT32_MAX ? size : UINT32_MAX; /* the cursor's reach (Engine caps messages below) */
        uint64_t left = cursor < end ? (uint64_t)(end - cursor) : 0;
        uint32_t count = left < len ? (uint32_t)left : len;
        uint8_t *target = count ? lmp_span(state, caller, ptr, count) : NULL;
        if (count && target == NULL) {
            trap = lmp_out_of_bounds(state, ptr, count);
        } else {
            if (count) {
                memcpy(target, bytes + cursor, count);
                state->read_hint = target;
            }
            scratch->cursor = (uint32_t)(cursor + count); /* <= end */
            raw[0].i32 = (int32_t)count;
        }
    }
    Py_XDECREF(scratch);
    lmp_gil_give(gil);
    return trap;
}

/* seek_data(position: i64): move the cursor (a negative position means the start). */
static wasm_trap_t *lmp_seek_data(void *env, wasmtime_caller_t *caller, wasmtime_val_raw_t *raw, size_t n) {
    (void)env;
    (void)n;
    lmp_proc *state = lmp_caller_state(caller);
    wasm_trap_t *trap = NULL;
    lmp_gil_t gil = lmp_gil_take();
    lmp_message *scratch = lmp_scratch(state, &trap);
    if (scratch != NULL)
        scratch->cursor = raw[0].i64 > 0 ? (raw[0].i64 < UINT32_MAX ? (uint32_t)raw[0].i64 : UINT32_MAX) : 0;
    Py_XDECREF(scratch);
    lmp_gil_give(gil);
    return trap;
}

enum { LMP_FIELD_TAG, LMP_FIELD_PID, LMP_FIELD_SIZE };

/* get_tag, get_process_id (the sender; the dead process of a death notice), data_size: -> i64. */
static wasm_trap_t *lmp_scratch_field(wasmtime_caller_t *caller, wasmtime_val_raw_t *raw, int field) {
    lmp_proc *state = lmp_caller_state(caller);
    wasm_trap_t *trap = NULL;
    lmp_gil_t gil = lmp_gil_take();
    lmp_message *scratch = lmp_scratch(state, &trap);
    if (scratch != NULL) {
        size_t size;
        lmp_message_bytes(scratch, &size);
        raw[0].i64 = field == LMP_FIELD_TAG ? scratch->tag : field == LMP_FIELD_PID ? scratch->pid : (int64_t)size;
    }
    Py_XDECREF(scratch);
    lmp_gil_give(gil);
    return trap;
}

static wasm_trap_t *lmp_get_tag(void *env, wasmtime_caller_t *caller, wasmtime_val_raw_t *raw, size_t n) {
    (void)env;
    (void)n;
    return lmp_scratch_field(caller, raw, LMP_FIELD_TAG);
}

static wasm_trap_t *lmp_get_process_id(void *env, wasmtime_caller_t *caller, wasmtime_val_raw_t *raw, size_t n) {
    (void)env;
    (void)n;
    return lmp_scratch_field(caller, raw, LMP_FIELD_PID);
}

static wasm_trap_t *lmp_data_size(void *env, wasmtime_caller_t *caller, wasmtime_val_raw_t *raw, size_t n) {
    (void)env;
    (void)n;
    return lmp_scratch_field(caller, raw, LMP_FIELD_SIZE);
}

/* A trap for the pending Python exception (cleared), as the Python trampolines make them: a
 * guest_trap's text is the reason; anything else is the host's fault, reported to on_error first
 * (Engine.host_errors) and trapped as a host error. The GIL is held. */
static wasm_trap_t *lmp_trap_from_exception(PyObject *guest_trap, PyObject *on_error, const char *function) {
    PyObject *type, *value, *traceback;
    if (PyErr_ExceptionMatches(guest_trap)) {
        PyErr_Fetch(&type, &value, &traceback);
        PyObject *text = value != NULL ? PyObject_Str(value) : NULL;
        const char *reason = text != NULL ? PyUnicode_AsUTF8(text) : NULL;
        wasm_trap_t *trap = lmp_trap(reason != NULL ? reason : "refused by the host");
        PyErr_Clear();
        Py_XDECREF(text);
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(traceback);
        return trap;
    }
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    PyObject *reported = value != NULL ? PyObject_CallOneArg(on_error, value) : NULL;
    Py_XDECREF(reported);
    PyErr_Clear();
    PyErr_Restore(type, value, traceback);
    return lmp_trap_from_error(function);
}


wasm_trap_t *lmp_trap_from_hooks(PyObject *hooks, const char *function) {
    return lmp_trap_from_exception(LMP_HOOK(hooks, LMP_GUEST_TRAP), LMP_HOOK(hooks, LMP_ON_ERROR), function);
}

/* Returned by lmp_send_scratch: NULL (sent), a guest error to trap with, or this (a Python
 * exception is set). */
const char LMP_PYTHON_ERROR[] = "";

/* A reply sent to the sender of a message the guest made itself: the host program's mailbox
 * used to take it silently, so a guest server lost every reply to a real requester. */
static const char LMP_NO_PID_ZERO[] =
    "send to pid 0: no process has pid 0. A message made with create_data has sender 0, so "
    "get_process_id after create_data returns 0: to reply, call get_process_id on the received "
    "message before create_data";

/* Hand message to process, suspended in a C receive that wants it, as Engine.deliver and
 * Engine.resume do (keep the three in step): 1 if done, 0 if they must (a timeout to cancel, a
 * paused or already queued process), -1 on error. */
static int lmp_wake_receiver(PyObject *hooks, PyObject *process, lmp_mailbox *box, lmp_message *message) {
    lmp_proc *state = box->waiter;
    PyObject *timer = LMP_GET(process, LMP_TIMER);
    if (timer == NULL)
        return -1;
    int plain = timer == Py_None;
    Py_DECREF(timer);
    int parked = plain ? LMP_FLAG(process, LMP_PARKED) : 0;
    int queued = plain && parked == 0 ? LMP_FLAG(process, LMP_QUEUED) : 0;
    if (parked < 0 || queued < 0)
        return -1;
    if (!plain || parked || queued)
        return 0;
    if (LMP_SET(process, LMP_SCRATCH, (PyObject *)message) < 0)
        return -1;
    lmp_mailbox_set_wait(box, NULL, 0, 0, -1);
    state->wake_value = message->kind;
    state->woken = 1;
    if (LMP_SET(process, LMP_RECEIVING, Py_False) < 0 || LMP_SET(process, LMP_WAITING, Py_False) < 0)
        return -1;
    /* It runs soon, usually next: start fetching what of it is coldest when many processes take
     * turns (a ring of 1,000), the top of its fiber stack, the buffer its last read_data filled,
     * its store and its call's future, whose page walks and misses otherwise stall its resume and
     * its read (perf: 19% of a hop). A prefetch never faults, whatever the address has become. */
    __builtin_prefetch(state->stack_hint, 1);
    if (state->read_hint != NULL)
        __builtin_prefetch(state->read_hint, 1);
    __builtin_prefetch(state->context, 1);
    lmp_calls_prefetch(state);
    return lmp_make_ready(LMP_HOOK(hooks, LMP_RUN_QUEUE), process) < 0 ? -1 : 1;
}

/* Put message into the mailbox of local process pid, or hand it to a C receive waiting for it,
 * when nothing else must happen: 1 if it did, 0 if Engine.deliver must (another worker, a bound
 * reached, a special mailbox, a receiver to wake that is not plain). */
static int lmp_put_local(PyObject *hooks, PyObject *pid, lmp_message *message) {
    PyObject *target = PyDict_GetItemWithError(LMP_HOOK(hooks, LMP_PROCESSES), pid);
    if (target == NULL)
        return PyErr_Occurred() ? -1 : 0;
    PyObject *mailbox = LMP_GET(target, LMP_MAILBOX);
    if (mailbox == NULL)
        return -1;
    int done = 0;
    lmp_mailbox *box = (lmp_mailbox *)mailbox;
    if (!Py_IS_TYPE(mailbox, &lmp_MailboxType))
        done = 0;
    else if (!lmp_mailbox_wants(box, message->tag))
        done = box->bound == 0 || box->count + 1 < box->bound ? (lmp_mailbox_put(box, message) < 0 ? -1 : 1) : 0;
    else if (box->waiter != NULL && box->waiter->wait_results != NULL)
        done = lmp_wake_receiver(hooks, target, box, message);
    Py_DECREF(mailbox);
    return done;
}

int lmp_deliver(PyObject *hooks, PyObject *pid, lmp_message *message) {
    int local = lmp_put_local(hooks, pid, message);
    if (local != 0)
        return local < 0 ? -1 : 0;
    PyObject *workers = LMP_HOOK(hooks, LMP_WORKER_BATCHES), *nodes = LMP_HOOK(hooks, LMP_LINK_BATCHES);
    if (PyDict_GET_SIZE(workers) != 0 || PyDict_GET_SIZE(nodes) != 0) {
        int overflow = 0; /* in a worker: another worker's pid, or another node's */
        long long to = PyLong_AsLongLongAndOverflow(pid, &overflow);
        if (to == -1 && PyErr_Occurred())
            return -1;
        int batched = overflow ? 0 : lmp_batch_for_worker(hooks, to, message);
        if (batched == 0 && !overflow)
            batched = lmp_batch_for_node(hooks, to, message);
        if (batched != 0)
            return batched < 0 ? -1 : 0;
    }
    PyObject *delivered = PyObject_CallFunctionObjArgs(LMP_HOOK(hooks, LMP_DELIVER), pid, (PyObject *)message, NULL);
    Py_XDECREF(delivered);
    return delivered != NULL ? 0 : -1;
}

/* The message that sending message (a new reference, or NULL with an exception) puts into a
 * mailbox: itself if inline, carrying resources or over 64 KiB (its data frozen into bytes);
 * otherwise an inline copy, the draft's bytearray left behind with the draft. */
static lmp_message *lmp_sealed(lmp_message *message) {
    if (!message->external)
        return (lmp_message *)Py_NewRef((PyObject *)message);
    size_t size;
    lmp_message_bytes(message, &size);
    if (size <= LMP_INLINE_MAX && lmp_message_plain(message))
        return lmp_message_inline_copy(message);
    lmp_message_extras *extras = lmp_extras(message);
    if (!PyBytes_CheckExact(extras->data)) {
        PyObject *frozen = PyBytes_FromObject(extras->data);
        if (frozen == NULL)
            return NULL;
        Py_SETREF(extras->data, frozen);
    }
    return (lmp_message *)Py_NewRef((PyObject *)message);
}

/* Send the process's scratch message to pid: it leaves the scratch area, sealed (lmp_sealed), and
 * goes into a local mailbox or through Engine.deliver (lmp_deliver). The GIL is held. */
const char *lmp_send_scratch(PyObject *hooks, lmp_proc *state, int64_t to) {
    if (to == 0)
        return LMP_NO_PID_ZERO;
    PyObject *scratch = LMP_GET(state->owner, LMP_SCRATCH);
    if (scratch == NULL)
        return LMP_PYTHON_ERROR;
    if (!Py_IS_TYPE(scratch, &lmp_MessageType)) {
        Py_DECREF(scratch);
        return LMP_NO_SCRATCH;
    }
    const char *outcome = LMP_PYTHON_ERROR;
    PyObject *pid = NULL;
    lmp_message *message = NULL;
    if (LMP_SET(state->owner, LMP_SCRATCH, Py_None) < 0)
        goto done;
    ((lmp_message *)scratch)->pid = state->pid;
    if ((message = lmp_sealed((lmp_message *)scratch)) == NULL)
        goto done;
    message->cursor = 0;
    if ((pid = PyLong_FromLongLong(to)) == NULL)
        goto done;
    if (lmp_deliver(hooks, pid, message) < 0)
        goto done;
    outcome = NULL;
done:
    Py_XDECREF(pid);
    if (message != NULL && message != (lmp_message *)scratch) /* an inline copy went: reuse the draft */
        lmp_recycle_draft((lmp_message *)scratch);
    else
        Py_DECREF(scratch);
    Py_XDECREF(message);
    return outcome;
}

/* send(pid: i64) -> i32. env: the hooks. */
static wasm_trap_t *lmp_send(void *env, wasmtime_caller_t *caller, wasmtime_val_raw_t *raw, size_t n) {
    (void)n;
    lmp_proc *state = lmp_caller_state(caller);
    if (state == NULL || state->owner == NULL)
        return lmp_trap(LMP_OUTSIDE);
    wasm_trap_t *trap = NULL;
    lmp_gil_t gil = lmp_gil_take();
    const char *error = lmp_send_scratch(env, state, raw[0].i64);
    if (error == LMP_PYTHON_ERROR)
        trap = lmp_trap_from_hooks(env, "send");
    else if (error != NULL)
        trap = lmp_trap(error);
    else
        raw[0].i32 = 0; /* OK */
    lmp_gil_give(gil);
    return trap;
}

typedef struct {
    const char *name;
    const char *params; /* 'i' i32, 'I' i64 */
    const char *results;
    wasmtime_func_unchecked_callback_t callback;
} lmp_host_function;

static const lmp_host_function lmp_message_functions[] = {
    {"create_data", "II", "", lmp_create_data}, {"write_data", "ii", "i", lmp_write_data},
    {"read_data", "ii", "i", lmp_read_data},    {"seek_data", "I", "", lmp_seek_data},
    {"get_tag", "", "I", lmp_get_tag},          {"data_size", "", "I", lmp_data_size},
    {"get_process_id", "", "I", lmp_get_process_id}, {"send", "I", "i", lmp_send},
};

void lmp_valtypes(wasm_valtype_vec_t *out, const char *kinds) {
    wasm_valtype_t *types[8];
    size_t count = strlen(kinds);
    for (size_t i = 0; i < count; i++)
        types[i] = lmp_wasm_valtype_new(kinds[i] == 'I' ? WASM_I64 : WASM_I32);
    lmp_wasm_valtype_vec_new(out, count, types);
}

int lmp_check_hooks(PyObject *hooks, const char *function) {
    if (PyTuple_CheckExact(hooks) && PyTuple_GET_SIZE(hooks) == LMP_HOOKS &&
        PyDict_Check(LMP_HOOK(hooks, LMP_PROCESSES)) && Py_IS_TYPE(LMP_HOOK(hooks, LMP_RUN_QUEUE), &lmp_RunQueueType) &&
        PyDict_CheckExact(LMP_HOOK(hooks, LMP_LINK_BATCHES)) && PyDict_CheckExact(LMP_HOOK(hooks, LMP_WORKER_BATCHES)))
        return 0;
    PyErr_Format(PyExc_TypeError,
                 "%s: hooks must be a tuple (wait_for, guest_trap, on_error, PENDING, deliver, processes, TIMEOUT, "
                 "run_queue: a RunQueue, link_batches: a dict, worker_batches: a dict)",
                 function);
    return -1;
}

const char lmp_define_message_doc[] =
    "define_message(linker, max_message_size, hooks) -> tuple[tuple[str, str, str, str], ...]\n\n"
    "Define lunatic::message's scratch-buffer functions and send (C) on a wasmtime_linker_t. hooks:\n"
    "(wait_for, guest_trap, on_error, PENDING, deliver, processes, TIMEOUT, run_queue, link_batches,\n"
    "worker_batches), kept\n"
    "alive by the caller as long as the linker: send puts a message into the mailbox of a process in the\n"
    "processes dict (pid -> process), or wakes it in a C receive (queueing it on run_queue, a RunQueue), or\n"
    "appends it to worker_batches[place] or link_batches[node] (bytearrays of link records) for a pid on\n"
    "another worker of this node or on another node, when nothing\n"
    "else has to happen, and calls deliver(pid, message) otherwise;\n"
    "traps with a guest_trap's text, and reports any other exception to on_error before trapping.\n"
    "Returns what it defined, as (namespace, name, params, results) with 'i' for i32 and 'I' for\n"
    "i64, as Linker.define takes.";

PyObject *lmp_define_message(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "define_message takes 3 arguments, got %zd", nargs);
        return NULL;
    }
    if (lmp_check_hooks(args[2], "define_message") < 0 || !lmp_require_ready())
        return NULL;
    wasmtime_linker_t *linker = lmp_address(args[0], "the linker");
    if (linker == NULL)
        return NULL;
    size_t max_size = PyLong_AsSize_t(args[1]);
    if (max_size == (size_t)-1 && PyErr_Occurred())
        return NULL;
    size_t count = sizeof(lmp_message_functions) / sizeof(lmp_message_functions[0]);
    PyObject *names = PyTuple_New((Py_ssize_t)count);
    if (names == NULL)
        return NULL;
    static const char namespace[] = "lunatic::message";
    for (size_t i = 0; i < count; i++) {
        const lmp_host_function *function = &lmp_message_functions[i];
        wasm_valtype_vec_t params, results;
        lmp_valtypes(&params, function->params);
        lmp_valtypes(&results, function->results);
        wasm_functype_t *type = lmp_wasm_functype_new(&params, &results);
        void *env = function->callback == lmp_write_data ? (void *)(uintptr_t)max_size : NULL;
        if (function->callback == lmp_send)
            env = args[2];
        wasmtime_error_t *error = lmp_wasmtime_linker_define_func_unchecked(
            linker, namespace, sizeof(namespace) - 1, function->name, strlen(function->name), type,
            function->callback, env, NULL);
        lmp_wasm_functype_delete(type);
        if (error != NULL) {
            char what[96];
            snprintf(what, sizeof(what), "cannot define lunatic::message::%s", function->name);
            Py_DECREF(names);
            return lmp_wasmtime_error(error, what);
        }
        PyObject *name = Py_BuildValue("(ssss)", namespace, function->name, function->params, function->results);
        if (name == NULL) {
            Py_DECREF(names);
            return NULL;
        }
        PyTuple_SET_ITEM(names, (Py_ssize_t)i, name);
    }
    return names;
}
