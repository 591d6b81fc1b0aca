/* A process's store and its calls (instantiation, an export, a function) in C.
 *
 * A spawn used to make a dozen ctypes calls and twice as many ctypes objects (pointers, value
 * arrays, structs) to create a store, instantiate the module and start the export; here each step
 * is one C call, and a Call owns everything its future writes into (the instance, the argument and
 * result values, the trap and error slots) until it is freed. lunatic_mp.vm.wasm wraps these.
 */
#include "core.h"

#include <string.h>

typedef struct lmp_call {
    PyObject_HEAD wasmtime_call_future_t *future;
    lmp_proc *state;                /* the store's state while future is pending, in its list */
    struct lmp_call *prev, *next;
    wasm_trap_t *trap;
    wasmtime_error_t *error;
    wasmtime_instance_t instance; /* an instantiation's result; the instance its export's call runs in */
    wasmtime_func_t func;         /* the function a call calls */
    wasmtime_val_t *values;       /* nargs arguments, then nresults results */
    size_t nargs, nresults;
    /* An instantiation's export to call next (lmp_call_next): its name (bytes), arguments and
     * result count; NULL once started, or for any other call. */
    PyObject *next_name, *next_args;
    Py_ssize_t next_nresults;
} lmp_call;

/* Start fetching the future of the call pending in state's store (the one its next poll polls). */
void lmp_calls_prefetch(lmp_proc *state) {
    if (state->calls != NULL)
        __builtin_prefetch(state->calls->future, 1);
}

static PyTypeObject lmp_CallType;
static void lmp_call_finish(lmp_call *call);

PyObject *lmp_wasmtime_error(wasmtime_error_t *error, const char *what) {
    wasm_byte_vec_t text = {0, NULL};
    lmp_wasmtime_error_message(error, &text);
    PyErr_Format(PyExc_RuntimeError, "%s: %.*s", what, (int)text.size, text.data);
    lmp_wasm_byte_vec_delete(&text);
    lmp_wasmtime_error_delete(error);
    return NULL;
}

void lmp_calls_finish_all(lmp_proc *state) {
    while (state->calls != NULL)
        lmp_call_finish(state->calls);
}

static lmp_call *lmp_call_alloc(size_t nargs, size_t nresults) {
    lmp_call *call = PyObject_New(lmp_call, &lmp_CallType);
    if (call == NULL)
        return NULL;
    call->future = NULL;
    call->state = NULL;
    call->prev = call->next = NULL;
    call->trap = NULL;
    call->error = NULL;
    memset(&call->instance, 0, sizeof(call->instance));
    memset(&call->func, 0, sizeof(call->func));
    call->nargs = nargs;
    call->nresults = nresults;
    call->next_name = call->next_args = NULL;
    call->next_nresults = 0;
    call->values = PyMem_Calloc(nargs + nresults ? nargs + nresults : 1, sizeof(wasmtime_val_t));
    if (call->values == NULL) {
        Py_DECREF(call);
        PyErr_NoMemory();
        return NULL;
    }
    return call;
}

/* A new pending future: listed in its store's state, so that closing the Store drops it first. */
static void lmp_call_track(lmp_call *call, wasmtime_context_t *context) {
    if (call->future == NULL)
        return;
    lmp_proc *state = lmp_wasmtime_context_get_data(context);
    call->state = state;
    call->prev = NULL;
    call->next = state->calls;
    if (state->calls != NULL)
        state->calls->prev = call;
    state->calls = call;
}

static void lmp_call_finish(lmp_call *call) {
    if (call->future != NULL) {
        if (call->state != NULL)
            lmp_awake(call->state); /* dropping the future unwinds its fiber: its frames must be back */
        lmp_wasmtime_call_future_delete(call->future);
        call->future = NULL;
    }
    if (call->state != NULL) {
        if (call->prev != NULL)
            call->prev->next = call->next;
        else
            call->state->calls = call->next;
        if (call->next != NULL)
            call->next->prev = call->prev;
        call->state = NULL;
        call->prev = call->next = NULL;
    }
}

