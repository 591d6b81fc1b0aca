/* The epoch ticker: one thread per lunatic_mp engine that advances its wasmtime engines' epochs
 * every time slice, and the deadline callback that makes a guest yield when its slice is over.
 *
 * Preemption by epochs costs a guest a load and a compare per loop back-edge and function entry,
 * against fuel metering's counting on every block (DESIGN.md, "The native core"). The thread
 * never touches Python: it only calls wasmtime_engine_increment_epoch, which is an atomic add.
 */
#define _GNU_SOURCE
#include "core.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define LMP_MAX_TICKED 4
#define LMP_MAX_WATCHED 4
#define LMP_IDLE_NS 20000000LL /* see lmp_running below: the default idle time before a ticker sleeps */

typedef struct {
    PyObject_HEAD pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int initialised; /* lock and wake exist */
    int started;     /* the thread runs (until close joins it) */
    atomic_int stop;
    pid_t owner;     /* the process that started the thread: a forked child never joins it */
    long long period_ns;
    long long idle_ns; /* how long no guest runs before the thread sleeps */
    int count;
    wasm_engine_t *engines[LMP_MAX_TICKED];
    PyObject *holders[LMP_MAX_TICKED]; /* keep each engine alive while the thread may tick it */
    atomic_ullong ticks;
    /* A long slice (lmp_long_slice_begin): while the engine's thread runs a guest that used up its
     * last slice and nothing else waits for that thread, the ticker sleeps until the long slice
     * ends, an event comes on a watched descriptor (the worker's doorbell, the reactor's epoll), or
     * the engine's thread ends it (kick): a busy core is then interrupted once a long slice instead
     * of once a period, and anything that arrives still ends the slice at once. */
    atomic_llong long_until; /* CLOCK_MONOTONIC ns the long slice under way ends at; 0: none */
    atomic_int waiting_long; /* the thread sleeps in ticker_wait_long */
    int kick_fd;             /* an eventfd that wakes it from there */
    int watched[LMP_MAX_WATCHED];
    int watched_count;
    atomic_ullong long_slices, long_slices_cut;
    /* A long chain (lmp_chain_listen): while the engine's thread runs a chain of local messages
     * past its budget, the ticker still ticks every period but waits on the watched descriptors
     * instead of its condition; the first event sets chain_cut, which ends the chain. */
    atomic_int chain_listening;
    atomic_int chain_cut;
    atomic_ullong long_chains, long_chains_cut;
} Ticker;

/* The thread state this thread's innermost poll let go of the GIL with (lmp_poll): a poll keeps
 * the GIL, so the C host functions take it with a thread-local check (lmp_gil_take; a message
 * makes several calls, and PyGILState_Ensure and Release cost 5% of a hop between two processes
 * even when they find it held), and gives it up at the slice's first tick, so a guest that runs
 * on lets the process's other Python threads run within about one period. */
static _Thread_local PyThreadState *lmp_released;
static _Thread_local int lmp_polling; /* polls in progress on this thread (nested: trap::catch) */

#define LMP_GIL_POLL (-1) /* lmp_gil_take: the poll holds the GIL */

static _Thread_local Ticker *lmp_long_ticker; /* the ticker of this thread's long slice under way */
static void ticker_end_long(Ticker *self);

lmp_gil_t lmp_gil_take(void) {
    if (lmp_long_ticker != NULL) { /* a host call ends a long slice: see lmp_long_slice_begin */
        ticker_end_long(lmp_long_ticker);
        lmp_long_ticker = NULL;
        if (lmp_released != NULL) { /* it let go of the GIL when it began: the poll holds it again */
            PyEval_RestoreThread(lmp_released);
            lmp_released = NULL;
        }
    }
    if (lmp_polling > 0 && lmp_released == NULL)
        return LMP_GIL_POLL;
    return (lmp_gil_t)PyGILState_Ensure();
}

void lmp_gil_give(lmp_gil_t held) {
    if (held != LMP_GIL_POLL)
        PyGILState_Release((PyGILState_STATE)held);
}

