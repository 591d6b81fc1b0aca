/* The scheduler's resume loop in C: run each process ready at the start of a round, once.
 *
 * lunatic_mp.vm.scheduler's Scheduler.run_round calls Runner.run(count) for phase 2 of its round
 * (the module docstring there is the loop, top to bottom). For each process taken from the run
 * queue, a Wasm one is polled here (a new time slice); Python is called only for what is rare:
 * a call that finished (Engine.on_call_done: the export to start, or the death), a kill that
 * arrived while the process's own code ran (Engine.kill), and a native process's slice
 * (NativeProcess.run_slice). The process's flags stay Python attributes: this loop reads and
 * writes them as the Python loop it replaces did, at their slots (slots.c).
 */
#include "core.h"

#include <time.h>

typedef struct {
    PyObject_HEAD PyObject *queue; /* the Scheduler's run queue (a deque) */
    PyObject *engine;
    PyObject *on_call_done; /* Engine.on_call_done(process) -> bool: go on with a new call */
    PyObject *kill;         /* Engine.kill(pid, reason) */
} Runner;

static PyObject *lmp_str_popleft, *lmp_str_append, *lmp_str_native, *lmp_str_run_slice, *lmp_str_current,
    *lmp_str_pid;

int lmp_runner_init(void) {
    PyObject **names[] = {&lmp_str_popleft, &lmp_str_append, &lmp_str_native,
                          &lmp_str_run_slice, &lmp_str_current, &lmp_str_pid};
    const char *texts[] = {"popleft", "append", "native", "run_slice", "current", "pid"};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
        if ((*names[i] = PyUnicode_InternFromString(texts[i])) == NULL)
            return -1;
    return 0;
}

/* Poll the process's current call for one time slice: 1 finished, 0 not, -1 on error. */
static int lmp_poll_process(Runner *self, PyObject *process) {
    PyObject *call = LMP_GET(process, LMP_CALL);
    wasmtime_call_future_t *future = call != NULL ? lmp_call_future(call) : NULL;
    PyObject *store = future != NULL ? LMP_GET(process, LMP_STORE) : NULL;
    PyObject *slice_obj = store != NULL ? lmp_get(&lmp_store_layout, store, LMP_SLICE) : NULL;
    int done = -1;
    lmp_proc *state = slice_obj != NULL ? PyLong_AsVoidPtr(slice_obj) : NULL;
    if (state == NULL && slice_obj != NULL && !PyErr_Occurred())
        PyErr_SetString(PyExc_RuntimeError, "Runner: a process's store is closed");
    if (state != NULL && PyObject_SetAttr(self->engine, lmp_str_current, process) == 0) {
        state->armed = 0;
        lmp_wasmtime_context_set_epoch_deadline(state->context, 1);
        bool finished = lmp_poll(future);
        done = PyObject_SetAttr(self->engine, lmp_str_current, Py_None) < 0 ? -1 : finished;
    }
    Py_XDECREF(slice_obj);
    Py_XDECREF(store);
    Py_XDECREF(call);
    return done;
}

/* Run one Wasm process until its call suspends, its slice ends, or it dies (the Python loop this
 * replaced was Scheduler._run_slice). 0, or -1 on error. */
static int lmp_run_wasm(Runner *self, PyObject *process) {
    for (;;) {
        int done = lmp_poll_process(self, process);
        if (done < 0)
            return -1;
        if (!done) {
            PyObject *reason = LMP_GET(process, LMP_KILL_REQUESTED);
            if (reason == NULL)
                return -1;
            if (reason != Py_None) { /* killed while its own code ran: it dies now */
                PyObject *pid = PyObject_GetAttr(process, lmp_str_pid);
                PyObject *result = pid != NULL ? PyObject_CallFunctionObjArgs(self->kill, pid, reason, NULL) : NULL;
                Py_XDECREF(pid);
                Py_DECREF(reason);
                Py_XDECREF(result);
                return result != NULL ? 0 : -1;
            }
            Py_DECREF(reason);
            int waiting = LMP_FLAG(process, LMP_WAITING);
            int parked = waiting == 0 ? LMP_FLAG(process, LMP_PARKED) : 0;
            if (waiting < 0 || parked < 0)
                return -1;
            if (waiting || parked)
                return 0;
            int queued = LMP_FLAG(process, LMP_QUEUED); /* its slice ended: back of the queue */
            if (queued < 0)
                return -1;
            if (queued)
                return 0;
            if (LMP_SET(process, LMP_QUEUED, Py_True) < 0)
                return -1;
            PyObject *appended = PyObject_CallMethodOneArg(self->queue, lmp_str_append, process);
            Py_XDECREF(appended);
            return appended != NULL ? 0 : -1;
        }
        PyObject *again = PyObject_CallOneArg(self->on_call_done, process);
        if (again == NULL)
            return -1;
        int go_on = PyObject_IsTrue(again);
        Py_DECREF(again);
        if (go_on <= 0)
            return go_on;
    }
}

