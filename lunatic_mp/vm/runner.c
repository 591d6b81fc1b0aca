/* The scheduler's run queue and resume loop in C: run each process ready at the start of a round,
 * once.
 *
 * lunatic_mp.vm.scheduler's Scheduler.run_round calls Runner.run(count) for phase 2 of its round
 * (the module docstring there is the loop, top to bottom). The run queue is a RunQueue, a ring of
 * processes that the loop, the scheduler (make_ready) and the message functions (a send that wakes
 * a receiver) push onto without a Python call. For each process taken from it, a Wasm one is polled
 * here (a new time slice), with Runner.current set to it (Engine.current reads it); an instantiation
 * that finished goes straight on into the process's export (the call instantiate was given);
 * Python is called only for what is rare: a call that finished (Engine.on_call_done: the death),
 * a kill that arrived while the process's own code ran (Engine.kill), and a native process's slice
 * (NativeProcess.run_slice). The process's flags stay Python attributes: this loop reads and
 * writes them at their slots (slots.c).
 */
#include "core.h"

#include <structmember.h>
#include <time.h>

/* --- the run queue --- */

typedef struct {
    PyObject_HEAD uintptr_t *items; /* a ring of count processes from head (strong references), each
                                     * tagged LMP_PREEMPTED if its slice ended it (it runs on) */
    Py_ssize_t head, count, capacity;
    Py_ssize_t preempted; /* entries so tagged: when they are all, a long slice may run */
} lmp_run_queue;

#define LMP_PREEMPTED ((uintptr_t)1)

static PyObject *lmp_entry_process(uintptr_t entry) { return (PyObject *)(entry & ~LMP_PREEMPTED); }

static PyObject *lmp_queue_at(lmp_run_queue *queue, Py_ssize_t i) {
    return lmp_entry_process(queue->items[(queue->head + i) % queue->capacity]);
}