/* Called at the first epoch check after the store's deadline: at a tick, or at once after
 * yield_soon. A guest yields at the second tick after it was resumed (poll clears `armed`), so it
 * runs at least one whole period: a short burst of work is not cut at an arbitrary tick, which
 * keeps the order of short message exchanges the same from run to run. At the first tick the
 * poll lets go of the GIL (see lmp_released). */
wasmtime_error_t *lmp_epoch_deadline(wasmtime_context_t *context, void *data, uint64_t *delta,
                                     wasmtime_update_deadline_kind_t *kind) {
    (void)context;
    lmp_proc *slice = data;
    *delta = 1;
    if (slice->armed) {
        slice->armed = 0;
        *kind = WASMTIME_UPDATE_DEADLINE_YIELD;
    } else {
        slice->armed = 1;
        *kind = WASMTIME_UPDATE_DEADLINE_CONTINUE;
        if (lmp_released == NULL && PyGILState_Check())
            lmp_released = PyEval_SaveThread();
    }
    return NULL;
}

bool lmp_poll(wasmtime_call_future_t *future, lmp_proc *state, bool release) {
    lmp_awake(state);
    PyThreadState *outer = lmp_released; /* a nested poll (trap::catch) keeps its caller's */
    lmp_released = NULL;
    lmp_polling++;
    lmp_poll_begin();
    if (release)
        lmp_released = PyEval_SaveThread();
    bool finished = lmp_wasmtime_call_future_poll(future);
    lmp_poll_end();
    lmp_polling--;
    PyThreadState *mine = lmp_released;
    lmp_released = outer;
    if (mine != NULL)
        PyEval_RestoreThread(mine);
    return finished;
}

/* Polls in progress in this process (lmp_poll_begin/end), polls started so far, and tickers
 * waiting for one: a ticker sleeps once whole periods adding up to its idle_ns (20 ms unless
 * told) passed with no guest running, instead of waking every period for nothing (about 2% of a
 * core an idle engine, measured); under steady traffic of short polls, or bursts of them with
 * shorter gaps (a worker between batches of jobs), it stays awake, so a poll rarely pays for a
 * wake-up (on a busy machine the woken thread may take the waker's core: 13% of a worker running
 * batches of tiny jobs when the ticker slept after one idle period). lmp_running and
 * lmp_sleepers are a Dekker pair: a poll that starts after a ticker counted itself asleep wakes
 * it; a ticker that counts itself after the poll started sees it. The poll that wakes the
 * sleepers also uncounts them, so the polls after it do not wake them again while they wait for
 * a core (a broadcast each: 5% of a worker running tiny jobs on a busy machine, measured); a
 * ticker that finds no guest running when it gets one counts itself again before it waits. */
static atomic_ullong lmp_all_ticks; /* every ticker's ticks in this process (lmp_ticks) */

unsigned long long lmp_ticks(void) { return atomic_load_explicit(&lmp_all_ticks, memory_order_relaxed); }

void lmp_epoch_advanced(void) { atomic_fetch_add(&lmp_all_ticks, 1); }

static pthread_mutex_t lmp_idle_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t lmp_idle_wake = PTHREAD_COND_INITIALIZER;
static atomic_int lmp_running;
static atomic_ullong lmp_polls;
static atomic_int lmp_sleepers;

void lmp_poll_begin(void) {
    atomic_fetch_add(&lmp_polls, 1);
    atomic_fetch_add(&lmp_running, 1);
    if (atomic_load(&lmp_sleepers) > 0 && atomic_exchange(&lmp_sleepers, 0) > 0) {
        pthread_mutex_lock(&lmp_idle_lock);
        pthread_cond_broadcast(&lmp_idle_wake);
        pthread_mutex_unlock(&lmp_idle_lock);
    }
}

void lmp_poll_end(void) { atomic_fetch_sub(&lmp_running, 1); }

static void lmp_wake_sleepers(void) {
    pthread_mutex_lock(&lmp_idle_lock);
    pthread_cond_broadcast(&lmp_idle_wake);
    pthread_mutex_unlock(&lmp_idle_lock);
}

/* One sleeping ticker fewer, unless a poll has uncounted them all already. */
static void ticker_uncount(void) {
    int sleepers = atomic_load(&lmp_sleepers);
    while (sleepers > 0 && !atomic_compare_exchange_weak(&lmp_sleepers, &sleepers, sleepers - 1))
        ;
}

