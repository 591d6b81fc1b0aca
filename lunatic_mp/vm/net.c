/* lunatic::networking's tcp_read, tcp_peek and tcp_write_vectored as C async host functions (no
 * ctypes trampoline): the calls a TCP server makes for every request.
 *
 * The fast path is all here: the stream's descriptor is found through the caller's process
 * (Process._resources.net.streams[id].fd), every pointer is checked against the guest's memory,
 * and one non-blocking recv (straight into guest memory) or sendmsg (straight from it, one iovec
 * per guest iovec) does the work. Anything else goes to the Python side,
 * lunatic_mp/vm/host/networking.py's c_slow_path: an unknown id or a bad pointer (it traps with
 * the message the guest would get anyway), an error (its error id), or a call that would block:
 * Python arms the reactor wait (and a timer for the stream's timeout) and returns PENDING, and the
 * call suspends here with lmp_wait_over as its continuation, as a receive does, until Store.wake
 * (Engine.resume) gives it its result; the Python side has done the I/O and written the
 * out-parameters by then.
 *
 * The wait of every request of a server is C too: a call that would block on a stream with no
 * timeout, whose descriptor the reactor already holds (registered, edge-triggered, at its first
 * wait) and nobody else waits on, records itself in the reactor's c_waits (fd -> process) and its
 * process's state, and suspends with no Python call. The reactor hands what epoll reports to
 * lmp_net_ready first, which tries those calls again and wakes their processes as Engine.resume
 * would (keep the two in step), leaving Python only the rest: an error, a resume that is not
 * plain (a pause), and every other descriptor.
 *
 * Guests are hostile: a length or count is checked before it is used, and no pointer is
 * dereferenced before lmp_span has bounded it. These run on the guest's fiber with the GIL
 * released by poll: each takes it for its duration (the system calls never block: the sockets are
 * non-blocking, and MSG_DONTWAIT says so again).
 */
#include "message.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>

/* The hooks: (c_slow_path, GuestTrap, on_error, PENDING, c_waits, registered, run_queue, resume,
 * error_id); GuestTrap and on_error sit where message.h's LMP_GUEST_TRAP and LMP_ON_ERROR say, so
 * lmp_trap_from_hooks reads them. c_waits: the reactor's dict fd -> process waiting in C;
 * registered: its dict fd -> list of Python waiters (a key: epoll holds the descriptor);
 * resume: Engine.resume; error_id(process, errno) -> int: the id of an error for the guest. */
enum { LMP_NET_SLOW, LMP_NET_C_WAITS = 4, LMP_NET_REGISTERED, LMP_NET_RUN_QUEUE, LMP_NET_RESUME, LMP_NET_ERROR_ID, LMP_NET_HOOKS };
enum { LMP_NET_READ, LMP_NET_PEEK, LMP_NET_WRITE };

#define LMP_MAX_IOVECS 1024 /* as networking.py's MAX_IOVECS: more goes to Python, which traps */

static PyObject *lmp_str_resources, *lmp_str_net, *lmp_str_streams, *lmp_str_fd, *lmp_str_sock;
static PyObject *lmp_str_timeouts[3]; /* read_timeout, peek_timeout, write_timeout: by op */

int lmp_net_init(void) {
    return (lmp_str_resources = PyUnicode_InternFromString("_resources")) == NULL ||
                   (lmp_str_net = PyUnicode_InternFromString("net")) == NULL ||
                   (lmp_str_streams = PyUnicode_InternFromString("streams")) == NULL ||
                   (lmp_str_fd = PyUnicode_InternFromString("fd")) == NULL ||
                   (lmp_str_sock = PyUnicode_InternFromString("sock")) == NULL ||
                   (lmp_str_timeouts[LMP_NET_READ] = PyUnicode_InternFromString("read_timeout")) == NULL ||
                   (lmp_str_timeouts[LMP_NET_PEEK] = PyUnicode_InternFromString("peek_timeout")) == NULL ||
                   (lmp_str_timeouts[LMP_NET_WRITE] = PyUnicode_InternFromString("write_timeout")) == NULL
               ? -1
               : 0;
}

/* A new reference to object.name, or NULL (no exception) when it is missing or None. */
static PyObject *lmp_attr(PyObject *object, PyObject *name) {
    PyObject *value = PyObject_GetAttr(object, name);
    if (value == NULL) {
        PyErr_Clear();
        return NULL;
    }
    if (value == Py_None) {
        Py_DECREF(value);
        return NULL;
    }
    return value;
}

