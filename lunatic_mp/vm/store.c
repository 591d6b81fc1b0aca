/* A process's store as a C object (Store): the wasmtime store, its C state (lmp_proc, the store's
 * data, which the store frees) and the engine it belongs to.
 *
 * A Python class around the store's addresses cost a spawn and exit about 0.5 µs of its 7 (its
 * __init__, close and __del__ frames, and a ctypes call for the engine's address); here making one
 * is one C call, and the store goes with close() or, at the latest, with the object. The state
 * holds the owner (the Process) borrowed: the owner holds the Store, and closes it when it dies.
 */
#include "core.h"

#include <string.h>

typedef struct {
    PyObject_HEAD wasmtime_store_t *store; /* NULL once closed */
    lmp_proc *state;
    wasm_engine_t *engine;
} lmp_store;

static PyTypeObject lmp_StoreType;

static void lmp_store_close_now(lmp_store *self) {
    if (self->store == NULL)
        return;
    lmp_calls_finish_all(self->state); /* their futures borrow the store */
    lmp_wasmtime_store_delete(self->store); /* frees the state */
    self->store = NULL;
    self->state = NULL;
}

/* Store(engine, owner, fuel, max_memory): see the type's doc. */
static PyObject *lmp_store_make(PyTypeObject *type, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "Store takes 4 arguments (engine, owner, fuel, max_memory), got %zd", nargs);
        return NULL;
    }
    if (!lmp_require_ready())
        return NULL;
    wasm_engine_t *engine = lmp_address(args[0], "the engine");
    long long fuel = engine != NULL ? PyLong_AsLongLong(args[2]) : -1;
    long long max_memory = fuel != -1 || !PyErr_Occurred() ? PyLong_AsLongLong(args[3]) : -1;
    if (engine == NULL || PyErr_Occurred())
        return NULL;
    PyObject *pid = LMP_GET(args[1], LMP_PID);
    long long number = pid != NULL ? PyLong_AsLongLong(pid) : -1;
    Py_XDECREF(pid);
    if (number == -1 && PyErr_Occurred())
        return NULL;
    lmp_store *self = PyObject_New(lmp_store, type);
    if (self == NULL)
        return NULL;
    self->store = NULL;
    self->state = NULL;
    lmp_proc *state = PyMem_RawCalloc(1, sizeof(lmp_proc));
    if (state == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    state->owner = args[1];
    state->pid = number;
    self->engine = engine;
    self->state = state;
    self->store = lmp_wasmtime_store_new(engine, state, lmp_free_state);
    state->context = lmp_wasmtime_store_context(self->store);
    lmp_wasmtime_store_epoch_deadline_callback(self->store, lmp_epoch_deadline, state, NULL);
    lmp_wasmtime_context_set_epoch_deadline(state->context, 1);
    if (fuel >= 0) {
        wasmtime_error_t *error = lmp_wasmtime_context_set_fuel(state->context, (uint64_t)fuel);
        if (error != NULL) {
            Py_DECREF(self); /* deletes the store */
            return lmp_wasmtime_error(error, "cannot set the store's fuel");
        }
    }
    if (max_memory > 0)
        lmp_wasmtime_store_limiter(self->store, max_memory, -1, -1, -1, -1);
    return (PyObject *)self;
}

static PyObject *lmp_store_vectorcall(PyObject *type, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0) {
        PyErr_SetString(PyExc_TypeError, "Store takes no keyword arguments");
        return NULL;
    }
    return lmp_store_make((PyTypeObject *)type, args, PyVectorcall_NARGS(nargsf));
}

static PyObject *lmp_store_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    if (kwds != NULL && PyDict_GET_SIZE(kwds) > 0) {
        PyErr_SetString(PyExc_TypeError, "Store takes no keyword arguments");
        return NULL;
    }
    return lmp_store_make(type, &PyTuple_GET_ITEM(args, 0), PyTuple_GET_SIZE(args));
}