static void lmp_call_dealloc(lmp_call *self) {
    lmp_call_finish(self);
    Py_XDECREF(self->next_name);
    Py_XDECREF(self->next_args);
    if (self->trap != NULL)
        lmp_wasm_trap_delete(self->trap);
    if (self->error != NULL)
        lmp_wasmtime_error_delete(self->error);
    PyMem_Free(self->values);
    PyObject_Free(self);
}

/* One argument from a (kind, value) pair, as the ABI's 17-byte records decode: a number, or 16
 * bytes for a v128. Integers wrap to their width, as wasm does. */
static int lmp_set_value(wasmtime_val_t *slot, PyObject *pair) {
    int kind;
    PyObject *value;
    if (!PyTuple_Check(pair) || !PyArg_ParseTuple(pair, "iO", &kind, &value)) {
        PyErr_SetString(PyExc_TypeError, "a call's arguments are (kind, value) pairs");
        return -1;
    }
    slot->kind = (wasmtime_valkind_t)kind;
    if (kind == WASMTIME_I32 || kind == WASMTIME_I64) {
        unsigned long long bits = PyLong_AsUnsignedLongLongMask(value);
        if (bits == (unsigned long long)-1 && PyErr_Occurred())
            return -1;
        if (kind == WASMTIME_I32)
            slot->of.i32 = (int32_t)(uint32_t)bits;
        else
            slot->of.i64 = (int64_t)bits;
    } else if (kind == WASMTIME_F32 || kind == WASMTIME_F64) {
        double number = PyFloat_AsDouble(value);
        if (number == -1.0 && PyErr_Occurred())
            return -1;
        float single = (float)number;
        if (kind == WASMTIME_F32)
            memcpy(slot->of.pad, &single, sizeof(single));
        else
            memcpy(slot->of.pad, &number, sizeof(number));
    } else if (kind == WASMTIME_V128) {
        Py_buffer view;
        if (PyObject_GetBuffer(value, &view, PyBUF_SIMPLE) < 0)
            return -1;
        int ok = view.len == 16;
        if (ok)
            memcpy(slot->of.pad, view.buf, 16);
        PyBuffer_Release(&view);
        if (!ok) {
            PyErr_SetString(PyExc_ValueError, "a v128 argument is 16 bytes");
            return -1;
        }
    } else {
        PyErr_Format(PyExc_ValueError, "unsupported argument kind %d", kind);
        return -1;
    }
    return 0;
}

/* Start calling call->func with args (a sequence of (kind, value) pairs). */
static PyObject *lmp_call_start(lmp_call *call, wasmtime_context_t *context, PyObject *args) {
    PyObject *items = PySequence_Fast(args, "a call's arguments must be a sequence");
    if (items == NULL) {
        Py_DECREF(call);
        return NULL;
    }
    for (size_t i = 0; i < call->nargs; i++) {
        if (lmp_set_value(&call->values[i], PySequence_Fast_GET_ITEM(items, (Py_ssize_t)i)) < 0) {
            Py_DECREF(items);
            Py_DECREF(call);
            return NULL;
        }
    }
    Py_DECREF(items);
    call->future = lmp_wasmtime_func_call_async(context, &call->func, call->values, call->nargs,
                                                call->values + call->nargs, call->nresults, &call->trap, &call->error);
    lmp_call_track(call, context);
    return (PyObject *)call;
}

const char lmp_instantiate_doc[] =
    "instantiate(pre, context, name=None, args=(), nresults=0) -> Call\n\n"
    "Start instantiating the wasmtime_instance_pre_t at address pre in the store of context. With name\n"
    "(bytes), the Runner goes straight on into calling that function export with args as (kind, value)\n"
    "pairs once the instantiation finishes without failing (a missing export fails it).";