/* Wait, without self->lock, until a guest runs or the ticker is stopped. */
static void ticker_idle(Ticker *self) {
    pthread_mutex_lock(&lmp_idle_lock);
    while (!atomic_load(&self->stop)) {
        atomic_fetch_add(&lmp_sleepers, 1); /* from here a poll that starts wakes it */
        if (atomic_load(&lmp_running) != 0) {
            ticker_uncount();
            break;
        }
        pthread_cond_wait(&lmp_idle_wake, &lmp_idle_lock);
        ticker_uncount(); /* unless the poll that woke it did */
        if (atomic_load(&lmp_running) != 0)
            break;
    }
    pthread_mutex_unlock(&lmp_idle_lock);
}

static void ticker_tick(Ticker *self) {
    for (int i = 0; i < self->count; i++)
        lmp_wasmtime_engine_increment_epoch(self->engines[i]);
    atomic_fetch_add(&self->ticks, 1);
    atomic_fetch_add(&lmp_all_ticks, 1);
}

static void ticker_kick(Ticker *self) {
    if (self->kick_fd < 0)
        return; /* closed (ticker_stop) */
    uint64_t one = 1;
    ssize_t written = write(self->kick_fd, &one, sizeof one); /* EAGAIN: a kick is pending anyway */
    (void)written;
}

/* End the long slice under way, if any (the engine's thread: the poll is over, or the guest made a
 * host call); a ticker asleep for it goes back to periods. long_until and waiting_long are a Dekker
 * pair: either this sees the ticker asleep and kicks it, or the ticker sees the slice over before
 * it sleeps (a kick it then does not need only makes its next long wait start over). */
static void ticker_end_long(Ticker *self) {
    if (atomic_exchange(&self->long_until, 0) != 0 && atomic_load(&self->waiting_long))
        ticker_kick(self);
}

/* The kick eventfd, then the watched descriptors, as ppoll takes them (self->lock held: watch()
 * changes the list under it); their count. */
static nfds_t ticker_poll_set(Ticker *self, struct pollfd *fds) {
    fds[0] = (struct pollfd){.fd = self->kick_fd, .events = POLLIN};
    for (int i = 0; i < self->watched_count; i++)
        fds[1 + i] = (struct pollfd){.fd = self->watched[i], .events = POLLIN};
    return (nfds_t)(1 + self->watched_count);
}

/* ppoll the set for up to left ns (without self->lock): 1 if a watched descriptor has an event; a
 * kick is read and forgotten (the caller looks again at what it waits for). */
static int ticker_poll(Ticker *self, struct pollfd *fds, nfds_t count, long long left) {
    struct timespec timeout = {.tv_sec = (time_t)(left / 1000000000LL), .tv_nsec = (long)(left % 1000000000LL)};
    if (ppoll(fds, count, &timeout, NULL) <= 0)
        return 0;
    uint64_t kicks;
    if (fds[0].revents != 0 && read(self->kick_fd, &kicks, sizeof kicks) < 0)
        kicks = 0; /* EAGAIN: another read took it */
    int event = 0;
    for (nfds_t i = 1; i < count; i++)
        event |= fds[i].revents != 0;
    return event;
}

/* Sleep, letting go of self->lock (held on entry and on return), until the long slice ending at
 * until ends, the engine's thread ends it (a kick), or a watched descriptor has an event. 1 if an
 * event cut it: the ticker then ticks at once, so that the guest yields now (armed by the tick at
 * the slice's first period). */
static int ticker_wait_long(Ticker *self, long long until) {
    struct pollfd fds[1 + LMP_MAX_WATCHED];
    nfds_t count = ticker_poll_set(self, fds);
    pthread_mutex_unlock(&self->lock);
    int cut = 0;
    atomic_store(&self->waiting_long, 1);
    long long left = until - lmp_now_ns();
    if (atomic_load(&self->long_until) == until && left > 0 && !atomic_load(&self->stop))
        cut = ticker_poll(self, fds, count, left);
    atomic_store(&self->waiting_long, 0);
    pthread_mutex_lock(&self->lock);
    if (cut) {
        long long expected = until; /* the slice is over for the engine's thread too */
        cut = atomic_compare_exchange_strong(&self->long_until, &expected, 0);
        if (cut)
            atomic_fetch_add(&self->long_slices_cut, 1);
    }
    return cut;
}