/* The descriptor of the owner's open TCP stream `rid`, and the stream (a new reference, or NULL
 * where stream_out is), or -1 for anything else (no stream by that id, no networking yet, an object
 * of another shape): the Python side then says what. */
static int lmp_stream_fd(PyObject *owner, int64_t rid, PyObject **stream_out) {
    int fd = -1;
    PyObject *resources = lmp_attr(owner, lmp_str_resources);
    PyObject *net = resources != NULL ? lmp_attr(resources, lmp_str_net) : NULL;
    PyObject *streams = net != NULL ? lmp_attr(net, lmp_str_streams) : NULL;
    PyObject *key = streams != NULL && PyDict_CheckExact(streams) ? PyLong_FromLongLong(rid) : NULL;
    PyObject *stream = key != NULL ? PyDict_GetItemWithError(streams, key) : NULL; /* borrowed */
    PyObject *sock = stream != NULL ? lmp_attr(stream, lmp_str_sock) : NULL;
    PyObject *number = sock != NULL ? lmp_attr(stream, lmp_str_fd) : NULL;
    if (number != NULL && PyLong_CheckExact(number)) {
        long value = PyLong_AsLong(number);
        if (value >= 0 && value <= INT32_MAX)
            fd = (int)value;
    }
    if (fd >= 0 && stream_out != NULL)
        *stream_out = Py_NewRef(stream);
    PyErr_Clear();
    Py_XDECREF(number);
    Py_XDECREF(sock);
    Py_XDECREF(key);
    Py_XDECREF(streams);
    Py_XDECREF(net);
    Py_XDECREF(resources);
    return fd;
}

static uint32_t lmp_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void lmp_put_le64(uint8_t *p, uint64_t value) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(value >> (8 * i));
}

/* The guest memory at [ptr, ptr + len), or NULL: through the caller during a host call, or (caller
 * NULL: net_io, between calls) the memory that call found, whose size is re-read as lmp_span does. */
static uint8_t *lmp_net_span(lmp_proc *state, wasmtime_caller_t *caller, uint32_t ptr, uint32_t len) {
    if (caller != NULL)
        return lmp_span(state, caller, ptr, len);
    if (!state->have_memory)
        return NULL;
    uint64_t end = (uint64_t)ptr + len;
    if (end > state->size) {
        state->size = lmp_wasmtime_memory_data_size(state->context, &state->memory);
        if (end > state->size)
            return NULL;
    }
    return state->base + ptr;
}

/* The iovecs of one sendmsg: every caller holds the GIL from filling them to the system call. */
static struct iovec lmp_iovecs[LMP_MAX_IOVECS];

/* sendmsg of the guest's `count` iovecs at iovec_ptr: the count sent, -1 with errno set, or -2
 * when a pointer is out of bounds or the count too big (Python says which, and traps). */