PyObject *lmp_instantiate(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 2 && nargs != 5) {
        PyErr_Format(PyExc_TypeError, "instantiate takes 2 or 5 arguments (pre, context[, name, args, nresults]), got %zd",
                     nargs);
        return NULL;
    }
    Py_ssize_t next_nresults = 0;
    if (nargs == 5) {
        if (!PyBytes_Check(args[2])) {
            PyErr_SetString(PyExc_TypeError, "instantiate: the export's name must be bytes");
            return NULL;
        }
        next_nresults = PyLong_AsSsize_t(args[4]);
        if (next_nresults < 0) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "instantiate: nresults must be >= 0");
            return NULL;
        }
    }
    if (!lmp_require_ready())
        return NULL;
    wasmtime_instance_pre_t *pre = lmp_address(args[0], "the instance pre");
    wasmtime_context_t *context = pre != NULL ? lmp_address(args[1], "the context") : NULL;
    if (context == NULL)
        return NULL;
    lmp_call *call = lmp_call_alloc(0, 0);
    if (call != NULL) {
        if (nargs == 5) {
            call->next_name = Py_NewRef(args[2]);
            call->next_args = Py_NewRef(args[3]);
            call->next_nresults = next_nresults;
        }
        call->future = lmp_wasmtime_instance_pre_instantiate_async(pre, context, &call->instance, &call->trap,
                                                                   &call->error);
        lmp_call_track(call, context);
    }
    return (PyObject *)call;
}

/* Start calling the function export name of the instance instantiation made; NULL with *missing
 * set (and no exception) when it has no such function. */
static PyObject *lmp_export_call(wasmtime_context_t *context, lmp_call *instantiation, PyObject *name, PyObject *args,
                                 Py_ssize_t nresults, int *missing) {
    *missing = 0;
    Py_ssize_t count = PySequence_Length(args);
    if (count < 0)
        return NULL;
    wasmtime_extern_t item;
    memset(&item, 0, sizeof(item));
    if (!lmp_wasmtime_instance_export_get(context, &instantiation->instance, PyBytes_AS_STRING(name),
                                          (size_t)PyBytes_GET_SIZE(name), &item) ||
        item.kind != WASMTIME_EXTERN_FUNC) {
        *missing = 1;
        return NULL;
    }
    lmp_call *call = lmp_call_alloc((size_t)count, (size_t)nresults);
    if (call == NULL)
        return NULL;
    call->func = item.of.func;
    call->instance = instantiation->instance; /* the instance it runs in, for whoever asks */
    return lmp_call_start(call, context, args);
}

int lmp_call_has_next(PyObject *call) {
    lmp_call *self = (lmp_call *)call;
    return Py_IS_TYPE(call, &lmp_CallType) && self->next_name != NULL && self->trap == NULL && self->error == NULL;
}

PyObject *lmp_call_next(PyObject *call, wasmtime_context_t *context) {
    if (!lmp_call_has_next(call))
        return NULL;
    lmp_call *self = (lmp_call *)call;
    lmp_call_finish(self);
    PyObject *name = self->next_name, *args = self->next_args;
    self->next_name = self->next_args = NULL; /* started once, whatever happens */
    int missing;
    PyObject *next = lmp_export_call(context, self, name, args, self->next_nresults, &missing);
    if (missing) {
        PyObject *text = PyUnicode_FromFormat("no function export %R", name);
        const char *utf8 = text != NULL ? PyUnicode_AsUTF8(text) : NULL;
        if (utf8 != NULL)
            self->error = lmp_wasmtime_error_new(utf8);
        Py_XDECREF(text);
    }
    Py_DECREF(name);
    Py_DECREF(args);
    return next;
}

const char lmp_call_function_doc[] =
    "call_function(context, func, args, nresults) -> Call\n\n"
    "Start calling func (a wasmtime_func_t, as a ctypes structure) with args as (kind, value) pairs.";

