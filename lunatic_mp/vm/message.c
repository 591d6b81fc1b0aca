/* lunatic::message as C host functions on the engine's linker (no ctypes trampoline).
 *
 * create_data, write_data, read_data, seek_data, get_tag, data_size and get_process_id work on the
 * calling process's scratch message, a lunatic_mp.vm.mailbox.Message held in Process.scratch, which
 * the Python side (push/take_module, the timer's send_after: lunatic_mp/vm/host/) shares. send hands
 * it to Engine.deliver; receive and send_receive_skip_search (async) call wait_for, which takes a
 * message from the Python mailbox or arms the wait. The process is
 * found from the caller's context: its store's data is the process's lmp_proc state.
 *
 * Guests are hostile: every pointer and length is checked against the guest's memory before it is
 * used; a bad one, a missing scratch message or a message past the engine's size limit traps the
 * guest with a message saying which, and never reaches the worker. These functions run on the
 * guest's fiber with the GIL released by poll: each takes it for its duration.
 */
#include "core.h"

#include <string.h>

static PyObject *lmp_str_scratch, *lmp_str_data, *lmp_str_cursor, *lmp_str_tag, *lmp_str_pid, *lmp_str_mailbox;
static PyObject *lmp_message_type; /* lunatic_mp.vm.mailbox.Message */
static PyObject *lmp_zero;

int lmp_message_init(PyObject *module) {
    (void)module;
    lmp_str_scratch = PyUnicode_InternFromString("scratch");
    lmp_str_data = PyUnicode_InternFromString("data");
    lmp_str_cursor = PyUnicode_InternFromString("cursor");
    lmp_str_tag = PyUnicode_InternFromString("tag");
    lmp_str_pid = PyUnicode_InternFromString("pid");
    lmp_str_mailbox = PyUnicode_InternFromString("mailbox");
    if (lmp_str_mailbox == NULL)
        return -1;
    lmp_zero = PyLong_FromLong(0);
    if (lmp_zero == NULL)
        return -1;
    if (!lmp_str_scratch || !lmp_str_data || !lmp_str_cursor || !lmp_str_tag || !lmp_str_pid)
        return -1;
    return 0;
}