static ssize_t lmp_send_iovecs(lmp_proc *state, wasmtime_caller_t *caller, int fd, uint32_t iovec_ptr,
                               uint32_t count) {
    if (count > LMP_MAX_IOVECS)
        return -2;
    const uint8_t *raw = lmp_net_span(state, caller, iovec_ptr, count * 8);
    if (raw == NULL)
        return -2;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t ptr = lmp_le32(raw + 8 * i), len = lmp_le32(raw + 8 * i + 4);
        uint8_t *base = lmp_net_span(state, caller, ptr, len);
        if (base == NULL)
            return -2;
        lmp_iovecs[i].iov_base = base;
        lmp_iovecs[i].iov_len = len;
    }
    struct msghdr message;
    memset(&message, 0, sizeof(message));
    message.msg_iov = lmp_iovecs;
    message.msg_iovlen = count;
    return sendmsg(fd, &message, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* One attempt: recv (op read or peek) into the guest's buffer (a, b), or sendmsg of its iovecs
 * (a, b), writing the count at opaque: 0 done, -2 a pointer out of bounds (or too many iovecs),
 * else the errno (EAGAIN: it would block; EINTR is tried again). */
static int lmp_attempt(lmp_proc *state, wasmtime_caller_t *caller, int fd, int op, uint32_t a, uint32_t b,
                       uint32_t opaque) {
    uint8_t *out = lmp_net_span(state, caller, opaque, 8);
    if (out == NULL)
        return -2;
    ssize_t done;
    do {
        if (op == LMP_NET_WRITE) {
            done = lmp_send_iovecs(state, caller, fd, a, b);
        } else {
            uint8_t *buffer = lmp_net_span(state, caller, a, b);
            done = buffer == NULL ? -2 : recv(fd, buffer, b, MSG_DONTWAIT | (op == LMP_NET_PEEK ? MSG_PEEK : 0));
        }
    } while (done == -1 && errno == EINTR);
    if (done == -2)
        return -2;
    if (done < 0)
        return errno == EWOULDBLOCK ? EAGAIN : errno != 0 ? errno : EIO;
    lmp_put_le64(out, (uint64_t)done);
    return 0;
}

/* Suspend the call in C until its socket is ready (see the top): 1 if it did, 0 if Python must
 * arm the wait (a timeout, a descriptor epoll does not hold yet, another waiter), -1 on error. */
static int lmp_net_wait_in_c(PyObject *hooks, lmp_proc *state, PyObject *stream, int fd, int op, uint32_t a,
                             uint32_t b, uint32_t opaque) {
    PyObject *timeout = PyObject_GetAttr(stream, lmp_str_timeouts[op]);
    if (timeout == NULL) {
        PyErr_Clear();
        return 0;
    }
    int forever = timeout == Py_None;
    Py_DECREF(timeout);
    PyObject *key = forever ? PyLong_FromLong(fd) : NULL;
    if (key == NULL)
        return forever ? -1 : 0;
    int status = 0;
    PyObject *waits = LMP_HOOK(hooks, LMP_NET_C_WAITS);
    PyObject *others = PyDict_GetItemWithError(LMP_HOOK(hooks, LMP_NET_REGISTERED), key); /* borrowed */
    if (others == NULL)
        status = PyErr_Occurred() ? -1 : 0;
    else if (PyList_CheckExact(others) && PyList_GET_SIZE(others) == 0 && (status = PyDict_Contains(waits, key)) == 0)
        status = PyDict_SetItem(waits, key, state->owner) < 0 || LMP_SET(state->owner, LMP_WAITING, Py_True) < 0 ||
                         LMP_SET(state->owner, LMP_RECEIVING, Py_True) < 0
                     ? -1
                     : 1;
    else if (status > 0)
        status = 0; /* another process waits on it in C */
    Py_DECREF(key);
    if (status == 1) {
        state->net_waiting = 1;
        state->net_fd = fd;
        state->net_op = op;
        state->net_a = a;
        state->net_b = b;
        state->net_opaque = opaque;
    }
    return status;
}

/* One call: args (id: i64, a: i32, b: i32, opaque_ptr: i32) -> i32, where (a, b) is (buffer,
 * length) for a read or a peek and (iovecs, count) for a write. The GIL is held. */
static void lmp_net_call(int op, PyObject *hooks, lmp_proc *state, wasmtime_caller_t *caller,
                         const wasmtime_val_t *args, wasmtime_val_t *results, wasm_trap_t **trap_ret,
                         wasmtime_async_continuation_t *continuation) {
    int64_t rid = args[0].of.i64;
    uint32_t a = (uint32_t)args[1].of.i32, b = (uint32_t)args[2].of.i32, opaque = (uint32_t)args[3].of.i32;
    int error = 0; /* 0: not tried (Python tries, and says what is wrong); else the errno */
    PyObject *stream = NULL;
    int fd = lmp_stream_fd(state->owner, rid, &stream);
    if (fd >= 0) {
        int outcome = lmp_attempt(state, caller, fd, op, a, b, opaque);
        int waiting = outcome == EAGAIN ? lmp_net_wait_in_c(hooks, state, stream, fd, op, a, b, opaque) : 0;
        Py_DECREF(stream);
        if (outcome == 0 || waiting != 0) {
            if (waiting < 0)
                *trap_ret = lmp_trap_from_hooks(hooks, "networking");
            else if (waiting > 0)
                lmp_suspend_until_woken(state, results, continuation);
            else {
                results[0].kind = WASMTIME_I32;
                results[0].of.i32 = 0; /* OK */
            }
            return;
        }
        if (outcome > 0)
            error = outcome;
    }
    PyObject *value = PyObject_CallFunction(LMP_HOOK(hooks, LMP_NET_SLOW), "OiLkkkiK", state->owner, op,
                                            (long long)rid, (unsigned long)a, (unsigned long)b,
                                            (unsigned long)opaque, error,
                                            (unsigned long long)(uintptr_t)caller);
    if (value == NULL) {
        *trap_ret = lmp_trap_from_hooks(hooks, op == LMP_NET_WRITE ? "tcp_write_vectored" : "tcp_read");
        return;
    }
    if (value == LMP_HOOK(hooks, LMP_PENDING)) { /* suspended until Store.wake */
        lmp_suspend_until_woken(state, results, continuation);
    } else {
        long code = PyLong_AsLong(value);
        if (code == -1 && PyErr_Occurred()) {
            *trap_ret = lmp_trap_from_hooks(hooks, "networking");
        } else {
            results[0].kind = WASMTIME_I32;
            results[0].of.i32 = (int32_t)code;
        }
    }
    Py_DECREF(value);
}

#define LMP_NET_FUNCTION(name, op)                                                                         \
    static void name(void *env, wasmtime_caller_t *caller, const wasmtime_val_t *args, size_t nargs,      \
                     wasmtime_val_t *results, size_t nresults, wasm_trap_t **trap_ret,                      \
                     wasmtime_async_continuation_t *continuation) {                                        \
        (void)nargs;                                                                                        \
        (void)nresults;                                                                                     \
        lmp_proc *state = lmp_async_state(caller, trap_ret, continuation);                                 \
        if (state == NULL)                                                                                  \
            return;                                                                                         \
        lmp_gil_t gil = lmp_gil_take();                                                                     \
        lmp_net_call((op), env, state, caller, args, results, trap_ret, continuation);                      \
        lmp_gil_give(gil);                                                                                  \
    }

LMP_NET_FUNCTION(lmp_tcp_read, LMP_NET_READ)
LMP_NET_FUNCTION(lmp_tcp_peek, LMP_NET_PEEK)
LMP_NET_FUNCTION(lmp_tcp_write_vectored, LMP_NET_WRITE)

const char lmp_net_io_doc[] =
    "net_io(state, fd, op, a, b, opaque_ptr) -> int\n\n"
    "The attempt a C tcp_read (op 0), tcp_peek (1) or tcp_write_vectored (2) makes, again, for its\n"
    "process, suspended since it would block (its memory was found then): 0 (done, the count\n"
    "written at opaque_ptr), -1 when a pointer is out of bounds (its memory cannot shrink: never),\n"
    "else the errno (EAGAIN: it would block still). state: the process's store state (Store.state).";

PyObject *lmp_net_io(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 6) {
        PyErr_Format(PyExc_TypeError, "net_io takes 6 arguments (state, fd, op, a, b, opaque_ptr), got %zd", nargs);
        return NULL;
    }
    if (!lmp_require_ready())
        return NULL;
    lmp_proc *state = lmp_address(args[0], "the state");
    if (state == NULL)
        return NULL;
    long numbers[5];
    for (int i = 0; i < 5; i++) {
        numbers[i] = PyLong_AsLong(args[i + 1]);
        if (numbers[i] == -1 && PyErr_Occurred())
            return NULL;
    }
    if (numbers[0] < 0 || numbers[0] > INT32_MAX || numbers[1] < LMP_NET_READ || numbers[1] > LMP_NET_WRITE) {
        PyErr_SetString(PyExc_ValueError, "net_io: bad descriptor or op");
        return NULL;
    }
    int outcome = lmp_attempt(state, NULL, (int)numbers[0], (int)numbers[1], (uint32_t)numbers[2],
                              (uint32_t)numbers[3], (uint32_t)numbers[4]);
    return PyLong_FromLong(outcome == -2 ? -1 : outcome);
}

