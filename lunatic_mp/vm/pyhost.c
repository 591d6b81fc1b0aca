/* Host functions written in Python, called through C trampolines instead of ctypes callbacks.
 *
 * Every host function that stays in Python (process, registry, timer, most of networking, wasi's
 * replacements, plugins) is entered here: the trampoline takes the GIL (a thread-local check while
 * a poll holds it), turns the guest's arguments into Python ints or floats, makes one vectorcall,
 * and writes the result back. A ctypes callback did the same through libffi, a ctypes object per
 * argument and per field read, and a Python trampoline frame: about 1.5 µs a call, paid by every
 * guest spawn, registry lookup and timer.
 *
 * What the Python trampolines did is kept exactly:
 * - a GuestTrap's text traps the guest; any other exception is reported to on_error first (the
 *   engine's host_errors) and traps as "host error in <namespace>::<name>: <repr>";
 * - an async function may return PENDING or a Nested call: on_suspend(results, kind, nested,
 *   trap_out) records the suspension (results and trap_out are addresses now: core.write_result
 *   and core.set_trap write through them when the process resumes) and the continuation, in C
 *   too, asks poll_resume(key) each time wasmtime polls the suspended call;
 * - a result is written modulo 2**32 or 2**64, as a ctypes field assignment did;
 * - while a call runs, core.caller() is its wasmtime_caller_t (memory_of finds the guest's memory
 *   through it before instantiation ends); the previous one is restored after (nested calls).
 *
 * The Python objects a definition uses live in a tuple that the Python Linker keeps beside the
 * definition's capsule (so the garbage collector sees them); the C definition borrows them.
 */
#include "message.h"

#include <string.h>

#define LMP_PY_MAX_PARAMS 16
#define LMP_PY_NAME 128

enum {
    LMP_PY_FN,
    LMP_PY_GUEST_TRAP,
    LMP_PY_ON_ERROR,
    LMP_PY_PENDING,
    LMP_PY_NESTED,
    LMP_PY_ON_SUSPEND,
    LMP_PY_POLL_RESUME,
    LMP_PY_REFS
};

typedef struct lmp_py_host_s {
    PyObject *refs; /* borrowed: (fn, guest_trap, on_error, PENDING, Nested, on_suspend, poll_resume) */
    int nparams;
    char params[LMP_PY_MAX_PARAMS + 1];
    int result; /* its kind ('i', 'I', 'f', 'F'), or 0 for none */
    int with_caller;
    char name[LMP_PY_NAME];
} lmp_py_host;

static _Thread_local wasmtime_caller_t *lmp_current_caller;

static bool lmp_py_ready(void *env) {
    (void)env;
    return true;
}

static void lmp_py_no_finalizer(void *env) { (void)env; }

#define REF(host, which) PyTuple_GET_ITEM((host)->refs, (which))

/* A suspended call's continuation: the key on_suspend gave it, and whom to ask (freed by wasmtime
 * through the continuation's finalizer, which may run without the GIL: the raw allocator). */
typedef struct {
    const struct lmp_py_host_s *host;
    Py_ssize_t key;
    wasm_trap_t **trap_out; /* the call's trap slot (wasmtime keeps it until the call goes on) */
} lmp_py_wait;

/* The trap for the pending Python exception (cleared), as the Python trampolines made it. */
static wasm_trap_t *lmp_py_trap(const lmp_py_host *host) {
    PyObject *type, *value, *traceback;
    char message[512];
    if (PyErr_ExceptionMatches(REF(host, LMP_PY_GUEST_TRAP))) {
        PyErr_Fetch(&type, &value, &traceback);
        PyObject *text = value != NULL ? PyObject_Str(value) : NULL;
        const char *reason = text != NULL ? PyUnicode_AsUTF8(text) : NULL;
        snprintf(message, sizeof(message), "%s", reason != NULL ? reason : "refused by the host");
        PyErr_Clear();
        Py_XDECREF(text);
    } else {
        PyErr_Fetch(&type, &value, &traceback);
        PyErr_NormalizeException(&type, &value, &traceback);
        if (value != NULL) {
            PyObject *reported = PyObject_CallOneArg(REF(host, LMP_PY_ON_ERROR), value);
            Py_XDECREF(reported);
            PyErr_Clear();
        }
        PyObject *text = value != NULL ? PyObject_Repr(value) : NULL;
        const char *what = text != NULL ? PyUnicode_AsUTF8(text) : NULL;
        snprintf(message, sizeof(message), "host error in %s: %s", host->name, what != NULL ? what : "unknown error");
        PyErr_Clear();
        Py_XDECREF(text);
    }
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(traceback);
    return lmp_trap(message);
}

