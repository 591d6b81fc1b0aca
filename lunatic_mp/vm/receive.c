/* lunatic::message's receive and send_receive_skip_search as C async host functions: a message
 * already in the mailbox is taken in C; otherwise the wait is armed (in C, or by wait_for in
 * lunatic_mp/vm/host/message.py when a timeout needs a timer) and the call suspends with a C
 * continuation until the engine, or a send in C, wakes the process. See message.c for the rest.
 */
#include "message.h"

#include <string.h>

#define LMP_MAX_RECEIVE_TAGS 4096

static bool lmp_ready_now(void *env) { (void)env; return true; }
static void lmp_no_finalizer(void *env) { (void)env; }

/* The continuation of a receive suspended in C: the guest goes on once wake() (Engine.resume,
 * through Store.wake) has given the call its value; each poll until then finds it still waiting. */
bool lmp_wait_over(void *env) {
    lmp_proc *state = env;
    if (!state->woken)
        return false;
    state->woken = 0;
    state->net_waiting = 0; /* however it was woken, a socket wait in C is over */
    state->wait_results[0].kind = WASMTIME_I32;
    state->wait_results[0].of.i32 = state->wake_value;
    state->wait_results = NULL;
    return true;
}

unsigned long long lmp_waits;

void lmp_suspend_until_woken(lmp_proc *state, wasmtime_val_t *results,
                             wasmtime_async_continuation_t *continuation) {
    lmp_waits++;
    state->wait_results = results;
    state->woken = 0;
    state->idle = LMP_IDLE_ACTIVE; /* a new wait: the sweeps start over (hibernate.c) */
    state->stack_hint = __builtin_frame_address(0); /* this runs on the call's fiber stack */
    continuation->callback = lmp_wait_over;
    continuation->env = state;
}

static void lmp_result(wasmtime_val_t *results, int32_t code) {
    results[0].kind = WASMTIME_I32;
    results[0].of.i32 = code;
}

/* Take the oldest wanted message at index >= start into the scratch area: 1 (its kind is the
 * result), 0 if there is none, -1 on a Python error. The GIL is held. */
static int lmp_take(lmp_proc *state, const int64_t *tags, Py_ssize_t count, Py_ssize_t start,
                    wasmtime_val_t *results) {
    PyObject *mailbox = LMP_GET(state->owner, LMP_MAILBOX);
    if (mailbox == NULL)
        return -1;
    int found = 0;
    if (Py_IS_TYPE(mailbox, &lmp_MailboxType)) {
        lmp_message *message = lmp_mailbox_take((lmp_mailbox *)mailbox, tags, count, count == 0, start);
        if (message != NULL) {
            found = LMP_SET(state->owner, LMP_SCRATCH, (PyObject *)message) < 0 ? -1 : 1;
            lmp_result(results, message->kind);
            Py_DECREF(message);
        } else if (PyErr_Occurred()) {
            found = -1;
        }
    }
    Py_DECREF(mailbox);
    return found;
}

/* wait_for(process, tags, start, timeout) (a new reference to what it returned), for a timeout. */
static PyObject *lmp_call_wait_for(PyObject *hooks, lmp_proc *state, const int64_t *tags, Py_ssize_t count,
                                   Py_ssize_t start, int64_t timeout_ms) {
    PyObject *tag_tuple = count ? PyTuple_New(count) : Py_NewRef(Py_None), *value = NULL;
    for (Py_ssize_t i = 0; tag_tuple != NULL && i < count; i++) {
        PyObject *item = PyLong_FromLongLong(tags[i]);
        if (item == NULL)
            Py_CLEAR(tag_tuple);
        else
            PyTuple_SET_ITEM(tag_tuple, i, item);
    }
    PyObject *start_obj = tag_tuple != NULL ? PyLong_FromSsize_t(start) : NULL;
    PyObject *timeout = start_obj != NULL ? PyLong_FromLongLong(timeout_ms) : NULL;
    if (timeout != NULL)
        value = PyObject_CallFunctionObjArgs(LMP_HOOK(hooks, LMP_WAIT_FOR), state->owner, tag_tuple, start_obj,
                                             timeout, NULL);
    Py_XDECREF(timeout);
    Py_XDECREF(start_obj);
    Py_XDECREF(tag_tuple);
    return value;
}

/* What wait_for does for a wait without a timeout, in C (keep the two in step): the mailbox
 * records the wanted tags and names this waiter, and the process is marked waiting. PENDING, or
 * NULL with an exception set. */