static void lmp_store_dealloc(lmp_store *self) {
    lmp_store_close_now(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *lmp_store_close(lmp_store *self, PyObject *unused) {
    (void)unused;
    lmp_store_close_now(self);
    Py_RETURN_NONE;
}

/* Compiled code caches its epoch deadline and reloads it only when the epoch passes it, so a
 * deadline lowered from inside a host call would wait for the next tick: the epoch is advanced
 * instead, which the next check sees at once. Other stores of the engine only see one tick more
 * (none of them runs now: one thread polls them all). */
static PyObject *lmp_store_yield_soon(lmp_store *self, PyObject *unused) {
    (void)unused;
    if (self->store != NULL) {
        self->state->armed = 1;
        lmp_wasmtime_context_set_epoch_deadline(self->state->context, 0);
        lmp_wasmtime_engine_increment_epoch(self->engine);
        lmp_epoch_advanced(); /* every store's deadline is set again at its next poll */
    }
    Py_RETURN_NONE;
}

static PyObject *lmp_store_wake(lmp_store *self, PyObject *value_obj) {
    long value = PyLong_AsLong(value_obj);
    if (value == -1 && PyErr_Occurred())
        return NULL;
    if (value < INT32_MIN || value > INT32_MAX) {
        PyErr_Format(PyExc_OverflowError, "wake: value %ld is not an i32", value);
        return NULL;
    }
    if (self->store == NULL || self->state->wait_results == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "wake: the store's guest is not suspended in a C receive");
        return NULL;
    }
    self->state->wake_value = (int32_t)value;
    self->state->woken = 1;
    Py_RETURN_NONE;
}

static PyObject *lmp_store_set_wasi(lmp_store *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6) {
        PyErr_Format(PyExc_TypeError, "set_wasi takes 6 arguments, got %zd", nargs);
        return NULL;
    }
    if (self->store == NULL) {
        PyErr_SetString(PyExc_ValueError, "set_wasi: the store is closed");
        return NULL;
    }
    size_t argc = PyLong_AsSize_t(args[0]);
    size_t envc = !PyErr_Occurred() ? PyLong_AsSize_t(args[2]) : 0;
    if (PyErr_Occurred())
        return NULL;
    const char **argv = NULL, **names = NULL, **values = NULL; /* only a non-empty list has an array */
    if (argc && (argv = lmp_address(args[1], "argv")) == NULL)
        return NULL;
    if (envc && ((names = lmp_address(args[3], "the names")) == NULL ||
                 (values = lmp_address(args[4], "the values")) == NULL))
        return NULL;
    PyObject *preopens = PySequence_Fast(args[5], "preopens must be a sequence of (host, guest) bytes pairs");
    if (preopens == NULL)
        return NULL;
    wasi_config_t *config = lmp_wasi_config_new();
    int ok = lmp_wasi_config_set_argv(config, argc, argv) && lmp_wasi_config_set_env(config, envc, names, values);
    for (Py_ssize_t i = 0; ok && i < PySequence_Fast_GET_SIZE(preopens); i++) {
        PyObject *pair = PySequence_Fast_GET_ITEM(preopens, i);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 || !PyBytes_Check(PyTuple_GET_ITEM(pair, 0)) ||
            !PyBytes_Check(PyTuple_GET_ITEM(pair, 1))) {
            PyErr_SetString(PyExc_TypeError, "preopens must be a sequence of (host, guest) bytes pairs");
            ok = -1;
            break;
        }
        ok = lmp_wasi_config_preopen_dir(config, PyBytes_AS_STRING(PyTuple_GET_ITEM(pair, 0)),
                                         PyBytes_AS_STRING(PyTuple_GET_ITEM(pair, 1)), true);
    }
    Py_DECREF(preopens);
    if (ok != 1) {
        lmp_wasi_config_delete(config);
        if (ok == 0)
            PyErr_SetString(PyExc_RuntimeError, "cannot configure WASI (an argument, variable or directory)");
        return NULL;
    }
    lmp_wasi_config_inherit_stdout(config);
    lmp_wasi_config_inherit_stderr(config);
    wasmtime_error_t *error = lmp_wasmtime_context_set_wasi(self->state->context, config); /* takes the config */
    if (error != NULL)
        return lmp_wasmtime_error(error, "cannot give the store WASI");
    Py_RETURN_NONE;
}

static PyObject *lmp_store_context_address(lmp_store *self, void *closure) {
    (void)closure;
    return PyLong_FromVoidPtr(self->store != NULL ? self->state->context : NULL);
}

static PyObject *lmp_store_state(lmp_store *self, void *closure) {
    (void)closure;
    return PyLong_FromVoidPtr(self->state);
}

static PyMethodDef lmp_store_methods[] = {
    {"close", (PyCFunction)lmp_store_close, METH_NOARGS,
     "close() -> None\n\nFree the store now (its memory slot and fiber stack go back to their arenas); its\n"
     "pending calls are dropped first. Safe to call again. Never while one of its calls is polled."},
    {"yield_soon", (PyCFunction)lmp_store_yield_soon, METH_NOARGS,
     "yield_soon() -> None\n\nMake the guest yield at its next loop back-edge or function entry, without\n"
     "waiting for the slice to end: how a synchronous host call pauses its caller (backpressure).\n"
     "Its next slice then ends at a tick again. Nothing once closed."},
    {"wake", (PyCFunction)lmp_store_wake, METH_O,
     "wake(value) -> None\n\nLet the guest, suspended in a C receive, go on at its next poll: the call returns\n"
     "value (an i32). RuntimeError when it is not suspended in one."},
    {"set_wasi", (PyCFunction)(void (*)(void))lmp_store_set_wasi, METH_FASTCALL,
     "set_wasi(argc, argv, envc, names, values, preopens) -> None\n\nGive the store WASI: argc arguments (argv: "
     "a char ** address), envc variables (names and\nvalues: char ** addresses), preopens a sequence of (host "
     "path, guest path) bytes, stdout and\nstderr inherited (lunatic_mp.vm.wasm.Wasi encodes them). The caller "
     "keeps the strings alive\nfor the call. RuntimeError if refused."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef lmp_store_getset[] = {
    {"context_address", (getter)lmp_store_context_address, NULL,
     "The address of the store's wasmtime_context_t (0 once closed).", NULL},
    {"state", (getter)lmp_store_state, NULL,
     "The address of the process's C state, the store's data (0 once closed).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject lmp_StoreType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "lunatic_mp.vm._core.Store",
    .tp_basicsize = sizeof(lmp_store),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Store(engine, owner, fuel, max_memory)\n\n"
              "A store of the wasm_engine_t at address engine (an int or a ctypes pointer) for the process\n"
              "owner (its C state, which the store frees, holds owner borrowed and reads its pid), preempted\n"
              "by epochs; with fuel >= 0 that much fuel (an engine with fuel metering; -1: none), with\n"
              "max_memory > 0 a memory limit. RuntimeError with wasmtime's reason when fuel cannot be set.",
    .tp_new = lmp_store_new,
    .tp_vectorcall = lmp_store_vectorcall,
    .tp_dealloc = (destructor)lmp_store_dealloc,
    .tp_methods = lmp_store_methods,
    .tp_getset = lmp_store_getset,
};

int lmp_store_init(PyObject *module) {
    if (PyType_Ready(&lmp_StoreType) < 0)
        return -1;
    return PyModule_AddObjectRef(module, "Store", (PyObject *)&lmp_StoreType);
}