/* Whether a suspended call may go on: poll_resume(key), which writes its result first. An error
 * there is the host's: reported to on_error, and the guest traps with it (no result was written). */
static bool lmp_py_resume(void *env) {
    const lmp_py_wait *wait = env;
    lmp_gil_t gil = lmp_gil_take();
    PyObject *key = PyLong_FromSsize_t(wait->key);
    PyObject *ready = key != NULL ? PyObject_CallOneArg(REF(wait->host, LMP_PY_POLL_RESUME), key) : NULL;
    Py_XDECREF(key);
    int done = ready != NULL ? PyObject_IsTrue(ready) : -1;
    Py_XDECREF(ready);
    if (done < 0) {
        *wait->trap_out = lmp_py_trap(wait->host);
        done = 1;
    }
    lmp_gil_give(gil);
    return done;
}

static void lmp_py_wait_free(void *env) { PyMem_RawFree(env); }

static PyObject *lmp_py_value(char kind, int32_t i32, int64_t i64, float f32, double f64) {
    switch (kind) {
    case 'i':
        return PyLong_FromLong(i32);
    case 'I':
        return PyLong_FromLongLong(i64);
    case 'f':
        return PyFloat_FromDouble(f32);
    default:
        return PyFloat_FromDouble(f64);
    }
}

/* Call the function with argv[0..count); NULL with an exception set on failure. */
static PyObject *lmp_py_call(const lmp_py_host *host, wasmtime_caller_t *caller, PyObject **argv, Py_ssize_t count) {
    wasmtime_caller_t *outer = lmp_current_caller;
    lmp_current_caller = caller;
    PyObject *value = PyObject_Vectorcall(REF(host, LMP_PY_FN), argv, (size_t)count, NULL);
    lmp_current_caller = outer;
    for (Py_ssize_t i = 0; i < count; i++)
        Py_DECREF(argv[i]);
    return value;
}

/* A result into a raw slot or a value's union: -1 with an exception set when it is not a number. */
static int lmp_py_result(char kind, PyObject *value, int32_t *i32, int64_t *i64, float *f32, double *f64) {
    if (kind == 'f' || kind == 'F') {
        double number = PyFloat_AsDouble(value);
        if (number == -1.0 && PyErr_Occurred())
            return -1;
        if (kind == 'f')
            *f32 = (float)number;
        else
            *f64 = number;
        return 0;
    }
    unsigned long long bits = PyLong_AsUnsignedLongLongMask(value);
    if (bits == (unsigned long long)-1 && PyErr_Occurred())
        return -1;
    if (kind == 'i')
        *i32 = (int32_t)(uint32_t)bits;
    else
        *i64 = (int64_t)bits;
    return 0;
}

/* A host function that never suspends (wasmtime's unchecked calling convention). */
static wasm_trap_t *lmp_py_sync(void *env, wasmtime_caller_t *caller, wasmtime_val_raw_t *raw, size_t count) {
    (void)count;
    const lmp_py_host *host = env;
    lmp_gil_t gil = lmp_gil_take();
    PyObject *argv[LMP_PY_MAX_PARAMS];
    wasm_trap_t *trap = NULL;
    int i = 0;
    for (; i < host->nparams; i++) {
        argv[i] = lmp_py_value(host->params[i], raw[i].i32, raw[i].i64, raw[i].f32, raw[i].f64);
        if (argv[i] == NULL)
            break;
    }
    PyObject *value = i == host->nparams ? lmp_py_call(host, caller, argv, i) : NULL;
    if (i < host->nparams)
        for (int j = 0; j < i; j++)
            Py_DECREF(argv[j]);
    if (value == NULL ||
        (host->result && lmp_py_result((char)host->result, value, &raw[0].i32, &raw[0].i64, &raw[0].f32, &raw[0].f64) < 0))
        trap = lmp_py_trap(host);
    Py_XDECREF(value);
    lmp_gil_give(gil);
    return trap;
}