/* Wait until at (CLOCK_MONOTONIC ns) or a stop, letting go of self->lock (held on entry and on
 * return). While a long chain listens, the wait is a ppoll on the watched descriptors: the first
 * event cuts the chain (the engine's thread reads chain_cut between two processes) and the rest
 * of the period is waited as usual, so the ticks keep their pace. */
static void ticker_wait_period(Ticker *self, long long at) {
    struct timespec when = {.tv_sec = (time_t)(at / 1000000000LL), .tv_nsec = (long)(at % 1000000000LL)};
    for (;;) {
        long long left = at - lmp_now_ns();
        if (atomic_load(&self->stop) || left <= 0)
            return;
        if (!atomic_load(&self->chain_listening) || self->watched_count == 0) {
            if (pthread_cond_timedwait(&self->wake, &self->lock, &when) == ETIMEDOUT)
                return;
            continue; /* signalled: a stop, or a chain that listens now */
        }
        struct pollfd fds[1 + LMP_MAX_WATCHED];
        nfds_t count = ticker_poll_set(self, fds);
        pthread_mutex_unlock(&self->lock);
        int event = ticker_poll(self, fds, count, left);
        pthread_mutex_lock(&self->lock);
        if (event && atomic_exchange(&self->chain_listening, 0)) { /* once: the descriptor stays ready */
            atomic_store(&self->chain_cut, 1);
            atomic_fetch_add(&self->long_chains_cut, 1);
        }
    }
}

static void *ticker_main(void *arg) {
    Ticker *self = arg;
    unsigned long long seen = atomic_load(&lmp_polls);
    long long idle = 0; /* nanoseconds of whole periods in a row without a guest */
    pthread_mutex_lock(&self->lock);
    while (!atomic_load(&self->stop)) {
        unsigned long long polls = atomic_load(&lmp_polls);
        if (atomic_load(&lmp_running) == 0 && polls == seen) { /* a whole period without a guest */
            idle += self->period_ns;
            if (idle >= self->idle_ns) {
                pthread_mutex_unlock(&self->lock);
                ticker_idle(self);
                pthread_mutex_lock(&self->lock);
                seen = atomic_load(&lmp_polls) - 1; /* count the poll that woke it: one period awake */
                idle = 0;
                continue;
            }
        } else {
            idle = 0;
        }
        seen = polls;
        long long until = atomic_load(&self->long_until);
        if (until != 0 && until - lmp_now_ns() > self->period_ns) {
            atomic_fetch_add(&self->long_slices, 1);
            int cut = ticker_wait_long(self, until);
            if (atomic_load(&self->stop))
                break;
            if (cut || lmp_now_ns() >= until)
                ticker_tick(self); /* its end: the guest yields now (kicked: back to periods) */
            continue;
        }
        ticker_wait_period(self, lmp_now_ns() + self->period_ns);
        if (atomic_load(&self->stop))
            break;
        ticker_tick(self);
    }
    pthread_mutex_unlock(&self->lock);
    return NULL;
}

void lmp_long_slice_begin(PyObject *ticker, long long until_ns) {
    Ticker *self = (Ticker *)ticker;
    atomic_store(&self->long_until, until_ns);
    lmp_long_ticker = self;
}

void lmp_long_slice_end(PyObject *ticker) {
    if (lmp_long_ticker == (Ticker *)ticker) {
        lmp_long_ticker = NULL;
        ticker_end_long((Ticker *)ticker);
    }
}

void lmp_chain_listen(PyObject *ticker) {
    Ticker *self = (Ticker *)ticker;
    atomic_store(&self->chain_cut, 0);
    atomic_store(&self->chain_listening, 1);
    atomic_fetch_add(&self->long_chains, 1);
    pthread_mutex_lock(&self->lock); /* a ticker waiting on its condition watches from now on */
    pthread_cond_signal(&self->wake);
    pthread_mutex_unlock(&self->lock);
}

void lmp_chain_end(PyObject *ticker) { atomic_store(&((Ticker *)ticker)->chain_listening, 0); }