static int lmp_queue_push(lmp_run_queue *queue, PyObject *process, int preempted) {
    if (queue->count == queue->capacity) {
        Py_ssize_t capacity = queue->capacity ? queue->capacity * 2 : 64;
        uintptr_t *items = PyMem_New(uintptr_t, (size_t)capacity);
        if (items == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        for (Py_ssize_t i = 0; i < queue->count; i++)
            items[i] = queue->items[(queue->head + i) % queue->capacity];
        PyMem_Free(queue->items);
        queue->items = items;
        queue->head = 0;
        queue->capacity = capacity;
    }
    uintptr_t entry = (uintptr_t)Py_NewRef(process);
    queue->items[(queue->head + queue->count) % queue->capacity] = preempted ? entry | LMP_PREEMPTED : entry;
    queue->count++;
    queue->preempted += preempted != 0;
    return 0;
}

/* The process at the front (a new reference), or NULL when the queue is empty (no exception);
 * *preempted says whether its slice ended it. */
static PyObject *lmp_queue_pop(lmp_run_queue *queue, int *preempted) {
    if (queue->count == 0)
        return NULL;
    uintptr_t entry = queue->items[queue->head];
    queue->head = (queue->head + 1) % queue->capacity;
    queue->count--;
    *preempted = (entry & LMP_PREEMPTED) != 0;
    queue->preempted -= *preempted;
    return lmp_entry_process(entry);
}

static int lmp_queue_ready(PyObject *queue, PyObject *process, int preempted) {
    if (!Py_IS_TYPE(queue, &lmp_RunQueueType)) {
        PyErr_Format(PyExc_TypeError, "the run queue must be a RunQueue, not %.100s", Py_TYPE(queue)->tp_name);
        return -1;
    }
    int queued = LMP_FLAG(process, LMP_QUEUED);
    if (queued != 0)
        return queued < 0 ? -1 : 0;
    if (LMP_SET(process, LMP_QUEUED, Py_True) < 0 || lmp_queue_push((lmp_run_queue *)queue, process, preempted) < 0)
        return -1;
    return 1;
}

int lmp_make_ready(PyObject *queue, PyObject *process) { return lmp_queue_ready(queue, process, 0); }

static PyObject *run_queue_make_ready(PyObject *self, PyObject *process) {
    int made = lmp_make_ready(self, process);
    return made < 0 ? NULL : PyBool_FromLong(made);
}

static PyObject *run_queue_clear_method(lmp_run_queue *self, PyObject *unused) {
    (void)unused;
    PyObject *process;
    int preempted;
    while ((process = lmp_queue_pop(self, &preempted)) != NULL)
        Py_DECREF(process);
    Py_RETURN_NONE;
}

static Py_ssize_t run_queue_length(lmp_run_queue *self) { return self->count; }

static int run_queue_traverse(lmp_run_queue *self, visitproc visit, void *arg) {
    for (Py_ssize_t i = 0; i < self->count; i++)
        Py_VISIT(lmp_queue_at(self, i));
    return 0;
}

static int run_queue_clear(lmp_run_queue *self) {
    PyObject *process;
    int preempted;
    while ((process = lmp_queue_pop(self, &preempted)) != NULL)
        Py_DECREF(process);
    return 0;
}

static void run_queue_dealloc(lmp_run_queue *self) {
    PyObject_GC_UnTrack(self);
    run_queue_clear(self);
    PyMem_Free(self->items);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *run_queue_list(lmp_run_queue *self, PyObject *unused) {
    (void)unused;
    PyObject *list = PyList_New(self->count);
    for (Py_ssize_t i = 0; list != NULL && i < self->count; i++)
        PyList_SET_ITEM(list, i, Py_NewRef(lmp_queue_at(self, i)));
    return list;
}

static PyObject *run_queue_get_preempted(lmp_run_queue *self, void *closure) {
    (void)closure;
    return PyLong_FromSsize_t(self->preempted);
}

static PyGetSetDef run_queue_getset[] = {
    {"preempted", (getter)run_queue_get_preempted, NULL,
     "How many of the queued processes are there because their slice ended (they run on).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef run_queue_methods[] = {
    {"make_ready", run_queue_make_ready, METH_O,
     "make_ready(process) -> bool: queue process at the back unless it is queued (its queued flag);\n"
     "whether it was queued now."},
    {"clear", (PyCFunction)run_queue_clear_method, METH_NOARGS, "Forget every queued process."},
    {"processes", (PyCFunction)run_queue_list, METH_NOARGS, "The queued processes, front first (a new list)."},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods run_queue_as_sequence = {.sq_length = (lenfunc)run_queue_length};

PyTypeObject lmp_RunQueueType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "lunatic_mp.vm._core.RunQueue",
    .tp_doc = PyDoc_STR("RunQueue(): the scheduler's FIFO of ready processes (runner.c)."),
    .tp_basicsize = sizeof(lmp_run_queue),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)run_queue_dealloc,
    .tp_traverse = (traverseproc)run_queue_traverse,
    .tp_clear = (inquiry)run_queue_clear,
    .tp_methods = run_queue_methods,
    .tp_getset = run_queue_getset,
    .tp_as_sequence = &run_queue_as_sequence,
};

/* --- the resume loop --- */

typedef struct {
    PyObject_HEAD PyObject *queue; /* the Scheduler's RunQueue */
    PyObject *engine;
    PyObject *on_call_done; /* Engine.on_call_done(process): its call finished, failed or was killed */
    PyObject *kill;         /* Engine.kill(pid, reason) */
    PyObject *running;      /* the phase a process enters when its export starts (Phase.RUNNING) */
    PyObject *current;      /* the process being polled, or NULL (None) */
    PyObject *between;      /* called between two processes of a round a tick went by in, or NULL */
    PyObject *listen;       /* asked before a long slice or a long chain begins, or NULL */
    PyObject *ticker;       /* the engine's Ticker, for long slices and long chains; NULL: none */
    long long next_timer_ns; /* CLOCK_MONOTONIC ns of the earliest timer (0: none): kept by the scheduler */
} Runner;

static PyObject *lmp_str_native, *lmp_str_run_slice, *lmp_str_pid;

int lmp_runner_init(void) {
    PyObject **names[] = {&lmp_str_native, &lmp_str_run_slice, &lmp_str_pid};
    const char *texts[] = {"native", "run_slice", "pid"};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
        if ((*names[i] = PyUnicode_InternFromString(texts[i])) == NULL)
            return -1;
    return 0;
}

/* Poll the process's current call for one time slice: 1 finished, 0 not, -1 on error. The call
 * (a new reference) and the process's C state (the call's store's) are left in *call_out and
 * *state_out. */
static int lmp_poll_process(Runner *self, PyObject *process, long long long_until, PyObject **call_out,
                            lmp_proc **state_out) {
    PyObject *call = LMP_GET(process, LMP_CALL);
    wasmtime_call_future_t *future = call != NULL ? lmp_call_future(call) : NULL;
    if (future == NULL) {
        Py_XDECREF(call);
        return -1;
    }
    lmp_proc *state = lmp_call_state(call);
    Py_XSETREF(self->current, Py_NewRef(process));
    state->armed = 0;
    /* The deadline is the epoch then plus one: still that while no tick (nor yield_soon) has
     * advanced an epoch since it was set. A tick that lands between its epoch increment and its
     * count only makes this slice end one tick early. */
    unsigned long long ticks = lmp_ticks() + 1;
    if (state->deadline_ticks != ticks) {
        lmp_wasmtime_context_set_epoch_deadline(state->context, 1);
        state->deadline_ticks = ticks;
    }
    int done;
    if (long_until != 0) {
        lmp_long_slice_begin(self->ticker, long_until);
        done = lmp_poll(future, state, true);
        lmp_long_slice_end(self->ticker);
    } else {
        done = lmp_poll(future, state, false);
    }
    Py_CLEAR(self->current);
    *call_out = call;
    *state_out = state;
    return done;
}

/* The process's instantiation finished: start its export in the same store (instantiate was given
 * it) as process.call (the instantiation is done with: the new call carries the instance). 1 if it did, 0 if
 * Python decides (a failure, a kill, or no export to start), -1 on error. */
static int lmp_start_export(Runner *self, PyObject *process, PyObject *instantiation, lmp_proc *state) {
    if (!lmp_call_has_next(instantiation))
        return 0;
    PyObject *reason = LMP_GET(process, LMP_KILL_REQUESTED);
    if (reason == NULL)
        return -1;
    int killed = reason != Py_None;
    Py_DECREF(reason);
    if (killed)
        return 0;
    PyObject *call = lmp_call_next(instantiation, state->context);
    if (call == NULL)
        return PyErr_Occurred() ? -1 : 0;
    int status = LMP_SET(process, LMP_PHASE, self->running) < 0 || LMP_SET(process, LMP_CALL, call) < 0 ? -1 : 1;
    Py_DECREF(call);
    return status;
}

/* Run one Wasm process until its call suspends, its slice ends, or it dies (the Python loop this
 * replaced was Scheduler._run_slice): its slice long, until long_until, unless that is 0. 0, or -1
 * on error. */
static int lmp_run_wasm(Runner *self, PyObject *process, long long long_until) {
    for (;; long_until = 0) {
        PyObject *call = NULL;
        lmp_proc *state = NULL;
        int done = lmp_poll_process(self, process, long_until, &call, &state);
        if (done < 0)
            return -1;
        if (done) {
            int started = lmp_start_export(self, process, call, state);
            Py_DECREF(call);
            if (started != 0) {
                if (started < 0)
                    return -1;
                continue;
            }
            PyObject *result = PyObject_CallOneArg(self->on_call_done, process);
            Py_XDECREF(result);
            return result != NULL ? 0 : -1;
        }
        Py_DECREF(call);
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
        /* its slice ended: back of the queue, marked as running on */
        return lmp_queue_ready(self->queue, process, 1) < 0 ? -1 : 0;
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

/* Call between(report), if set: 0, or -1 on error. */
static int lmp_call_between(Runner *self, int report) {
    if (self->between == NULL || self->between == Py_None)
        return 0;
    PyObject *result = PyObject_CallOneArg(self->between, report ? Py_True : Py_False);
    Py_XDECREF(result);
    return result != NULL ? 0 : -1;
}

/* Ask listen() whether a long slice or a long chain may begin: 1 yes, 0 no, -1 on error, and
 * LMP_NO_LISTENER when none is set (an engine run by itself: nothing comes from outside that a
 * long slice would hold back, but its caller's loop has its own work between rounds). */
enum { LMP_NO_LISTENER = 2 };
static int lmp_call_listen(Runner *self) {
    if (self->listen == NULL || self->listen == Py_None)
        return LMP_NO_LISTENER;
    PyObject *result = PyObject_CallNoArgs(self->listen);
    int yes = result != NULL ? PyObject_IsTrue(result) : -1;
    Py_XDECREF(result);
    return yes;
}

/* The earlier of at and the next timer: a long slice or chain ends by then. */
static long long lmp_before_timer(Runner *self, long long at) {
    return self->next_timer_ns > 0 && self->next_timer_ns < at ? self->next_timer_ns : at;
}

/* The chain has used its budget with processes still queued: may it run on, as a long chain, from
 * now until until (listen says yes, and the ticker watches for what comes meanwhile)? 1, 0, or -1
 * on error. */
static int lmp_long_chain_begins(Runner *self, long long now, long long until) {
    if (self->ticker == NULL || until <= now)
        return 0;
    int yes = lmp_call_listen(self);
    if (yes == 1)
        lmp_chain_listen(self->ticker);
    return yes == LMP_NO_LISTENER ? 0 : yes;
}

PyDoc_STRVAR(runner_run_doc,
             "run(count, budget_ns=0, long_slice_ns=0) -> int\n\n"
             "Take count processes from the front of the run queue and run each once: a Wasm process for\n"
             "one time slice, a native one through its run_slice(engine). Then go on taking processes\n"
             "from the front (those the first ones woke, in FIFO order) until the queue is empty or\n"
             "budget_ns have passed since the call: a chain of messages between local processes runs on\n"
             "without a return to the caller's loop per hop. With long_slice_ns (and a ticker), a Wasm\n"
             "process that its last slice ended, taken while every process queued is one too, runs a long\n"
             "slice of up to that many nanoseconds: the ticker sleeps through it unless a descriptor it\n"
             "watches is ready or the guest calls the host (ticker.c). And a chain still running when its\n"
             "budget is spent runs on as a long chain, if listen says so, until long_slice_ns after the\n"
             "call, a descriptor the ticker watches is ready, or the queue is empty. Neither runs past\n"
             "next_timer_ns. Returns how many processes ran.");

/* The loop of run; *chaining is set while a long chain listens (the caller ends it). */
static PyObject *lmp_run_round(Runner *self, Py_ssize_t count, long long budget, long long long_slice,
                               int *chaining) {
    long long start = budget > 0 || long_slice > 0 ? lmp_now_ns() : 0;
    long long deadline = budget > 0 ? start + budget : 0;
    lmp_run_queue *queue = (lmp_run_queue *)self->queue;
    Py_ssize_t ran_count = 0;
    unsigned long long ticks = lmp_ticks();
    for (Py_ssize_t i = 0;; i++) {
        /* past the first count, a chain runs on while the budget lasts (checked every 8) */
        if (i >= count && (queue->count == 0 || deadline == 0))
            break;
        if (i >= count && (i - count) % 8 == 0) {
            if (*chaining && lmp_chain_cut(self->ticker))
                break;
            long long now = lmp_now_ns();
            if (now >= (*chaining ? lmp_before_timer(self, deadline) : deadline)) {
                /* a chain of messages: some process queued was woken, not just requeued by its
                 * slice's end (CPU-bound ones go round by rounds, or in long slices) */
                int longer = 0;
                if (!*chaining && long_slice > 0 && queue->preempted < queue->count)
                    longer = lmp_long_chain_begins(self, now, lmp_before_timer(self, start + long_slice));
                if (longer < 0)
                    return NULL;
                if (!longer)
                    break;
                *chaining = 1;
                deadline = start + long_slice;
                ticks = lmp_ticks();
            }
        }
        int preempted;
        PyObject *process = lmp_queue_pop(queue, &preempted);
        if (process == NULL)
            break;
        /* Long: it ran on to its slice's end, and so did every process waiting behind it. What
         * the caller has to send leaves first (listen), so that nothing waits for the slice. */
        long long long_until = 0;
        if (long_slice > 0 && preempted && queue->preempted == queue->count) {
            int yes = lmp_call_listen(self);
            if (yes < 0) {
                Py_DECREF(process);
                return NULL;
            }
            ticks = lmp_ticks();
            long long now = lmp_now_ns();
            if (yes && queue->preempted == queue->count) /* listen may have queued one */
                long_until = lmp_before_timer(self, now + long_slice);
            if (long_until <= now) /* a timer due already: an ordinary slice */
                long_until = 0;
        }
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
            status = lmp_run_wasm(self, process, long_until);
        }
        int ran = finished == Py_None;
        Py_XDECREF(finished);
        Py_DECREF(process);
        if (status < 0)
            return NULL;
        ran_count += ran;
        /* A tick went by since the round began (or since the last call), and more is to run: let
         * the caller do what must not wait for the round to end (a worker sends its frames; in a
         * long chain, the news of its jobs too). */
        if (queue->count > 0 && lmp_ticks() != ticks) {
            ticks = lmp_ticks();
            if (lmp_call_between(self, *chaining) < 0)
                return NULL;
        }
    }
    return PyLong_FromSsize_t(ran_count);
}

static PyObject *runner_run(Runner *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 1 || nargs > 3) {
        PyErr_Format(PyExc_TypeError, "Runner.run takes 1 to 3 arguments (count, budget_ns, long_slice_ns), got %zd",
                     nargs);
        return NULL;
    }
    Py_ssize_t count = PyLong_AsSsize_t(args[0]);
    if (count == -1 && PyErr_Occurred())
        return NULL;
    long long budget = nargs >= 2 ? PyLong_AsLongLong(args[1]) : 0;
    if (budget == -1 && PyErr_Occurred())
        return NULL;
    long long long_slice = nargs == 3 ? PyLong_AsLongLong(args[2]) : 0;
    if (long_slice == -1 && PyErr_Occurred())
        return NULL;
    if (self->ticker == NULL)
        long_slice = 0;
    int chaining = 0;
    PyObject *ran = lmp_run_round(self, count, budget, long_slice, &chaining);
    if (chaining)
        lmp_chain_end(self->ticker);
    return ran;
}

static int runner_init(Runner *self, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"queue", "engine", "on_call_done", "kill", "running", "ticker", NULL};
    PyObject *queue, *engine, *on_call_done, *kill, *running, *ticker = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!OOOO|O!:Runner", keywords, &lmp_RunQueueType, &queue, &engine,
                                     &on_call_done, &kill, &running, &lmp_TickerType, &ticker))
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
    Py_XSETREF(self->running, Py_NewRef(running));
    Py_XSETREF(self->ticker, Py_XNewRef(ticker));
    return 0;
}

