/* lunatic_mp's C core: the hot paths of a worker against wasmtime's C API.
 *
 * It does not link against wasmtime. lunatic_mp.vm.core passes the handle of the _libwasmtime.so
 * that wasmtime-py loaded, and load() resolves every function of wasmtime_api.h from it: both
 * sides then use one library, one engine and one set of stores. Pointers (engines, stores,
 * contexts) cross from Python as plain integers taken from wasmtime-py's ctypes objects.
 *
 * This file: resolution, and the per-store preemption setup. ticker.c: the epoch ticker.
 */
#include "core.h"

#include <dlfcn.h>
#include <string.h>

#define LMP_DEFINE_POINTER(ret, name, params) ret(*lmp_##name) params = NULL;
LMP_WASMTIME_FUNCTIONS(LMP_DEFINE_POINTER)
#undef LMP_DEFINE_POINTER

int lmp_ready = 0;

typedef struct {
    const char *name;
    void **slot;
} lmp_symbol;

#define LMP_SYMBOL_ENTRY(ret, name, params) {#name, (void **)&lmp_##name},
static const lmp_symbol lmp_symbols[] = {LMP_WASMTIME_FUNCTIONS(LMP_SYMBOL_ENTRY)};
#undef LMP_SYMBOL_ENTRY
#define LMP_SYMBOL_COUNT (sizeof(lmp_symbols) / sizeof(lmp_symbols[0]))

int lmp_require_ready(void) {
    if (!lmp_ready) {
        PyErr_SetString(PyExc_RuntimeError,
                        "lunatic_mp.vm._core: wasmtime's C library is not loaded (import lunatic_mp.vm.core)");
        return 0;
    }
    return 1;
}

void *lmp_address(PyObject *value, const char *what) {
    void *pointer = NULL;
    if (PyLong_Check(value)) {
        pointer = PyLong_AsVoidPtr(value);
    } else if (PyObject_CheckBuffer(value)) {
        /* a ctypes pointer object: its buffer is the pointer itself (no ctypes.cast in Python) */
        Py_buffer view;
        if (PyObject_GetBuffer(value, &view, PyBUF_SIMPLE) < 0)
            return NULL;
        if (view.len != (Py_ssize_t)sizeof(void *)) {
            PyBuffer_Release(&view);
            PyErr_Format(PyExc_TypeError, "lunatic_mp.vm._core: %s must be a pointer, got %zd bytes", what,
                         view.len);
            return NULL;
        }
        memcpy(&pointer, view.buf, sizeof(void *));
        PyBuffer_Release(&view);
    } else {
        PyErr_Format(PyExc_TypeError, "lunatic_mp.vm._core: %s must be an address or a ctypes pointer, got %s",
                     what, Py_TYPE(value)->tp_name);
        return NULL;
    }
    if (pointer == NULL && !PyErr_Occurred())
        PyErr_Format(PyExc_ValueError, "lunatic_mp.vm._core: %s is a null pointer", what);
    return pointer;
}

/* The names of the functions in wasmtime_api.h that are not resolved (all of them before load). */
static PyObject *lmp_missing_names(void) {
    PyObject *names = PyList_New(0);
    if (names == NULL)
        return NULL;
    for (size_t i = 0; i < LMP_SYMBOL_COUNT; i++) {
        if (*lmp_symbols[i].slot != NULL)
            continue;
        PyObject *name = PyUnicode_FromString(lmp_symbols[i].name);
        if (name == NULL || PyList_Append(names, name) < 0) {
            Py_XDECREF(name);
            Py_DECREF(names);
            return NULL;
        }
        Py_DECREF(name);
    }
    PyObject *result = PyList_AsTuple(names);
    Py_DECREF(names);
    return result;
}

PyDoc_STRVAR(load_doc, "load(handle, path) -> tuple[str, ...]\n\n"
                       "Resolve wasmtime_api.h's functions from the dlopen handle of the library at path\n"
                       "(the one wasmtime-py loaded); return the names it lacks (empty: ready). The functions\n"
                       "are taken only if all are found, and only once: ticker threads may be calling them.");

static PyObject *lmp_load(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *handle_obj;
    const char *path;
    if (!PyArg_ParseTuple(args, "Os:load", &handle_obj, &path))
        return NULL;
    void *handle = lmp_address(handle_obj, "the library handle");
    if (handle == NULL)
        return NULL;
    void *found[LMP_SYMBOL_COUNT];
    PyObject *missing = PyList_New(0);
    if (missing == NULL)
        return NULL;
    for (size_t i = 0; i < LMP_SYMBOL_COUNT; i++) {
        dlerror();
        found[i] = dlsym(handle, lmp_symbols[i].name);
        if (found[i] != NULL)
            continue;
        PyObject *name = PyUnicode_FromString(lmp_symbols[i].name);
        if (name == NULL || PyList_Append(missing, name) < 0) {
            Py_XDECREF(name);
            Py_DECREF(missing);
            return NULL;
        }
        Py_DECREF(name);
    }
    if (PyList_GET_SIZE(missing) == 0 && !lmp_ready) {
        for (size_t i = 0; i < LMP_SYMBOL_COUNT; i++)
            *lmp_symbols[i].slot = found[i];
        lmp_ready = 1;
    }
    (void)path; /* named by the caller's error message; dlsym needs only the handle */
    PyObject *result = PyList_AsTuple(missing);
    Py_DECREF(missing);
    return result;
}

PyDoc_STRVAR(missing_doc, "missing() -> tuple[str, ...]\n\nThe declared functions not resolved.");

static PyObject *lmp_missing(PyObject *module, PyObject *unused) {
    (void)module;
    (void)unused;
    return lmp_missing_names();
}