static wasmtime_valkind_t lmp_py_kind(char kind) {
    return kind == 'i' ? WASMTIME_I32 : kind == 'I' ? WASMTIME_I64 : kind == 'f' ? WASMTIME_F32 : WASMTIME_F64;
}

/* Record a suspension (value: PENDING, or a Nested call to poll) with on_suspend, and make the
 * continuation ask poll_resume(key) until the call may go on. 0, or -1 with an exception set. */
static int lmp_py_suspend(const lmp_py_host *host, PyObject *value, wasmtime_val_t *results, wasm_trap_t **trap_ret,
                          wasmtime_async_continuation_t *continuation) {
    PyObject *nested = value == REF(host, LMP_PY_PENDING) ? Py_NewRef(Py_None) : PyObject_GetAttrString(value, "call");
    PyObject *kind = PyLong_FromLong(host->result ? lmp_py_kind((char)host->result) : -1);
    PyObject *where = PyLong_FromVoidPtr(results);
    PyObject *trap_out = PyLong_FromVoidPtr(trap_ret);
    PyObject *key = NULL;
    if (nested != NULL && kind != NULL && where != NULL && trap_out != NULL) {
        PyObject *suspend_args[4] = {where, kind, nested, trap_out};
        key = PyObject_Vectorcall(REF(host, LMP_PY_ON_SUSPEND), suspend_args, 4, NULL);
    }
    Py_XDECREF(nested);
    Py_XDECREF(kind);
    Py_XDECREF(where);
    Py_XDECREF(trap_out);
    Py_ssize_t number = key != NULL ? PyLong_AsSsize_t(key) : -1;
    Py_XDECREF(key);
    if (number == -1 && PyErr_Occurred())
        return -1;
    lmp_py_wait *wait = PyMem_RawMalloc(sizeof(lmp_py_wait));
    if (wait == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    wait->host = host;
    wait->key = number;
    wait->trap_out = trap_ret;
    continuation->env = wait;
    continuation->callback = lmp_py_resume;
    continuation->finalizer = lmp_py_wait_free;
    return 0;
}

/* A host function that may suspend its caller: it returns PENDING, or a Nested call to poll. */
static void lmp_py_async(void *env, wasmtime_caller_t *caller, const wasmtime_val_t *args, size_t nargs,
                         wasmtime_val_t *results, size_t nresults, wasm_trap_t **trap_ret,
                         wasmtime_async_continuation_t *continuation) {
    (void)nargs;
    (void)nresults;
    const lmp_py_host *host = env;
    continuation->callback = lmp_py_ready;
    continuation->env = NULL;
    continuation->finalizer = lmp_py_no_finalizer;
    lmp_gil_t gil = lmp_gil_take();
    PyObject *argv[LMP_PY_MAX_PARAMS + 1];
    int count = 0, ok = 1;
    if (host->with_caller) {
        argv[count] = PyLong_FromVoidPtr(caller);
        ok = argv[count++] != NULL;
    }
    for (int i = 0; ok && i < host->nparams; i++) {
        const wasmtime_val_t *arg = &args[i];
        argv[count] = lmp_py_value(host->params[i], arg->of.i32, arg->of.i64, arg->of.f32, arg->of.f64);
        ok = argv[count++] != NULL;
    }
    PyObject *value = NULL;
    if (ok) {
        value = lmp_py_call(host, caller, argv, count);
    } else {
        for (int j = 0; j < count - 1; j++)
            Py_DECREF(argv[j]);
    }
    int failed = value == NULL;
    if (!failed && (value == REF(host, LMP_PY_PENDING) || Py_IS_TYPE(value, (PyTypeObject *)REF(host, LMP_PY_NESTED)))) {
        failed = lmp_py_suspend(host, value, results, trap_ret, continuation) < 0;
    } else if (!failed && host->result) {
        results[0].kind = lmp_py_kind((char)host->result);
        failed = lmp_py_result((char)host->result, value, &results[0].of.i32, &results[0].of.i64,
                               &results[0].of.f32, &results[0].of.f64) < 0;
    }
    if (failed)
        *trap_ret = lmp_py_trap(host); /* the continuation goes on at once (set above) */
    Py_XDECREF(value);
    lmp_gil_give(gil);
}

static void lmp_py_capsule_free(PyObject *capsule) {
    PyMem_Free(PyCapsule_GetPointer(capsule, "lunatic_mp.pyhost"));
}

static int lmp_py_kinds(const char *kinds, int limit, const char *what, const char *namespace, const char *name) {
    size_t count = strlen(kinds);
    if ((int)count > limit || strspn(kinds, "iIfF") != count) {
        PyErr_Format(PyExc_ValueError, "define_python: %s::%s's %s must be at most %d of 'i', 'I', 'f', 'F', got '%s'",
                     namespace, name, what, limit, kinds);
        return -1;
    }
    return (int)count;
}

static void lmp_py_valtypes(wasm_valtype_vec_t *out, const char *kinds) {
    wasm_valtype_t *types[LMP_PY_MAX_PARAMS];
    size_t count = strlen(kinds);
    for (size_t i = 0; i < count; i++)
        types[i] = lmp_wasm_valtype_new(kinds[i] == 'i' ? WASM_I32 : kinds[i] == 'I' ? WASM_I64 : kinds[i] == 'f' ? WASM_F32 : WASM_F64);
    lmp_wasm_valtype_vec_new(out, count, types);
}

const char lmp_define_python_doc[] =
    "define_python(linker, namespace, name, params, results, refs, is_async, with_caller) -> capsule\n\n"
    "Define the Python host function refs[0] on the wasmtime_linker_t at address linker, behind a C\n"
    "trampoline. params: its parameters' kinds ('i' i32, 'I' i64, 'f' f32, 'F' f64, at most 16);\n"
    "results: '' or one kind. refs: (fn, guest_trap, on_error, PENDING, Nested, on_suspend, poll_resume),\n"
    "borrowed: the caller keeps refs and the returned capsule (which owns the definition's C state) alive\n"
    "as long as the linker can call it. A suspended call (is_async) is polled with poll_resume(key), key\n"
    "being what on_suspend returned; with_caller: fn gets the caller's address first.";

PyObject *lmp_define_python(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 8) {
        PyErr_Format(PyExc_TypeError,
                     "define_python takes 8 arguments (linker, namespace, name, params, results, refs, is_async, "
                     "with_caller), got %zd",
                     nargs);
        return NULL;
    }
    if (!lmp_require_ready())
        return NULL;
    wasmtime_linker_t *linker = lmp_address(args[0], "the linker");
    if (linker == NULL)
        return NULL;
    Py_ssize_t namespace_len, name_len;
    const char *namespace = PyUnicode_AsUTF8AndSize(args[1], &namespace_len);
    const char *name = namespace != NULL ? PyUnicode_AsUTF8AndSize(args[2], &name_len) : NULL;
    const char *params = name != NULL ? PyUnicode_AsUTF8(args[3]) : NULL;
    const char *results = params != NULL ? PyUnicode_AsUTF8(args[4]) : NULL;
    if (results == NULL)
        return NULL;
    PyObject *refs = args[5];
    if (!PyTuple_CheckExact(refs) || PyTuple_GET_SIZE(refs) != LMP_PY_REFS || !PyCallable_Check(PyTuple_GET_ITEM(refs, 0)) ||
        !PyType_Check(PyTuple_GET_ITEM(refs, LMP_PY_NESTED))) {
        PyErr_SetString(PyExc_TypeError, "define_python: refs must be (fn, guest_trap, on_error, PENDING, Nested: a "
                                         "type, on_suspend, poll_resume)");
        return NULL;
    }
    int is_async = PyObject_IsTrue(args[6]), with_caller = PyObject_IsTrue(args[7]);
    if (is_async < 0 || with_caller < 0)
        return NULL;
    int nparams = lmp_py_kinds(params, LMP_PY_MAX_PARAMS, "params", namespace, name);
    if (nparams < 0 || lmp_py_kinds(results, 1, "results", namespace, name) < 0)
        return NULL;
    lmp_py_host *host = PyMem_Calloc(1, sizeof(lmp_py_host));
    if (host == NULL)
        return PyErr_NoMemory();
    PyObject *capsule = PyCapsule_New(host, "lunatic_mp.pyhost", lmp_py_capsule_free);
    if (capsule == NULL) {
        PyMem_Free(host);
        return NULL;
    }
    host->refs = refs;
    host->nparams = nparams;
    memcpy(host->params, params, (size_t)nparams);
    host->result = results[0];
    host->with_caller = with_caller;
    snprintf(host->name, sizeof(host->name), "%s::%s", namespace, name);
    wasm_valtype_vec_t param_types, result_types;
    lmp_py_valtypes(&param_types, params);
    lmp_py_valtypes(&result_types, results);
    wasm_functype_t *type = lmp_wasm_functype_new(&param_types, &result_types);
    wasmtime_error_t *error =
        is_async ? lmp_wasmtime_linker_define_async_func(linker, namespace, (size_t)namespace_len, name, (size_t)name_len,
                                                         type, lmp_py_async, host, NULL)
                 : lmp_wasmtime_linker_define_func_unchecked(linker, namespace, (size_t)namespace_len, name,
                                                             (size_t)name_len, type, lmp_py_sync, host, NULL);
    lmp_wasm_functype_delete(type);
    if (error != NULL) {
        char what[LMP_PY_NAME + 16];
        snprintf(what, sizeof(what), "cannot define %s", host->name);
        Py_DECREF(capsule);
        return lmp_wasmtime_error(error, what);
    }
    return capsule;
}