/* The process waiting in C on fd, which epoll reported with events: try its call again, and wake
 * it if that went through (or failed). 0, or -1 on error. */
static int lmp_net_woken(PyObject *hooks, PyObject *key, PyObject *process, int fd, uint32_t events) {
    PyObject *waits = LMP_HOOK(hooks, LMP_NET_C_WAITS);
    PyObject *finished = LMP_GET(process, LMP_FINISHED);
    PyObject *call = finished == Py_None ? LMP_GET(process, LMP_CALL) : NULL;
    Py_XDECREF(finished);
    lmp_proc *state = call != NULL && lmp_call_future(call) != NULL ? lmp_call_state(call) : NULL;
    Py_XDECREF(call);
    PyErr_Clear(); /* no call: a process that is gone, or that stopped waiting some other way */
    if (state == NULL || !state->net_waiting || state->net_fd != fd)
        return PyDict_DelItem(waits, key); /* stale */
    int op = state->net_op;
    if ((events & (op == LMP_NET_WRITE ? ~(uint32_t)(EPOLLIN | EPOLLRDHUP) : ~(uint32_t)EPOLLOUT)) == 0)
        return 0; /* an edge for the other direction: still waiting */
    int outcome = lmp_attempt(state, NULL, fd, op, state->net_a, state->net_b, state->net_opaque);
    if (outcome == EAGAIN)
        return 0; /* woken, but another holder of the socket took the data first: wait again */
    if (PyDict_DelItem(waits, key) < 0)
        return -1;
    state->net_waiting = 0;
    int32_t value = 0; /* OK */
    if (outcome != 0) { /* ERROR, with the id of the error where the count would have gone */
        value = 1;
        PyObject *number = PyObject_CallFunction(LMP_HOOK(hooks, LMP_NET_ERROR_ID), "Oi", process, outcome == -2 ? -1 : outcome);
        long long id = number != NULL ? PyLong_AsLongLong(number) : -1;
        Py_XDECREF(number);
        if (id == -1 && PyErr_Occurred())
            return -1;
        uint8_t *out = lmp_net_span(state, NULL, state->net_opaque, 8);
        if (out != NULL) /* it was in bounds when the call began, and memory never shrinks */
            lmp_put_le64(out, (uint64_t)id);
    }
    PyObject *timer = LMP_GET(process, LMP_TIMER);
    int parked = timer == Py_None ? LMP_FLAG(process, LMP_PARKED) : 0;
    int plain = timer == Py_None && parked == 0;
    Py_XDECREF(timer);
    if (timer == NULL || parked < 0)
        return -1;
    if (!plain) { /* Engine.resume cancels the timer, and leaves a paused process paused */
        PyObject *result = PyObject_CallFunction(LMP_HOOK(hooks, LMP_NET_RESUME), "Oi", process, value);
        Py_XDECREF(result);
        return result != NULL ? 0 : -1;
    }
    state->wake_value = value;
    state->woken = 1;
    if (LMP_SET(process, LMP_RECEIVING, Py_False) < 0 || LMP_SET(process, LMP_WAITING, Py_False) < 0)
        return -1;
    return lmp_make_ready(LMP_HOOK(hooks, LMP_NET_RUN_QUEUE), process) < 0 ? -1 : 0;
}