static PyObject *lmp_wait_forever(PyObject *hooks, lmp_proc *state, const int64_t *tags, Py_ssize_t count,
                                  Py_ssize_t start) {
    PyObject *mailbox = LMP_GET(state->owner, LMP_MAILBOX);
    if (mailbox == NULL)
        return NULL;
    if (!Py_IS_TYPE(mailbox, &lmp_MailboxType)) {
        Py_DECREF(mailbox);
        return lmp_call_wait_for(hooks, state, tags, count, start, -1);
    }
    int64_t *wanted = PyMem_Malloc((size_t)(count ? count : 1) * sizeof(int64_t));
    if (wanted == NULL) {
        Py_DECREF(mailbox);
        return PyErr_NoMemory();
    }
    if (count)
        memcpy(wanted, tags, (size_t)count * sizeof(int64_t));
    lmp_mailbox_set_wait((lmp_mailbox *)mailbox, wanted, count, count == 0, start);
    ((lmp_mailbox *)mailbox)->waiter = state;
    Py_DECREF(mailbox);
    if (LMP_SET(state->owner, LMP_WAITING, Py_True) < 0 ||
        LMP_SET(state->owner, LMP_RECEIVING, Py_True) < 0)
        return NULL;
    return Py_NewRef(LMP_HOOK(hooks, LMP_PENDING));
}

/* Nothing wanted is in the mailbox: return TIMEOUT for a zero timeout; otherwise arm the wait
 * (lmp_wait_forever, or wait_for with its timer), which returns PENDING (any other value is the
 * call's result): the call then suspends with lmp_wait_over as its continuation, until the
 * engine wakes the process (Engine.resume, or a send: lmp_wake_receiver). The GIL is held. */
static void lmp_wait(PyObject *hooks, lmp_proc *state, const int64_t *tags, Py_ssize_t count, Py_ssize_t start,
                     int64_t timeout_ms, wasmtime_val_t *results, wasm_trap_t **trap_ret,
                     wasmtime_async_continuation_t *continuation) {
    PyObject *value = timeout_ms == 0  ? Py_NewRef(LMP_HOOK(hooks, LMP_TIMEOUT))
                      : timeout_ms < 0 ? lmp_wait_forever(hooks, state, tags, count, start)
                                       : lmp_call_wait_for(hooks, state, tags, count, start, timeout_ms);
    if (value == NULL) {
        *trap_ret = lmp_trap_from_hooks(hooks, "receive");
    } else if (value == LMP_HOOK(hooks, LMP_PENDING)) { /* suspend until woken */
        lmp_suspend_until_woken(state, results, continuation);
        if (timeout_ms > 0) { /* a send may wake it in C too */
            PyObject *mailbox = LMP_GET(state->owner, LMP_MAILBOX);
            if (mailbox != NULL && Py_IS_TYPE(mailbox, &lmp_MailboxType))
                ((lmp_mailbox *)mailbox)->waiter = state;
            Py_XDECREF(mailbox);
            PyErr_Clear(); /* without the waiter named, Engine.deliver wakes it */
        }
    } else {
        long code = PyLong_AsLong(value);
        if (code == -1 && PyErr_Occurred())
            *trap_ret = lmp_trap_from_hooks(hooks, "receive");
        else
            lmp_result(results, (int32_t)code);
    }
    Py_XDECREF(value);
}

lmp_proc *lmp_async_state(wasmtime_caller_t *caller, wasm_trap_t **trap_ret,
                                 wasmtime_async_continuation_t *continuation) {
    continuation->callback = lmp_ready_now;
    continuation->env = NULL;
    continuation->finalizer = lmp_no_finalizer;
    lmp_proc *state = lmp_caller_state(caller);
    if (state == NULL || state->owner == NULL) {
        *trap_ret = lmp_trap(LMP_OUTSIDE);
        return NULL;
    }
    return state;
}

/* receive(tags_ptr: i32, tags_count: i32, timeout_ms: i64) -> i32, async. env: the hooks. The tags
 * are read and checked here, and a message already in the mailbox is taken here (lmp_take). */