PyObject *lmp_call_function(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "call_function takes 4 arguments, got %zd", nargs);
        return NULL;
    }
    if (!lmp_require_ready())
        return NULL;
    wasmtime_context_t *context = lmp_address(args[0], "the context");
    if (context == NULL)
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[1], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    int ok = view.len == (Py_ssize_t)sizeof(wasmtime_func_t);
    wasmtime_func_t func;
    if (ok)
        memcpy(&func, view.buf, sizeof(func));
    PyBuffer_Release(&view);
    if (!ok) {
        PyErr_SetString(PyExc_TypeError, "call_function: func must be a wasmtime_func_t");
        return NULL;
    }
    Py_ssize_t count = PySequence_Length(args[2]);
    Py_ssize_t nresults = count >= 0 ? PyLong_AsSsize_t(args[3]) : -1;
    if (count < 0 || nresults < 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "call_function: nresults must be >= 0");
        return NULL;
    }
    lmp_call *call = lmp_call_alloc((size_t)count, (size_t)nresults);
    if (call == NULL)
        return NULL;
    call->func = func;
    return lmp_call_start(call, context, args[2]);
}

lmp_proc *lmp_call_state(PyObject *call) { return ((lmp_call *)call)->state; }

lmp_proc *lmp_call_pending_state(PyObject *call) {
    return Py_IS_TYPE(call, &lmp_CallType) && ((lmp_call *)call)->future != NULL ? ((lmp_call *)call)->state : NULL;
}

int lmp_call_find_memory(PyObject *call, lmp_proc *state) {
    lmp_call *self = (lmp_call *)call;
    if (state->have_memory || self->instance.store_id == 0)
        return state->have_memory;
    wasmtime_extern_t item;
    memset(&item, 0, sizeof(item));
    if (!lmp_wasmtime_instance_export_get(state->context, &self->instance, "memory", 6, &item) ||
        item.kind != WASMTIME_EXTERN_MEMORY)
        return 0;
    state->memory = item.of.memory;
    state->base = lmp_wasmtime_memory_data(state->context, &state->memory);
    state->size = lmp_wasmtime_memory_data_size(state->context, &state->memory);
    state->have_memory = 1;
    return 1;
}

wasmtime_call_future_t *lmp_call_future(PyObject *call) {
    if (!Py_IS_TYPE(call, &lmp_CallType)) {
        PyErr_Format(PyExc_TypeError, "a process's call must be a Call, not %.100s", Py_TYPE(call)->tp_name);
        return NULL;
    }
    wasmtime_call_future_t *future = ((lmp_call *)call)->future;
    if (future == NULL)
        PyErr_SetString(PyExc_RuntimeError, "a process's call is finished");
    return future;
}

static PyObject *lmp_call_poll(lmp_call *self, PyObject *unused) {
    (void)unused;
    if (self->future == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Call.poll: the call is finished");
        return NULL;
    }
    return PyBool_FromLong(lmp_poll(self->future, self->state, false));
}

static PyObject *lmp_call_py_finish(lmp_call *self, PyObject *unused) {
    (void)unused;
    lmp_call_finish(self);
    Py_RETURN_NONE;
}

static PyObject *lmp_call_result(lmp_call *self, PyObject *index_obj) {
    Py_ssize_t index = PyLong_AsSsize_t(index_obj);
    if (index == -1 && PyErr_Occurred())
        return NULL;
    if (index < 0 || (size_t)index >= self->nresults) {
        PyErr_Format(PyExc_IndexError, "Call.result: no result %zd", index);
        return NULL;
    }
    const wasmtime_val_t *value = &self->values[self->nargs + (size_t)index];
    float single;
    double number;
    switch (value->kind) {
    case WASMTIME_I32:
        return PyLong_FromLong(value->of.i32);
    case WASMTIME_I64:
        return PyLong_FromLongLong(value->of.i64);
    case WASMTIME_F32:
        memcpy(&single, value->of.pad, sizeof(single));
        return PyFloat_FromDouble(single);
    case WASMTIME_F64:
        memcpy(&number, value->of.pad, sizeof(number));
        return PyFloat_FromDouble(number);
    case WASMTIME_V128:
        return PyBytes_FromStringAndSize((const char *)value->of.pad, 16);
    default:
        Py_RETURN_NONE; /* a reference */
    }
}