static int runner_traverse(Runner *self, visitproc visit, void *arg) {
    Py_VISIT(self->queue);
    Py_VISIT(self->engine);
    Py_VISIT(self->on_call_done);
    Py_VISIT(self->kill);
    Py_VISIT(self->running);
    Py_VISIT(self->current);
    Py_VISIT(self->between);
    Py_VISIT(self->listen);
    Py_VISIT(self->ticker);
    return 0;
}

static int runner_clear(Runner *self) {
    Py_CLEAR(self->queue);
    Py_CLEAR(self->engine);
    Py_CLEAR(self->on_call_done);
    Py_CLEAR(self->kill);
    Py_CLEAR(self->running);
    Py_CLEAR(self->current);
    Py_CLEAR(self->between);
    Py_CLEAR(self->listen);
    Py_CLEAR(self->ticker);
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

static PyMemberDef runner_members[] = {
    {"current", T_OBJECT, offsetof(Runner, current), 0,
     "The process running now: the one being polled, or a native process taking its slice (it sets\n"
     "this itself); None between them."},
    {"between", T_OBJECT, offsetof(Runner, between), 0,
     "None, or a callable run calls between two processes of a round once a tick of the ticker has\n"
     "gone by since the round began or since its last call, when more processes are to run: a worker\n"
     "sends the frames queued so far (a reply is not held behind the slices left in the round); with\n"
     "True (in a long chain) the news of its jobs too."},
    {"listen", T_OBJECT, offsetof(Runner, listen), 0,
     "None, or a callable run asks before a long slice or a long chain begins: True if what arrives\n"
     "from outside meanwhile will make a descriptor the ticker watches ready (a worker announces its\n"
     "doorbell), after sending what it has queued. False: no long slice or chain this time. None:\n"
     "long slices run (nothing comes from outside), long chains do not."},
    {"next_timer_ns", T_LONGLONG, offsetof(Runner, next_timer_ns), 0,
     "CLOCK_MONOTONIC nanoseconds of the earliest timer, 0 for none (the scheduler keeps it): no\n"
     "long slice or long chain runs past it."},
    {NULL, 0, 0, 0, NULL},
};

PyTypeObject lmp_RunnerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "lunatic_mp.vm._core.Runner",
    .tp_doc = PyDoc_STR("Runner(queue, engine, on_call_done, kill, running, ticker=None): the scheduler's resume loop\n"
                        "(runner.c); with the engine's Ticker, it can run long slices."),
    .tp_basicsize = sizeof(Runner),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)runner_init,
    .tp_dealloc = (destructor)runner_dealloc,
    .tp_traverse = (traverseproc)runner_traverse,
    .tp_clear = (inquiry)runner_clear,
    .tp_methods = runner_methods,
    .tp_members = runner_members,
};