/* 1 for a native process, 0 for a Wasm one (of the type the process layout resolved), -1 on error. */
static int lmp_is_native(PyObject *process) {
    if (Py_TYPE(process) == lmp_process_layout.type)
        return 0;
    PyObject *value = PyObject_GetAttr(process, lmp_str_native);
    int truth = value != NULL ? PyObject_IsTrue(value) : -1;
    Py_XDECREF(value);
    return truth;
}

static long long lmp_now_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
}

PyDoc_STRVAR(runner_run_doc,
             "run(count, budget_ns=0) -> int\n\n"
             "Take count processes from the front of the run queue and run each once: a Wasm process for\n"
             "one time slice, a native one through its run_slice(engine). Then go on taking processes\n"
             "from the front (those the first ones woke, in FIFO order) until the queue is empty or\n"
             "budget_ns have passed since the call: a chain of messages between local processes runs on\n"
             "without a return to the caller's loop per hop. Returns how many processes ran.");

static PyObject *runner_run(Runner *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 1 || nargs > 2) {
        PyErr_Format(PyExc_TypeError, "Runner.run takes 1 or 2 arguments (count, budget_ns), got %zd", nargs);
        return NULL;
    }
    Py_ssize_t count = PyLong_AsSsize_t(args[0]);
    if (count == -1 && PyErr_Occurred())
        return NULL;
    long long budget = nargs == 2 ? PyLong_AsLongLong(args[1]) : 0;
    if (budget == -1 && PyErr_Occurred())
        return NULL;
    long long deadline = budget > 0 ? lmp_now_ns() + budget : 0;
    Py_ssize_t ran_count = 0;
    for (Py_ssize_t i = 0;; i++) {
        if (i >= count) {
            Py_ssize_t left = PyObject_Length(self->queue);
            if (left < 0)
                return NULL;
            if (left == 0 || deadline == 0 || lmp_now_ns() >= deadline)
                break;
        }
        PyObject *process = PyObject_CallMethodNoArgs(self->queue, lmp_str_popleft);
        if (process == NULL)
            return NULL;
        int native = lmp_is_native(process);
        int status = native >= 0 ? LMP_SET(process, LMP_QUEUED, Py_False) : -1;
        PyObject *finished = status == 0 ? LMP_GET(process, LMP_FINISHED) : NULL;
        if (finished == NULL || native < 0) {
            status = -1;
        } else if (finished == Py_None && native) {
            PyObject *result = PyObject_CallMethodOneArg(process, lmp_str_run_slice, self->engine);
            status = result != NULL ? 0 : -1;
            Py_XDECREF(result);
        } else if (finished == Py_None) {
            status = lmp_run_wasm(self, process);
        }
        int ran = finished == Py_None;
        Py_XDECREF(finished);
        Py_DECREF(process);
        if (status < 0)
            return NULL;
        ran_count += ran;
    }
    return PyLong_FromSsize_t(ran_count);
}

static int runner_init(Runner *self, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"queue", "engine", "on_call_done", "kill", NULL};
    PyObject *queue, *engine, *on_call_done, *kill;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOO:Runner", keywords, &queue, &engine, &on_call_done, &kill))
        return -1;
    if (!PyCallable_Check(on_call_done) || !PyCallable_Check(kill)) {
        PyErr_SetString(PyExc_TypeError, "Runner: on_call_done and kill must be callable");
        return -1;
    }
    if (!lmp_require_ready())
        return -1;
    Py_XSETREF(self->queue, Py_NewRef(queue));
    Py_XSETREF(self->engine, Py_NewRef(engine));
    Py_XSETREF(self->on_call_done, Py_NewRef(on_call_done));
    Py_XSETREF(self->kill, Py_NewRef(kill));
    return 0;
}

static int runner_traverse(Runner *self, visitproc visit, void *arg) {
    Py_VISIT(self->queue);
    Py_VISIT(self->engine);
    Py_VISIT(self->on_call_done);
    Py_VISIT(self->kill);
    return 0;
}

static int runner_clear(Runner *self) {
    Py_CLEAR(self->queue);
    Py_CLEAR(self->engine);
    Py_CLEAR(self->on_call_done);
    Py_CLEAR(self->kill);
    return 0;
}

static void runner_dealloc(Runner *self) {
    PyObject_GC_UnTrack(self);
    runner_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef runner_methods[] = {
    {"run", (PyCFunction)(void (*)(void))runner_run, METH_FASTCALL, runner_run_doc},
    {NULL, NULL, 0, NULL},
};

PyTypeObject lmp_RunnerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "lunatic_mp.vm._core.Runner",
    .tp_doc = PyDoc_STR("Runner(queue, engine, on_call_done, kill): the scheduler's resume loop (runner.c)."),
    .tp_basicsize = sizeof(Runner),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)runner_init,
    .tp_dealloc = (destructor)runner_dealloc,
    .tp_traverse = (traverseproc)runner_traverse,
    .tp_clear = (inquiry)runner_clear,
    .tp_methods = runner_methods,
};