static PyObject *lmp_call_results(lmp_call *self, PyObject *unused) {
    (void)unused;
    PyObject *results = PyTuple_New((Py_ssize_t)self->nresults);
    for (size_t i = 0; results != NULL && i < self->nresults; i++) {
        PyObject *index = PyLong_FromSize_t(i);
        PyObject *value = index != NULL ? lmp_call_result(self, index) : NULL;
        Py_XDECREF(index);
        if (value == NULL)
            Py_CLEAR(results);
        else
            PyTuple_SET_ITEM(results, (Py_ssize_t)i, value);
    }
    return results;
}

static PyObject *lmp_call_take_trap(lmp_call *self, PyObject *unused) {
    (void)unused;
    void *trap = self->trap;
    self->trap = NULL;
    return PyLong_FromVoidPtr(trap);
}

static PyObject *lmp_call_take_error(lmp_call *self, PyObject *unused) {
    (void)unused;
    void *error = self->error;
    self->error = NULL;
    return PyLong_FromVoidPtr(error);
}

static PyObject *lmp_call_get_future(lmp_call *self, void *closure) {
    (void)closure;
    return PyLong_FromVoidPtr(self->future);
}

static PyObject *lmp_call_get_instance(lmp_call *self, void *closure) {
    (void)closure;
    return PyBytes_FromStringAndSize((const char *)&self->instance, sizeof(self->instance));
}

static PyObject *lmp_call_get_failed(lmp_call *self, void *closure) {
    (void)closure;
    return PyBool_FromLong(self->trap != NULL || self->error != NULL);
}

static PyMethodDef lmp_call_methods[] = {
    {"poll", (PyCFunction)lmp_call_poll, METH_NOARGS, "Run the call until it finishes (True) or suspends."},
    {"finish", (PyCFunction)lmp_call_py_finish, METH_NOARGS,
     "Free the future (a call that never finished is unwound); safe twice."},
    {"result", (PyCFunction)lmp_call_result, METH_O, "result(index): a finished call's result."},
    {"results", (PyCFunction)lmp_call_results, METH_NOARGS, "A finished call's results, as a tuple."},
    {"take_trap", (PyCFunction)lmp_call_take_trap, METH_NOARGS,
     "The wasm_trap_t address it failed with (0: none); the caller owns it now."},
    {"take_error", (PyCFunction)lmp_call_take_error, METH_NOARGS,
     "The wasmtime_error_t address it failed with (0: none); the caller owns it now."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef lmp_call_getset[] = {
    {"future", (getter)lmp_call_get_future, NULL, "The wasmtime_call_future_t address (0 once finished).", NULL},
    {"failed", (getter)lmp_call_get_failed, NULL, "Whether it trapped or failed.", NULL},
    {"instance", (getter)lmp_call_get_instance, NULL,
     "The wasmtime_instance_t an instantiation made, or its export's call runs in, as bytes (a handle into its "
     "store).",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject lmp_CallType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "lunatic_mp.vm._core.Call",
    .tp_doc = PyDoc_STR("An in-flight async call and what it writes into (calls.c)."),
    .tp_basicsize = sizeof(lmp_call),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = (destructor)lmp_call_dealloc,
    .tp_methods = lmp_call_methods,
    .tp_getset = lmp_call_getset,
};

int lmp_calls_init(PyObject *module) {
    if (PyType_Ready(&lmp_CallType) < 0)
        return -1;
    return PyModule_AddObjectRef(module, "Call", (PyObject *)&lmp_CallType);
}