int lmp_chain_cut(PyObject *ticker) { return atomic_load_explicit(&((Ticker *)ticker)->chain_cut, memory_order_relaxed); }

/* Stop and join the thread; drop the engines. Safe to call twice, and in a forked child. */
static void ticker_stop(Ticker *self) {
    if (self->started) {
        pthread_mutex_lock(&self->lock);
        atomic_store(&self->stop, 1);
        pthread_cond_signal(&self->wake);
        pthread_mutex_unlock(&self->lock);
        lmp_wake_sleepers(); /* an idle ticker waits on the shared condition instead */
        ticker_kick(self);   /* and one waiting for a long slice's end in ppoll */
        if (self->owner == getpid()) {
            Py_BEGIN_ALLOW_THREADS pthread_join(self->thread, NULL);
            Py_END_ALLOW_THREADS
        }
        self->started = 0;
    }
    atomic_store(&self->stop, 1);
    if (self->initialised && self->kick_fd >= 0) { /* the thread is gone: closed now, not when collected */
        close(self->kick_fd);
        self->kick_fd = -1;
    }
    for (int i = 0; i < self->count; i++) {
        self->engines[i] = NULL;
        Py_CLEAR(self->holders[i]);
    }
    self->count = 0;
    self->watched_count = 0;
}

static int ticker_init(Ticker *self, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"period_ns", "idle_ns", NULL};
    long long period_ns, idle_ns = LMP_IDLE_NS;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "L|L:Ticker", keywords, &period_ns, &idle_ns))
        return -1;
    if (idle_ns < 0) {
        PyErr_Format(PyExc_ValueError, "Ticker: idle_ns must not be negative, got %lld", idle_ns);
        return -1;
    }
    if (period_ns < 10000 || period_ns > 10000000000LL) {
        PyErr_Format(PyExc_ValueError, "Ticker: period_ns must be between 10 us and 10 s, got %lld", period_ns);
        return -1;
    }
    if (!lmp_require_ready())
        return -1;
    if (self->initialised) {
        PyErr_SetString(PyExc_RuntimeError, "Ticker: already initialised");
        return -1;
    }
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&self->wake, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&self->lock, NULL);
    self->kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (self->kick_fd < 0) { /* tp_new zeroed it: 0 until here, so a failed init sets it to -1 */
        PyErr_SetFromErrno(PyExc_OSError);
        pthread_cond_destroy(&self->wake);
        pthread_mutex_destroy(&self->lock);
        return -1;
    }
    self->initialised = 1;
    self->period_ns = period_ns;
    self->idle_ns = idle_ns;
    self->owner = getpid();
    int error = pthread_create(&self->thread, NULL, ticker_main, self);
    if (error != 0) {
        errno = error;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    self->started = 1;
    pthread_setname_np(self->thread, "lunatic-ticker"); /* named before Ticker() returns: tests count it */
    return 0;
}