const char lmp_caller_doc[] =
    "caller() -> int\n\n"
    "The address of the wasmtime_caller_t of the Python host call running on this thread (0 outside one).";

PyObject *lmp_caller(PyObject *module, PyObject *unused) {
    (void)module;
    (void)unused;
    return PyLong_FromVoidPtr(lmp_current_caller);
}

const char lmp_write_result_doc[] =
    "write_result(address, kind, value) -> None\n\n"
    "Write the result of a suspended Python host call (the results address on_suspend got) just before its\n"
    "process resumes: kind 0 i32, 1 i64, 2 f32, 3 f64 (modulo 2**32 or 2**64, as a ctypes field would);\n"
    "a negative kind writes nothing (a function without results).";

PyObject *lmp_write_result(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "write_result takes 3 arguments (address, kind, value), got %zd", nargs);
        return NULL;
    }
    long kind = PyLong_AsLong(args[1]);
    if (kind == -1 && PyErr_Occurred())
        return NULL;
    if (kind < 0)
        Py_RETURN_NONE;
    if (kind > WASMTIME_F64) {
        PyErr_Format(PyExc_ValueError, "write_result: kind %ld is not a number's kind", kind);
        return NULL;
    }
    wasmtime_val_t *out = lmp_address(args[0], "the results");
    if (out == NULL)
        return NULL;
    static const char kinds[] = "iIfF";
    wasmtime_val_t value = {0};
    if (lmp_py_result(kinds[kind], args[2], &value.of.i32, &value.of.i64, &value.of.f32, &value.of.f64) < 0)
        return NULL;
    value.kind = (wasmtime_valkind_t)kind;
    *out = value;
    Py_RETURN_NONE;
}

const char lmp_set_trap_doc[] =
    "set_trap(address, message) -> None\n\n"
    "Make a suspended Python host call trap with message when it resumes (the trap_out address on_suspend got).";

PyObject *lmp_set_trap(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "set_trap takes 2 arguments (address, message), got %zd", nargs);
        return NULL;
    }
    wasm_trap_t **out = lmp_address(args[0], "the trap slot");
    Py_ssize_t length;
    const char *message = out != NULL ? PyUnicode_AsUTF8AndSize(args[1], &length) : NULL;
    if (message == NULL)
        return NULL;
    *out = lmp_wasmtime_trap_new(message, (size_t)length);
    Py_RETURN_NONE;
}