const char lmp_net_ready_doc[] =
    "net_ready(hooks, ready) -> list[tuple[int, int]]\n\n"
    "What epoll reported, (fd, events) pairs, handed to the calls waiting in C first (hooks: as\n"
    "define_net's): each is tried again, and its process woken as Engine.resume would once it went\n"
    "through or failed. Returns the pairs Python has to see: the others, and those that Python\n"
    "waiters wait on too.";

PyObject *lmp_net_ready(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 2 || !PyTuple_CheckExact(args[0]) || PyTuple_GET_SIZE(args[0]) != LMP_NET_HOOKS ||
        !PyList_Check(args[1]) || !PyDict_CheckExact(LMP_HOOK(args[0], LMP_NET_C_WAITS)) ||
        !PyDict_CheckExact(LMP_HOOK(args[0], LMP_NET_REGISTERED))) {
        PyErr_SetString(PyExc_TypeError, "net_ready(hooks: the tuple define_net took, ready: list)");
        return NULL;
    }
    PyObject *hooks = args[0], *ready = args[1];
    PyObject *waits = LMP_HOOK(hooks, LMP_NET_C_WAITS), *registered = LMP_HOOK(hooks, LMP_NET_REGISTERED);
    PyObject *rest = PyList_New(0);
    if (rest == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(ready); i++) {
        PyObject *pair = PyList_GET_ITEM(ready, i);
        long fd = -1, events = -1;
        if (PyTuple_CheckExact(pair) && PyTuple_GET_SIZE(pair) == 2) {
            fd = PyLong_AsLong(PyTuple_GET_ITEM(pair, 0));
            events = fd != -1 || !PyErr_Occurred() ? PyLong_AsLong(PyTuple_GET_ITEM(pair, 1)) : -1;
        }
        if (PyErr_Occurred() || fd < 0 || fd > INT32_MAX || events < 0 || events > UINT32_MAX) {
            PyErr_Clear();
            PyErr_SetString(PyExc_ValueError, "net_ready: ready holds (fd, events) pairs");
            goto fail;
        }
        PyObject *key = PyTuple_GET_ITEM(pair, 0);
        PyObject *process = PyDict_GetItemWithError(waits, key); /* borrowed */
        PyObject *others = process != NULL ? PyDict_GetItemWithError(registered, key) : NULL;
        if (PyErr_Occurred())
            goto fail;
        if ((process == NULL || (others != NULL && PyList_CheckExact(others) && PyList_GET_SIZE(others) > 0)) &&
            PyList_Append(rest, pair) < 0)
            goto fail;
        if (process == NULL)
            continue;
        Py_INCREF(process); /* the dict lets go of it when its wait ends */
        Py_INCREF(pair);
        int status = lmp_net_woken(hooks, key, process, (int)fd, (uint32_t)events);
        Py_DECREF(pair);
        Py_DECREF(process);
        if (status < 0)
            goto fail;
    }
    return rest;