PyDoc_STRVAR(symbols_doc, "symbols() -> tuple[str, ...]\n\nEvery function wasmtime_api.h declares.");

static PyObject *lmp_symbol_names(PyObject *module, PyObject *unused) {
    (void)module;
    (void)unused;
    PyObject *names = PyTuple_New((Py_ssize_t)LMP_SYMBOL_COUNT);
    if (names == NULL)
        return NULL;
    for (size_t i = 0; i < LMP_SYMBOL_COUNT; i++) {
        PyObject *name = PyUnicode_FromString(lmp_symbols[i].name);
        if (name == NULL) {
            Py_DECREF(names);
            return NULL;
        }
        PyTuple_SET_ITEM(names, (Py_ssize_t)i, name);
    }
    return names;
}

void lmp_free_state(void *state) {
    lmp_drop_hibernation(state);
    PyMem_RawFree(state);
}

static PyMethodDef lmp_methods[] = {
    {"load", lmp_load, METH_VARARGS, load_doc},
    {"missing", lmp_missing, METH_NOARGS, missing_doc},
    {"symbols", lmp_symbol_names, METH_NOARGS, symbols_doc},
    {"define_message", (PyCFunction)(void (*)(void))lmp_define_message, METH_FASTCALL, lmp_define_message_doc},
    {"define_receive", (PyCFunction)(void (*)(void))lmp_define_receive, METH_FASTCALL, lmp_define_receive_doc},
    {"define_net", (PyCFunction)(void (*)(void))lmp_define_net, METH_FASTCALL, lmp_define_net_doc},
    {"net_io", (PyCFunction)(void (*)(void))lmp_net_io, METH_FASTCALL, lmp_net_io_doc},
    {"net_ready", (PyCFunction)(void (*)(void))lmp_net_ready, METH_FASTCALL, lmp_net_ready_doc},
    {"deliver_messages", (PyCFunction)(void (*)(void))lmp_deliver_messages, METH_FASTCALL,
     lmp_deliver_messages_doc},
    {"encode_message", (PyCFunction)(void (*)(void))lmp_encode_message, METH_FASTCALL, lmp_encode_message_doc},
    {"split_link_records", (PyCFunction)(void (*)(void))lmp_split_link_records, METH_FASTCALL,
     lmp_split_link_records_doc},
    {"batch_message", (PyCFunction)(void (*)(void))lmp_batch_message, METH_FASTCALL, lmp_batch_message_doc},
    {"split_batch", (PyCFunction)(void (*)(void))lmp_split_batch, METH_FASTCALL, lmp_split_batch_doc},
    {"mailbox_types", (PyCFunction)(void (*)(void))lmp_mailbox_types, METH_FASTCALL, lmp_mailbox_types_doc},
    {"instantiate", (PyCFunction)(void (*)(void))lmp_instantiate, METH_FASTCALL, lmp_instantiate_doc},
    {"call_function", (PyCFunction)(void (*)(void))lmp_call_function, METH_FASTCALL, lmp_call_function_doc},
    {"hibernate_idle", (PyCFunction)(void (*)(void))lmp_hibernate_idle, METH_FASTCALL, lmp_hibernate_idle_doc},
    {"hibernation_stats", lmp_hibernation_stats, METH_NOARGS, lmp_hibernation_stats_doc},
    {"waits_begun", lmp_waits_begun, METH_NOARGS, lmp_waits_begun_doc},
    {"arena_new", (PyCFunction)(void (*)(void))lmp_arena_new, METH_FASTCALL, lmp_arena_new_doc},
    {"arena_install", (PyCFunction)(void (*)(void))lmp_arena_install, METH_FASTCALL, lmp_arena_install_doc},
    {"arena_stats", lmp_arena_stats, METH_O, lmp_arena_stats_doc},
    {"arena_retire", lmp_arena_retire, METH_O, lmp_arena_retire_doc},
    {"define_python", (PyCFunction)(void (*)(void))lmp_define_python, METH_FASTCALL, lmp_define_python_doc},
    {"caller", lmp_caller, METH_NOARGS, lmp_caller_doc},
    {"write_result", (PyCFunction)(void (*)(void))lmp_write_result, METH_FASTCALL, lmp_write_result_doc},
    {"set_trap", (PyCFunction)(void (*)(void))lmp_set_trap, METH_FASTCALL, lmp_set_trap_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef lmp_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "lunatic_mp.vm._core",
    .m_doc = "lunatic_mp's C core against wasmtime's C library (see lunatic_mp.vm.core).",
    .m_size = -1,
    .m_methods = lmp_methods,
};

PyMODINIT_FUNC PyInit__core(void) {
    if (PyType_Ready(&lmp_TickerType) < 0 || PyType_Ready(&lmp_MessageType) < 0 ||
        PyType_Ready(&lmp_MailboxType) < 0 || PyType_Ready(&lmp_RunnerType) < 0 ||
        PyType_Ready(&lmp_RunQueueType) < 0 || lmp_runner_init() < 0 ||
        lmp_slots_init() < 0)
        return NULL;
    PyObject *module = PyModule_Create(&lmp_module);
    if (module == NULL)
        return NULL;
    if (lmp_calls_init(module) < 0 || lmp_store_init(module) < 0 || lmp_net_init() < 0) {
        Py_DECREF(module);
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "Ticker", (PyObject *)&lmp_TickerType) < 0 ||
        PyModule_AddObjectRef(module, "Runner", (PyObject *)&lmp_RunnerType) < 0 ||
        PyModule_AddObjectRef(module, "RunQueue", (PyObject *)&lmp_RunQueueType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