static void ticker_dealloc(Ticker *self) {
    ticker_stop(self);
    if (self->initialised) {
        pthread_cond_destroy(&self->wake);
        pthread_mutex_destroy(&self->lock);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

PyDoc_STRVAR(add_doc, "add(holder, engine) -> None\n\n"
                      "Tick the wasm_engine_t at address engine too; holder (the wasmtime.Engine) is kept\n"
                      "alive until close, so the thread never ticks a freed engine.");

static PyObject *ticker_add(Ticker *self, PyObject *args) {
    PyObject *holder, *address;
    if (!PyArg_ParseTuple(args, "OO:add", &holder, &address))
        return NULL;
    wasm_engine_t *engine = lmp_address(address, "the engine");
    if (engine == NULL)
        return NULL;
    if (!self->started) {
        PyErr_SetString(PyExc_RuntimeError, "Ticker.add: the ticker is closed");
        return NULL;
    }
    if (self->count == LMP_MAX_TICKED) {
        PyErr_Format(PyExc_ValueError, "Ticker.add: a ticker ticks at most %d engines", LMP_MAX_TICKED);
        return NULL;
    }
    Py_INCREF(holder);
    pthread_mutex_lock(&self->lock);
    self->holders[self->count] = holder;
    self->engines[self->count] = engine;
    self->count++;
    pthread_mutex_unlock(&self->lock);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(watch_doc, "watch(fd) -> None\n\n"
                        "End a long slice or a long chain as soon as fd (a descriptor the caller keeps open\n"
                        "until close) is readable: the worker's doorbell, the reactor's epoll. At most 4.");

static PyObject *ticker_watch(Ticker *self, PyObject *arg) {
    long number = PyLong_AsLong(arg);
    if (number == -1 && PyErr_Occurred())
        return NULL;
    if (number < 0 || number > INT_MAX) {
        PyErr_Format(PyExc_ValueError, "Ticker.watch: fd must be a descriptor, got %ld", number);
        return NULL;
    }
    int fd = (int)number;
    if (!self->started) {
        PyErr_SetString(PyExc_RuntimeError, "Ticker.watch: the ticker is closed");
        return NULL;
    }
    pthread_mutex_lock(&self->lock); /* the thread reads the list only while it holds the lock */
    int known = 0, full = self->watched_count == LMP_MAX_WATCHED;
    for (int i = 0; i < self->watched_count; i++)
        known |= self->watched[i] == fd;
    if (!known && !full)
        self->watched[self->watched_count++] = fd;
    pthread_mutex_unlock(&self->lock);
    if (!known && full) {
        PyErr_Format(PyExc_ValueError, "Ticker.watch: a ticker watches at most %d descriptors", LMP_MAX_WATCHED);
        return NULL;
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(close_doc, "close() -> None\n\nStop and join the thread, and let go of the engines.");

static PyObject *ticker_close(Ticker *self, PyObject *unused) {
    (void)unused;
    ticker_stop(self);
    Py_RETURN_NONE;
}

/* A counter of the Ticker: closure is its offset (offsetof). */
static PyObject *ticker_get_counter(Ticker *self, void *closure) {
    return PyLong_FromUnsignedLongLong(atomic_load((atomic_ullong *)((char *)self + (size_t)closure)));
}

#define LMP_AT(field) (void *)offsetof(Ticker, field)

static PyObject *ticker_get_running(Ticker *self, void *closure) {
    (void)closure;
    return PyBool_FromLong(self->started);
}

static PyObject *ticker_get_period(Ticker *self, void *closure) {
    (void)closure;
    return PyLong_FromLongLong(self->period_ns);
}

static PyMethodDef ticker_methods[] = {
    {"add", (PyCFunction)ticker_add, METH_VARARGS, add_doc},
    {"watch", (PyCFunction)ticker_watch, METH_O, watch_doc},
    {"close", (PyCFunction)ticker_close, METH_NOARGS, close_doc},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef ticker_getset[] = {
    {"ticks", (getter)ticker_get_counter, NULL, "Ticks so far.", LMP_AT(ticks)},
    {"running", (getter)ticker_get_running, NULL, "Whether the thread runs.", NULL},
    {"period_ns", (getter)ticker_get_period, NULL, "The time slice in nanoseconds.", NULL},
    {"long_slices", (getter)ticker_get_counter, NULL, "Long slices the thread slept through (or was woken from).",
     LMP_AT(long_slices)},
    {"long_slices_cut", (getter)ticker_get_counter, NULL,
     "Long slices a watched descriptor's event ended before their time.", LMP_AT(long_slices_cut)},
    {"long_chains", (getter)ticker_get_counter, NULL,
     "Chains of local messages that ran on past their budget, listening to the watched descriptors.",
     LMP_AT(long_chains)},
    {"long_chains_cut", (getter)ticker_get_counter, NULL, "Long chains a watched descriptor's event ended.",
     LMP_AT(long_chains_cut)},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject lmp_TickerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "lunatic_mp.vm._core.Ticker",
    .tp_doc = PyDoc_STR("Ticker(period_ns, idle_ns=20_000_000): a thread advancing wasmtime engines' epochs every\n"
                        "period; it sleeps once no guest ran for idle_ns, until one runs."),
    .tp_basicsize = sizeof(Ticker),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)ticker_init,
    .tp_dealloc = (destructor)ticker_dealloc,
    .tp_methods = ticker_methods,
    .tp_getset = ticker_getset,
};