fail:
    Py_DECREF(rest);
    return NULL;
}

const char lmp_define_net_doc[] =
    "define_net(linker, hooks) -> tuple[tuple[str, str, str, str], ...]\n\n"
    "Define lunatic::networking's tcp_read, tcp_peek and tcp_write_vectored (C, async) on a\n"
    "wasmtime_linker_t. hooks: (c_slow_path, GuestTrap, on_error, PENDING, c_waits, registered,\n"
    "run_queue, resume, error_id), kept alive by the caller as long as the linker.\n"
    "c_slow_path(process, op, id, a, b, opaque_ptr, errno, caller) returns the call's result or PENDING\n"
    "(op: 0 read, 1 peek, 2 write; errno 0: not tried). A call that would block on a stream with no\n"
    "timeout, whose fd is a key of registered (the reactor's: epoll holds it) with no Python waiter, and\n"
    "in no other C wait, waits in c_waits[fd] instead (net_ready ends the wait); resume is\n"
    "Engine.resume, error_id(process, errno) the id of an error for the guest (errno -1: out of memory).";


PyObject *lmp_define_net(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "define_net takes 2 arguments (linker, hooks), got %zd", nargs);
        return NULL;
    }
    PyObject *hooks = args[1];
    if (!PyTuple_CheckExact(hooks) || PyTuple_GET_SIZE(hooks) != LMP_NET_HOOKS ||
        !PyCallable_Check(LMP_HOOK(hooks, LMP_NET_SLOW)) || !PyCallable_Check(LMP_HOOK(hooks, LMP_ON_ERROR)) ||
        !PyDict_CheckExact(LMP_HOOK(hooks, LMP_NET_C_WAITS)) || !PyDict_CheckExact(LMP_HOOK(hooks, LMP_NET_REGISTERED)) ||
        !Py_IS_TYPE(LMP_HOOK(hooks, LMP_NET_RUN_QUEUE), &lmp_RunQueueType) ||
        !PyCallable_Check(LMP_HOOK(hooks, LMP_NET_RESUME)) || !PyCallable_Check(LMP_HOOK(hooks, LMP_NET_ERROR_ID))) {
        PyErr_SetString(PyExc_TypeError,
                        "define_net: hooks must be a tuple (c_slow_path, GuestTrap, on_error, PENDING, c_waits: a "
                        "dict, registered: a dict, run_queue: a RunQueue, resume, error_id)");
        return NULL;
    }
    if (!lmp_require_ready())
        return NULL;
    wasmtime_linker_t *linker = lmp_address(args[0], "the linker");
    if (linker == NULL)
        return NULL;
    static const char namespace[] = "lunatic::networking";
    if (lmp_define_async(linker, namespace, "tcp_read", "Iiii", lmp_tcp_read, hooks) < 0 ||
        lmp_define_async(linker, namespace, "tcp_peek", "Iiii", lmp_tcp_peek, hooks) < 0 ||
        lmp_define_async(linker, namespace, "tcp_write_vectored", "Iiii", lmp_tcp_write_vectored, hooks) < 0)
        return NULL;
    return Py_BuildValue("((ssss)(ssss)(ssss))", "lunatic::networking", "tcp_read", "Iiii", "i",
                         "lunatic::networking", "tcp_peek", "Iiii", "i", "lunatic::networking",
                         "tcp_write_vectored", "Iiii", "i");
}