static void lmp_receive(void *env, wasmtime_caller_t *caller, const wasmtime_val_t *args, size_t nargs,
                        wasmtime_val_t *results, size_t nresults, wasm_trap_t **trap_ret,
                        wasmtime_async_continuation_t *continuation) {
    (void)nargs;
    (void)nresults;
    lmp_proc *state = lmp_async_state(caller, trap_ret, continuation);
    if (state == NULL)
        return;
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
    int64_t few[16];
    int64_t *tags = count <= 16 ? few : PyMem_RawMalloc((size_t)count * sizeof(int64_t));
    if (tags == NULL) {
        *trap_ret = lmp_trap("out of memory reading the tags");
        return;
    }
    if (count)
        memcpy(tags, raw_tags, (size_t)count * 8); /* guest memory is little-endian, unaligned */
    lmp_gil_t gil = lmp_gil_take();
    int found = lmp_take(state, tags, count, 0, results);
    if (found < 0)
        *trap_ret = lmp_trap_from_hooks(env, "receive");
    else if (!found)
        lmp_wait(env, state, tags, count, 0, args[2].of.i64, results, trap_ret, continuation);
    lmp_gil_give(gil);
    if (tags != few)
        PyMem_RawFree(tags);
}

/* send_receive_skip_search(pid: i64, wait_tag: i64, timeout_ms: i64) -> i32, async: send the
 * scratch message, then wait for a reply tagged wait_tag among the messages that arrive after it
 * (the mailbox's older ones are skipped). env: the hooks. */
static void lmp_send_receive_skip_search(void *env, wasmtime_caller_t *caller, const wasmtime_val_t *args,
                                         size_t nargs, wasmtime_val_t *results, size_t nresults,
                                         wasm_trap_t **trap_ret, wasmtime_async_continuation_t *continuation) {
    (void)nargs;
    (void)nresults;
    lmp_proc *state = lmp_async_state(caller, trap_ret, continuation);
    if (state == NULL)
        return;
    int64_t tag = args[1].of.i64;
    lmp_gil_t gil = lmp_gil_take();
    PyObject *mailbox = LMP_GET(state->owner, LMP_MAILBOX);
    Py_ssize_t start = mailbox != NULL ? PyObject_Length(mailbox) : -1;
    Py_XDECREF(mailbox);
    const char *error = start >= 0 ? lmp_send_scratch(env, state, args[0].of.i64) : LMP_PYTHON_ERROR;
    int found = 0;
    if (error == NULL && (found = lmp_take(state, &tag, 1, start, results)) < 0)
        error = LMP_PYTHON_ERROR;
    if (error == LMP_PYTHON_ERROR)
        *trap_ret = lmp_trap_from_hooks(env, "send_receive_skip_search");
    else if (error != NULL)
        *trap_ret = lmp_trap(error);
    else if (!found)
        lmp_wait(env, state, &tag, 1, start, args[2].of.i64, results, trap_ret, continuation);
    lmp_gil_give(gil);
}

const char lmp_define_receive_doc[] =
    "define_receive(linker, hooks) -> tuple[tuple[str, str, str, str], ...]\n\n"
    "Define lunatic::message::receive and send_receive_skip_search (C, async) on a wasmtime_linker_t.\n"
    "hooks: as define_message's, kept alive by the caller as long as the linker (see lmp_receive).";

int lmp_define_async(wasmtime_linker_t *linker, const char *namespace, const char *name, const char *params,
                     wasmtime_func_async_callback_t callback, PyObject *hooks) {
    wasm_valtype_vec_t param_types, result_types;
    lmp_valtypes(&param_types, params);
    lmp_valtypes(&result_types, "i");
    wasm_functype_t *type = lmp_wasm_functype_new(&param_types, &result_types);
    wasmtime_error_t *error = lmp_wasmtime_linker_define_async_func(
        linker, namespace, strlen(namespace), name, strlen(name), type, callback, hooks, NULL);
    lmp_wasm_functype_delete(type);
    if (error == NULL)
        return 0;
    char what[160];
    snprintf(what, sizeof(what), "cannot define %s::%s", namespace, name);
    lmp_wasmtime_error(error, what);
    return -1;
}

PyObject *lmp_define_receive(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "define_receive takes 2 arguments (linker, hooks), got %zd", nargs);
        return NULL;
    }
    if (lmp_check_hooks(args[1], "define_receive") < 0 || !lmp_require_ready())
        return NULL;
    wasmtime_linker_t *linker = lmp_address(args[0], "the linker");
    if (linker == NULL)
        return NULL;
    static const char namespace[] = "lunatic::message";
    if (lmp_define_async(linker, namespace, "receive", "iiI", lmp_receive, args[1]) < 0 ||
        lmp_define_async(linker, namespace, "send_receive_skip_search", "III", lmp_send_receive_skip_search,
                         args[1]) < 0)
        return NULL;
    return Py_BuildValue("((ssss)(ssss))", "lunatic::message", "receive", "iiI", "i", "lunatic::message",
                         "send_receive_skip_search", "III", "i");
}