static wasm_trap_t *lmp_trap(const char *message) {
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

static lmp_proc *lmp_caller_state(wasmtime_caller_t *caller) {
    return lmp_wasmtime_context_get_data(lmp_wasmtime_caller_context(caller));
}

/* The guest memory at [ptr, ptr + len), or NULL if any of it is out of bounds (or no memory). */
static uint8_t *lmp_span(lmp_proc *state, wasmtime_caller_t *caller, uint32_t ptr, uint32_t len) {
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

static wasm_trap_t *lmp_out_of_bounds(lmp_proc *state, uint32_t ptr, uint32_t len) {
    char message[160];
    if (!state->have_memory)
        return lmp_trap("the module does not export its memory as `memory`");
    snprintf(message, sizeof(message), "out-of-bounds pointer: %u+%u exceeds memory size %zu", ptr, len,
             state->size);
    return lmp_trap(message);
}

/* The caller's scratch message (a new reference), or NULL with *trap set. */
static PyObject *lmp_scratch(lmp_proc *state, wasm_trap_t **trap) {
    if (state == NULL || state->owner == NULL) {
        *trap = lmp_trap("host function called outside a process");
        return NULL;
    }
    PyObject *scratch = PyObject_GetAttr(state->owner, lmp_str_scratch);
    if (scratch == NULL) {
        *trap = lmp_trap_from_error("scratch");
        return NULL;
    }
    if (scratch == Py_None) {
        Py_DECREF(scratch);
        *trap = lmp_trap("no message in the scratch area: call create_data or receive first");
        return NULL;
    }
    return scratch;
}

/* create_data(tag: i64, capacity: i64): a new, empty scratch message (capacity is a hint). */
static wasm_trap_t *lmp_create_data(void *env, wasmtime_caller_t *caller, wasmtime_val_raw_t *raw, size_t n) {
    (void)env;
    (void)n;
    lmp_proc *state = lmp_caller_state(caller);
    if (state == NULL || state->owner == NULL)
        return lmp_trap("host function called outside a process");
    wasm_trap_t *trap = NULL;
    PyGILState_STATE gil = PyGILState_Ensure();
    PyObject *data = PyByteArray_FromStringAndSize(NULL, 0);
    PyObject *tag = data != NULL ? PyLong_FromLongLong(raw[0].i64) : NULL;
    PyObject *message = tag != NULL ? PyObject_CallFunctionObjArgs(lmp_message_type, tag, data, NULL) : NULL;
    if (message == NULL || PyObject_SetAttr(state->owner, lmp_str_scratch, message) < 0)
        trap = lmp_trap_from_error("create_data");
    Py_XDECREF(message);
    Py_XDECREF(tag);
    Py_XDECREF(data);
    PyGILState_Release(gil);
    return trap;
}

/* write_data(ptr: i32, len: i32) -> i32: append guest bytes to the scratch message. */
static wasm_trap_t *lmp_write_data(void *env, wasmtime_caller_t *caller, wasmtime_val_raw_t *raw, size_t n) {
    (void)n;
    size_t max_size = (size_t)(uintptr_t)env;
    uint32_t ptr = (uint32_t)raw[0].i32, len = (uint32_t)raw[1].i32;
    lmp_proc *state = lmp_caller_state(caller);
    wasm_trap_t *trap = NULL;
    PyGILState_STATE gil = PyGILState_Ensure();
    PyObject *scratch = lmp_scratch(state, &trap);
    PyObject *data = scratch != NULL ? PyObject_GetAttr(scratch, lmp_str_data) : NULL;
    if (scratch != NULL && data == NULL)
        trap = lmp_trap_from_error("write_data");
    if (data != NULL && !PyByteArray_Check(data)) { /* a received message being extended: copy it */
        PyObject *copy = PyByteArray_FromObject(data);
        Py_DECREF(data);
        data = copy;
        if (data == NULL || PyObject_SetAttr(scratch, lmp_str_data, data) < 0) {
            Py_CLEAR(data);
            trap = lmp_trap_from_error("write_data");
        }
    }
    if (data != NULL) {
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
    Py_XDECREF(data);
    Py_XDECREF(scratch);
    PyGILState_Release(gil);
    return trap;
}

/* read_data(ptr: i32, len: i32) -> i32: copy up to len bytes from the cursor into the guest. */
static wasm_trap_t *lmp_read_data(void *env, wasmtime_caller_t *caller, wasmtime_val_raw_t *raw, size_t n) {
    (void)env;
    (void)n;
    uint32_t ptr = (uint32_t)raw[0].i32, len = (uint32_t)raw[1].i32;
    lmp_proc *state = lmp_caller_state(caller);
    wasm_trap_t *trap = NULL;
    PyGILState_STATE gil = PyGILState_Ensure();
    PyObject *scratch = lmp_scratch(state, &trap);
    PyObject *data = scratch != NULL ? PyObject_GetAttr(scratch, lmp_str_data) : NULL;
    PyObject *cursor_obj = data != NULL ? PyObject_GetAttr(scratch, lmp_str_cursor) : NULL;
    long long cursor = cursor_obj != NULL ? PyLong_AsLongLong(cursor_obj) : -1;
    char *bytes = NULL;
    Py_ssize_t size = 0;
    if (scratch != NULL && (data == NULL || cursor_obj == NULL || (cursor == -1 && PyErr_Occurred()))) {
        trap = lmp_trap_from_error("read_data");
    } else if (scratch != NULL) {
        if (PyBytes_Check(data)) {
            bytes = PyBytes_AS_STRING(data);
            size = PyBytes_GET_SIZE(data);
        } else if (PyByteArray_Check(data)) {
            bytes = PyByteArray_AS_STRING(data);
            size = PyByteArray_GET_SIZE(data);
        }
        uint64_t left = cursor >= 0 && cursor < (long long)size ? (uint64_t)(size - cursor) : 0;
        uint32_t count = left < len ? (uint32_t)left : len;
        uint8_t *target = count ? lmp_span(state, caller, ptr, count) : NULL;
        if (count && target == NULL) {
            trap = lmp_out_of_bounds(state, ptr, count);
        } else {
            if (count)
                memcpy(target, bytes + cursor, count);
            PyObject *moved = PyLong_FromLongLong(cursor + count);
            if (moved == NULL || PyObject_SetAttr(scratch, lmp_str_cursor, moved) < 0)
                trap = lmp_trap_from_error("read_data");
            Py_XDECREF(moved);
            raw[0].i32 = (int32_t)count;
        }
    }
    Py_XDECREF(cursor_obj);
    Py_XDECREF(data);
    Py_XDECREF(scratch);
    PyGILState_Release(gil);
    return trap;
}

/* seek_data(position: i64): move the cursor (a negative position means the start). */
static wasm_trap_t *lmp_seek_data(void *env, wasmtime_caller_t *caller, wasmtime_val_raw_t *raw, size_t n) {
    (void)env;
    (void)n;
    lmp_proc *state = lmp_caller_state(caller);
    wasm_trap_t *trap = NULL;
    PyGILState_STATE gil = PyGILState_Ensure();
    PyObject *scratch = lmp_scratch(state, &trap);
    if (scratch != NULL) {
        PyObject *position = PyLong_FromLongLong(raw[0].i64 > 0 ? raw[0].i64 : 0);
        if (position == NULL || PyObject_SetAttr(scratch, lmp_str_cursor, position) < 0)
            trap = lmp_trap_from_error("seek_data");
        Py_XDECREF(position);
    }
    Py_XDECREF(scratch);
    PyGILState_Release(gil);
    return trap;
}

/* An i64 attribute of the scratch message (its tag, or its sender's pid), as u64 bits. */
static wasm_trap_t *lmp_scratch_int(wasmtime_caller_t *caller, wasmtime_val_raw_t *raw, PyObject *attribute,
                                    const char *function) {
    lmp_proc *state = lmp_caller_state(caller);
    wasm_trap_t *trap = NULL;
    PyGILState_STATE gil = PyGILState_Ensure();
    PyObject *scratch = lmp_scratch(state, &trap);
    PyObject *value = scratch != NULL ? PyObject_GetAttr(scratch, attribute) : NULL;
    if (scratch != NULL) {
        unsigned long long bits = value != NULL ? PyLong_AsUnsignedLongLongMask(value) : (unsigned long long)-1;
        if (value == NULL || PyErr_Occurred())
            trap = lmp_trap_from_error(function);
        else
            raw[0].i64 = (int64_t)bits;
    }
    Py_XDECREF(value);
    Py_XDECREF(scratch);
    PyGILState_Release(gil);
    return trap;
}

/* get_tag() -> i64 */
static wasm_trap_t *lmp_get_tag(void *env, wasmtime_caller_t *caller, wasmtime_val_raw_t *raw, size_t n) {
    (void)env;
    (void)n;
    return lmp_scratch_int(caller, raw, lmp_str_tag, "get_tag");
}

/* get_process_id() -> i64: the sender of a received message (the dead process of a death notice). */
static wasm_trap_t *lmp_get_process_id(void *env, wasmtime_caller_t *caller, wasmtime_val_raw_t *raw, size_t n) {
    (void)env;
    (void)n;
    return lmp_scratch_int(caller, raw, lmp_str_pid, "get_process_id");
}

/* data_size() -> i64 */
static wasm_trap_t *lmp_data_size(void *env, wasmtime_caller_t *caller, wasmtime_val_raw_t *raw, size_t n) {
    (void)env;
    (void)n;
    lmp_proc *state = lmp_caller_state(caller);
    wasm_trap_t *trap = NULL;
    PyGILState_STATE gil = PyGILState_Ensure();
    PyObject *scratch = lmp_scratch(state, &trap);
    PyObject *data = scratch != NULL ? PyObject_GetAttr(scratch, lmp_str_data) : NULL;
    if (scratch != NULL) {
        Py_ssize_t size = data != NULL ? PyObject_Length(data) : -1;
        if (size < 0)
            trap = lmp_trap_from_error("data_size");
        else
            raw[0].i64 = (int64_t)size;
    }
    Py_XDECREF(data);
    Py_XDECREF(scratch);
    PyGILState_Release(gil);
    return trap;
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

/* Send the process's scratch message to pid: it leaves the scratch area, its data becomes
 * immutable bytes (read_data then copies without a view), and deliver(pid, message) puts it in a
 * mailbox here or frames it to another worker (Python: Engine.deliver). The GIL is held. Returns
 * NULL, or a guest error to trap with, or LMP_PYTHON_ERROR with a Python exception set. */
static const char LMP_PYTHON_ERROR[] = "";

/* A reply sent to the sender of a message the guest made itself: the host program's mailbox
 * used to take it silently, so a guest server lost every reply to a real requester. */
static const char LMP_NO_PID_ZERO[] =
    "send to pid 0: no process has pid 0. A message made with create_data has sender 0, so "
    "get_process_id after create_data returns 0: to reply, call get_process_id on the received "
    "message before create_data";

static const char *lmp_send_scratch(PyObject *process, PyObject *pid, PyObject *deliver) {
    int no_pid = PyObject_Not(pid);
    if (no_pid < 0)
        return LMP_PYTHON_ERROR;
    if (no_pid)
        return LMP_NO_PID_ZERO;
    PyObject *scratch = PyObject_GetAttr(process, lmp_str_scratch);
    if (scratch == NULL)
        return LMP_PYTHON_ERROR;
    if (scratch == Py_None) {
        Py_DECREF(scratch);
        return "no message in the scratch area: call create_data or receive first";
    }
    const char *outcome = LMP_PYTHON_ERROR;
    PyObject *data = NULL, *frozen = NULL, *sender = NULL, *zero = NULL, *delivered = NULL;
    if (PyObject_SetAttr(process, lmp_str_scratch, Py_None) < 0 || (data = PyObject_GetAttr(scratch, lmp_str_data)) == NULL)
        goto done;
    frozen = PyBytes_CheckExact(data) ? Py_NewRef(data) : PyBytes_FromObject(data);
    zero = PyLong_FromLong(0);
    sender = PyObject_GetAttr(process, lmp_str_pid);
    if (frozen == NULL || zero == NULL || sender == NULL || PyObject_SetAttr(scratch, lmp_str_data, frozen) < 0 ||
        PyObject_SetAttr(scratch, lmp_str_cursor, zero) < 0 || PyObject_SetAttr(scratch, lmp_str_pid, sender) < 0)
        goto done;
    delivered = PyObject_CallFunctionObjArgs(deliver, pid, scratch, NULL);
    if (delivered != NULL)
        outcome = NULL;
done:
    Py_XDECREF(delivered);
    Py_XDECREF(sender);
    Py_XDECREF(zero);
    Py_XDECREF(frozen);
    Py_XDECREF(data);
    Py_DECREF(scratch);
    return outcome;
}

/* send(pid: i64) -> i32. env: a tuple (deliver, GuestTrap, on_error), borrowed: the Python Linker
 * keeps it for as long as its definitions can be called (a reference held here would hide a cycle
 * through the engine from the garbage collector). */
static wasm_trap_t *lmp_send(void *env, wasmtime_caller_t *caller, wasmtime_val_raw_t *raw, size_t n) {
    (void)n;
    lmp_proc *state = lmp_caller_state(caller);
    if (state == NULL || state->owner == NULL)
        return lmp_trap("host function called outside a process");
    wasm_trap_t *trap = NULL;
    PyGILState_STATE gil = PyGILState_Ensure();
    PyObject *hooks = env;
    PyObject *pid = PyLong_FromLongLong(raw[0].i64);
    const char *error = pid != NULL ? lmp_send_scratch(state->owner, pid, PyTuple_GET_ITEM(hooks, 0)) : LMP_PYTHON_ERROR;
    if (error == LMP_PYTHON_ERROR) {
        trap = lmp_trap_from_exception(PyTuple_GET_ITEM(hooks, 1), PyTuple_GET_ITEM(hooks, 2), "send");
    } else if (error != NULL) {
        trap = lmp_trap(error);
    } else {
        raw[0].i32 = 0; /* OK */
    }
    Py_XDECREF(pid);
    PyGILState_Release(gil);
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

static void lmp_valtypes(wasm_valtype_vec_t *out, const char *kinds) {
    wasm_valtype_t *types[8];
    size_t count = strlen(kinds);
    for (size_t i = 0; i < count; i++)
        types[i] = lmp_wasm_valtype_new(kinds[i] == 'I' ? WASM_I64 : WASM_I32);
    lmp_wasm_valtype_vec_new(out, count, types);
}

const char lmp_define_message_doc[] =
    "define_message(linker, max_message_size, message_type, hooks)\n"
    "    -> tuple[tuple[str, str, str, str], ...]\n\n"
    "Define lunatic::message's scratch-buffer functions and send (C) on a wasmtime_linker_t;\n"
    "message_type makes a new scratch message (Message(tag, bytearray())); hooks is a tuple\n"
    "(deliver, guest_trap, on_error) that the caller keeps alive as long as the linker: send calls\n"
    "deliver(pid, message), traps with a guest_trap's text, and reports any other exception to\n"
    "on_error before trapping. Returns what it defined, as\n"
    "(namespace, name, params, results) with 'i' for i32 and 'I' for i64, as Linker.define takes.";

PyObject *lmp_define_message(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "define_message takes 4 arguments, got %zd", nargs);
        return NULL;
    }
    if (!PyTuple_CheckExact(args[3]) || PyTuple_GET_SIZE(args[3]) != 3) {
        PyErr_SetString(PyExc_TypeError, "define_message: hooks must be a tuple (deliver, guest_trap, on_error)");
        return NULL;
    }
    if (!lmp_require_ready())
        return NULL;
    wasmtime_linker_t *linker = lmp_address(args[0], "the linker");
    if (linker == NULL)
        return NULL;
    size_t max_size = PyLong_AsSize_t(args[1]);
    if (max_size == (size_t)-1 && PyErr_Occurred())
        return NULL;
    if (!PyCallable_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "define_message: message_type must be callable");
        return NULL;
    }
    Py_INCREF(args[2]);
    Py_XSETREF(lmp_message_type, args[2]);
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
            env = args[3];
        wasmtime_error_t *error = lmp_wasmtime_linker_define_func_unchecked(
            linker, namespace, sizeof(namespace) - 1, function->name, strlen(function->name), type,
            function->callback, env, NULL);
        lmp_wasm_functype_delete(type);
        if (error != NULL) {
            wasm_byte_vec_t text = {0, NULL};
            lmp_wasmtime_error_message(error, &text);
            PyErr_Format(PyExc_RuntimeError, "cannot define lunatic::message::%s: %.*s", function->name,
                         (int)text.size, text.data);
            lmp_wasm_byte_vec_delete(&text);
            lmp_wasmtime_error_delete(error);
            Py_DECREF(names);
            return NULL;
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

#define LMP_MAX_RECEIVE_TAGS 4096

static void lmp_wait(PyObject *hooks, lmp_proc *state, PyObject *tags, PyObject *start, int64_t timeout_ms,
                     wasmtime_val_t *results, wasm_trap_t **trap_ret, wasmtime_async_continuation_t *continuation);

static bool lmp_ready_now(void *env) {
    (void)env;
    return true;
}

static void lmp_no_finalizer(void *env) { (void)env; }

/* The continuation of a receive suspended in C: the guest goes on once wake() (Engine.resume,
 * through Store.wake) has given the call its value; each poll until then finds it still waiting. */
static bool lmp_wait_over(void *env) {
    lmp_proc *state = env;
    if (!state->woken)
        return false;
    state->woken = 0;
    state->wait_results[0].kind = WASMTIME_I32;
    state->wait_results[0].of.i32 = state->wake_value;
    state->wait_results = NULL;
    return true;
}

/* receive(tags_ptr: i32, tags_count: i32, timeout_ms: i64) -> i32, async. env: a tuple (wait_for,
 * GuestTrap, on_error, PENDING, deliver), borrowed (the Python Linker keeps it). The tags are read
 * and checked here; wait_for(process, tags, 0, timeout) (lunatic_mp/vm/host/message.py) takes a
 * wanted message or arms the wait, and returns PENDING then: the call suspends with lmp_wait_over
 * as its continuation, until the engine wakes the process (Engine.resume). */
static void lmp_receive(void *env, wasmtime_caller_t *caller, const wasmtime_val_t *args, size_t nargs,
                        wasmtime_val_t *results, size_t nresults, wasm_trap_t **trap_ret,
                        wasmtime_async_continuation_t *continuation) {
    (void)nargs;
    (void)nresults;
    continuation->callback = lmp_ready_now;
    continuation->env = NULL;
    continuation->finalizer = lmp_no_finalizer;
    lmp_proc *state = lmp_caller_state(caller);
    if (state == NULL || state->owner == NULL) {
        *trap_ret = lmp_trap("host function called outside a process");
        return;
    }
    PyObject *hooks = env;
    int32_t count = args[1].of.i32;
    uint32_t ptr = (uint32_t)args[0].of.i32;
    if (count != 0 && (count < 0 || count > LMP_MAX_RECEIVE_TAGS)) {
        char message[96];
        snprintf(message, sizeof(message), "receive takes at most %d tags, got %d", LMP_MAX_RECEIVE_TAGS, count);
        *trap_ret = lmp_trap(message);
        return;
    }
    const uint8_t *raw_tags = count ? lmp_span(state, caller, ptr, (uint32_t)count * 8) : NULL;
    if (count && raw_tags == NULL) {
        *trap_ret = lmp_out_of_bounds(state, ptr, (uint32_t)count * 8);
        return;
    }
    PyGILState_STATE gil = PyGILState_Ensure();
    PyObject *tags = Py_None;
    Py_INCREF(tags);
    if (count) {
        Py_DECREF(tags);
        tags = PyTuple_New(count);
        for (int32_t i = 0; tags != NULL && i < count; i++) {
            int64_t tag;
            memcpy(&tag, raw_tags + (size_t)i * 8, 8);
            PyObject *item = PyLong_FromLongLong(tag);
            if (item == NULL)
                Py_CLEAR(tags);
            else
                PyTuple_SET_ITEM(tags, i, item);
        }
    }
    if (tags != NULL)
        lmp_wait(hooks, state, tags, lmp_zero, args[2].of.i64, results, trap_ret, continuation);
    else
        *trap_ret = lmp_trap_from_exception(PyTuple_GET_ITEM(hooks, 1), PyTuple_GET_ITEM(hooks, 2), "receive");
    Py_XDECREF(tags);
    PyGILState_Release(gil);
}

/* wait_for(process, tags, start, timeout) and what it returns: a code now, or PENDING: suspend. The
 * GIL is held. */
static void lmp_wait(PyObject *hooks, lmp_proc *state, PyObject *tags, PyObject *start, int64_t timeout_ms,
                     wasmtime_val_t *results, wasm_trap_t **trap_ret, wasmtime_async_continuation_t *continuation) {
    PyObject *value = NULL;
    PyObject *timeout = PyLong_FromLongLong(timeout_ms);
    if (timeout != NULL)
        value = PyObject_CallFunctionObjArgs(PyTuple_GET_ITEM(hooks, 0), state->owner, tags, start, timeout, NULL);
    if (value == NULL) {
        *trap_ret = lmp_trap_from_exception(PyTuple_GET_ITEM(hooks, 1), PyTuple_GET_ITEM(hooks, 2), "receive");
    } else if (value == PyTuple_GET_ITEM(hooks, 3)) { /* PENDING: suspend until woken */
        state->wait_results = results;
        state->woken = 0;
        continuation->callback = lmp_wait_over;
        continuation->env = state;
    } else {
        long code = PyLong_AsLong(value);
        if (code == -1 && PyErr_Occurred()) {
            *trap_ret = lmp_trap_from_exception(PyTuple_GET_ITEM(hooks, 1), PyTuple_GET_ITEM(hooks, 2), "receive");
        } else {
            results[0].kind = WASMTIME_I32;
            results[0].of.i32 = (int32_t)code;
        }
    }
    Py_XDECREF(value);
    Py_XDECREF(timeout);
}

/* send_receive_skip_search(pid: i64, wait_tag: i64, timeout_ms: i64) -> i32, async: send the
 * scratch message, then wait for a reply tagged wait_tag among the messages that arrive after it
 * (the mailbox's older ones are skipped). env: receive's hooks and deliver, borrowed. */
static void lmp_send_receive_skip_search(void *env, wasmtime_caller_t *caller, const wasmtime_val_t *args,
                                         size_t nargs, wasmtime_val_t *results, size_t nresults,
                                         wasm_trap_t **trap_ret, wasmtime_async_continuation_t *continuation) {
    (void)nargs;
    (void)nresults;
    continuation->callback = lmp_ready_now;
    continuation->env = NULL;
    continuation->finalizer = lmp_no_finalizer;
    lmp_proc *state = lmp_caller_state(caller);
    if (state == NULL || state->owner == NULL) {
        *trap_ret = lmp_trap("host function called outside a process");
        return;
    }
    PyObject *hooks = env;
    PyGILState_STATE gil = PyGILState_Ensure();
    PyObject *mailbox = PyObject_GetAttr(state->owner, lmp_str_mailbox);
    Py_ssize_t waiting = mailbox != NULL ? PyObject_Length(mailbox) : -1;
    PyObject *start = waiting >= 0 ? PyLong_FromSsize_t(waiting) : NULL;
    PyObject *pid = start != NULL ? PyLong_FromLongLong(args[0].of.i64) : NULL;
    PyObject *tags = pid != NULL ? Py_BuildValue("(L)", (long long)args[1].of.i64) : NULL;
    const char *error = tags != NULL ? lmp_send_scratch(state->owner, pid, PyTuple_GET_ITEM(hooks, 4))
                                     : LMP_PYTHON_ERROR;
    if (error == LMP_PYTHON_ERROR)
        *trap_ret = lmp_trap_from_exception(PyTuple_GET_ITEM(hooks, 1), PyTuple_GET_ITEM(hooks, 2),
                                            "send_receive_skip_search");
    else if (error != NULL)
        *trap_ret = lmp_trap(error);
    else
        lmp_wait(hooks, state, tags, start, args[2].of.i64, results, trap_ret, continuation);
    Py_XDECREF(tags);
    Py_XDECREF(pid);
    Py_XDECREF(start);
    Py_XDECREF(mailbox);
    PyGILState_Release(gil);
}

const char lmp_define_receive_doc[] =
    "define_receive(linker, hooks) -> tuple[tuple[str, str, str, str], ...]\n\n"
    "Define lunatic::message::receive and send_receive_skip_search (C, async) on a wasmtime_linker_t.\n"
    "hooks: a tuple (wait_for, guest_trap, on_error, PENDING, deliver) that\n"
    "the caller keeps alive as long as the linker (see lmp_receive in message.c).";

static int lmp_define_async(wasmtime_linker_t *linker, const char *name, const char *params,
                            wasmtime_func_async_callback_t callback, PyObject *hooks) {
    wasm_valtype_vec_t param_types, result_types;
    lmp_valtypes(&param_types, params);
    lmp_valtypes(&result_types, "i");
    wasm_functype_t *type = lmp_wasm_functype_new(&param_types, &result_types);
    static const char namespace[] = "lunatic::message";
    wasmtime_error_t *error = lmp_wasmtime_linker_define_async_func(
        linker, namespace, sizeof(namespace) - 1, name, strlen(name), type, callback, hooks, NULL);
    lmp_wasm_functype_delete(type);
    if (error == NULL)
        return 0;
    wasm_byte_vec_t text = {0, NULL};
    lmp_wasmtime_error_message(error, &text);
    PyErr_Format(PyExc_RuntimeError, "cannot define lunatic::message::%s: %.*s", name, (int)text.size, text.data);
    lmp_wasm_byte_vec_delete(&text);
    lmp_wasmtime_error_delete(error);
    return -1;
}

PyObject *lmp_define_receive(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 2 || !PyTuple_CheckExact(args[1]) || PyTuple_GET_SIZE(args[1]) != 5) {
        PyErr_SetString(PyExc_TypeError, "define_receive(linker, hooks): hooks must be a 5-tuple");
        return NULL;
    }
    if (!lmp_require_ready())
        return NULL;
    wasmtime_linker_t *linker = lmp_address(args[0], "the linker");
    if (linker == NULL)
        return NULL;
    if (lmp_define_async(linker, "receive", "iiI", lmp_receive, args[1]) < 0 ||
        lmp_define_async(linker, "send_receive_skip_search", "III", lmp_send_receive_skip_search, args[1]) < 0)
        return NULL;
    return Py_BuildValue("((ssss)(ssss))", "lunatic::message", "receive", "iiI", "i", "lunatic::message",
                         "send_receive_skip_search", "III", "i");
}
