/* Internal declarations shared by the C core's source files (_core.c, ticker.c). */
#ifndef LUNATIC_MP_CORE_H
#define LUNATIC_MP_CORE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <time.h>

#include "wasmtime_api.h"

/* True once lmp_resolve found every function of wasmtime_api.h. */
extern int lmp_ready;

/* Raise RuntimeError and return 0 unless the library is loaded (every entry point checks). */
int lmp_require_ready(void);

/* A Python int holding an address, as a non-null pointer; NULL with an exception set otherwise. */
void *lmp_address(PyObject *value, const char *what);

/* CLOCK_MONOTONIC in nanoseconds: the clock of budgets, deadlines and long slices. */
static inline long long lmp_now_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
}

/* A process's state in C: the data of its wasmtime store (freed with the store by wasmtime), which
 * the epoch deadline callback and the C host functions reach from a context. */
typedef struct {
    wasmtime_context_t *context;
    int armed;         /* a tick has passed since the guest was last resumed: the next one ends its slice */
    unsigned long long deadline_ticks; /* lmp_ticks() + 1 when its epoch deadline was last set (0: never) */
    PyObject *owner;   /* the Process (borrowed: it outlives its store, which it closes) */
    int64_t pid;       /* the owner's pid: the sender of what it sends */
    int have_memory;   /* memory, base and size are the guest's exported `memory` */
    wasmtime_memory_t memory;
    uint8_t *base;     /* never moves: the engine turns memory_may_move off */
    size_t size;       /* as last read; re-read when an access falls past it (the guest may grow) */
    /* A receive suspended in C: where its i32 result goes, and the value wake() gave it (the
     * continuation, lmp_wait_over, writes it and lets the guest go on; no Python on that path). */
    wasmtime_val_t *wait_results;
    int woken;
    int32_t wake_value;
    /* Beside them, in the line a wake touches anyway: an address in the fiber stack of its current
     * wait (receive.c), and where its last read_data wrote in its memory (message.c, prefetched) */
    const void *stack_hint;
    const void *read_hint;
    /* A tcp_read, tcp_peek or tcp_write_vectored suspended in C until its socket is ready (net.c:
     * lmp_net_ready tries it again then, and wakes the guest with no Python on the way). */
    int net_waiting;
    int net_fd, net_op;
    uint32_t net_a, net_b, net_opaque;
    /* The Calls whose futures are pending in this store (calls.c): closing the Store drops them first,
     * since dropping one unwinds its fiber through code the store keeps alive. */
    struct lmp_call *calls;
    /* hibernate.c: what the sweeps saw of its current wait (LMP_IDLE_...), and its memory's pages
     * while it hibernates (NULL when awake). */
    int idle;
    struct lmp_hibernation *hibernation;
} lmp_proc;

/* calls.c: start fetching the future of the call pending in state's store (a prefetch). */
void lmp_calls_prefetch(lmp_proc *state);

enum { LMP_IDLE_ACTIVE = 0, LMP_IDLE_SEEN = 1, LMP_IDLE_DONE = 2 };

/* slots.c: a process's fields, read and written at their __slots__ offsets
 * while an object is of the one type a layout resolved; any other object goes by name. */
enum {
    LMP_QUEUED,
    LMP_FINISHED,
    LMP_CALL,
    LMP_KILL_REQUESTED,
    LMP_WAITING,
    LMP_PARKED,
    LMP_MAILBOX,
    LMP_SCRATCH,
    LMP_RECEIVING,
    LMP_TIMER,
    LMP_PHASE,
    LMP_PID,
    LMP_FIELDS
};
#define LMP_MAX_LAYOUT_FIELDS 16
#define LMP_MAX_REJECTED 4
typedef struct {
    Py_ssize_t count;
    PyObject **names;
    PyTypeObject *type; /* NULL until resolved */
    Py_ssize_t offsets[LMP_MAX_LAYOUT_FIELDS];
    PyTypeObject *rejected[LMP_MAX_REJECTED]; /* types that do not fit: by name, not tried again */
    int rejected_count;
} lmp_layout;
extern lmp_layout lmp_process_layout;
int lmp_slots_init(void);
PyObject **lmp_field_slot(lmp_layout *layout, PyObject *object, int field); /* NULL: go by name */
/* The general cases of lmp_get, lmp_set and lmp_flag (any object: resolves a layout, or by name). */
PyObject *lmp_get_slow(lmp_layout *layout, PyObject *object, int field);
int lmp_set_slow(lmp_layout *layout, PyObject *object, int field, PyObject *value);
int lmp_flag_slow(lmp_layout *layout, PyObject *object, int field);

/* A field of object: a new reference (an object of the resolved type is read at its slot, inline). */
static inline PyObject *lmp_get(lmp_layout *layout, PyObject *object, int field) {
    if (Py_TYPE(object) == layout->type) {
        PyObject *value = *(PyObject **)((char *)object + layout->offsets[field]);
        if (value != NULL)
            return Py_NewRef(value);
    }
    return lmp_get_slow(layout, object, field);
}

static inline int lmp_set(lmp_layout *layout, PyObject *object, int field, PyObject *value) {
    if (Py_TYPE(object) == layout->type) {
        Py_XSETREF(*(PyObject **)((char *)object + layout->offsets[field]), Py_NewRef(value));
        return 0;
    }
    return lmp_set_slow(layout, object, field, value);
}

/* A field's truth: 1, 0, or -1 on error. */
static inline int lmp_flag(lmp_layout *layout, PyObject *object, int field) {
    if (Py_TYPE(object) == layout->type) {
        PyObject *value = *(PyObject **)((char *)object + layout->offsets[field]);
        if (value == Py_True || value == Py_False)
            return value == Py_True;
    }
    return lmp_flag_slow(layout, object, field);
}
#define LMP_GET(object, field) lmp_get(&lmp_process_layout, (object), (field))
#define LMP_SET(object, field, value) lmp_set(&lmp_process_layout, (object), (field), (value))
#define LMP_FLAG(object, field) lmp_flag(&lmp_process_layout, (object), (field))

/* message_type.c: a message (lunatic_mp.vm.mailbox.Message) as a C type. */
enum { LMP_KIND_DATA = 0, LMP_KIND_LINK_DIED = 1, LMP_KIND_PROCESS_DIED = 2 };
#define LMP_INLINE_MAX (1 << 16) /* bytes a message holds inline at most; more stay a bytes object */

/* What an external message holds in place of inline data. */
typedef struct {
    PyObject *data;    /* bytes, or a bytearray while the guest writes it */
    PyObject *modules; /* a list, or NULL until asked for */
    PyObject *streams; /* a list, or NULL for None */
} lmp_message_extras;

/* A message: 40 bytes, then its data inline (size bytes), or, if external, an lmp_message_extras. */
typedef struct {
    PyObject_HEAD int64_t tag;
    int64_t pid;             /* the sender; for a death notice, the process that died */
    uint32_t cursor;         /* where read_data reads next */
    uint32_t size : 24;      /* inline bytes (at most LMP_INLINE_MAX) */
    uint32_t kind : 2;       /* LMP_KIND_... */
    uint32_t reason : 2;     /* a LinkDied's DeathReason */
    uint32_t external : 1;   /* body holds an lmp_message_extras */
    uint8_t body[];          /* at offset 40: 8-byte aligned, as lmp_message_extras needs */
} lmp_message;

static inline lmp_message_extras *lmp_extras(lmp_message *message) {
    return (lmp_message_extras *)(void *)message->body;
}
/* An inline message of size bytes (external with a bytes object past LMP_INLINE_MAX); NULL and an
 * exception on error. */
lmp_message *lmp_message_inline(int64_t tag, int64_t pid, const void *data, size_t size);
/* An external message holding data (bytes or a bytearray; a new reference is taken). */
lmp_message *lmp_message_external(int64_t tag, PyObject *data);
/* A message's bytes and their count, wherever they are. */
const uint8_t *lmp_message_bytes(lmp_message *message, size_t *size);
/* Whether a message carries no resources (no module, no stream). */
int lmp_message_plain(lmp_message *message);
/* A new reference to message if external, else an external copy whose data make (bytes or
 * bytearray's FromStringAndSize) makes; NULL with an exception on error. */
lmp_message *lmp_message_external_copy(lmp_message *message, PyObject *(*make)(const char *, Py_ssize_t));
/* A copy of message's fields and bytes, inline up to LMP_INLINE_MAX (its modules and streams are
 * not copied); NULL with an exception on error. */
lmp_message *lmp_message_inline_copy(lmp_message *message);
/* An i64 from a Python int (a u64 as its bits), or -1 with an error naming Message.<what>. */
int lmp_message_int64(PyObject *value, int64_t *out, const char *what);
PyObject *lmp_mailbox_types(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
extern const char lmp_mailbox_types_doc[];

/* mailbox.c: a mailbox, as a C type. */
typedef struct {
    PyObject_HEAD lmp_message **items; /* a ring of count messages from head */
    Py_ssize_t head, count, capacity;
    PyObject *on_take;
    Py_ssize_t receive_start; /* a suspended receive searches from here; -1: none waits */
    int64_t *tags;            /* ... for these tags (any_tag: any) */
    Py_ssize_t ntags;
    int any_tag;
    Py_ssize_t bound; /* EnvConfig.max_mailbox (0: none): send leaves a put that reaches it to Python */
    lmp_proc *waiter; /* the Wasm process suspended in a C receive on this mailbox, while it waits */
} lmp_mailbox;

extern PyTypeObject lmp_MessageType, lmp_MailboxType;
int lmp_mailbox_put(lmp_mailbox *box, lmp_message *message);
lmp_message *lmp_mailbox_take(lmp_mailbox *box, const int64_t *tags, Py_ssize_t count, int any, Py_ssize_t start);
int lmp_mailbox_wants(lmp_mailbox *box, int64_t tag);
void lmp_mailbox_set_wait(lmp_mailbox *box, int64_t *tags, Py_ssize_t count, int any, Py_ssize_t start);

/* message.c: lunatic::message's C host functions, defined on a linker. */
PyObject *lmp_define_message(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
extern const char lmp_define_message_doc[];
PyObject *lmp_define_receive(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
extern const char lmp_define_receive_doc[];

/* net.c: lunatic::networking's tcp_read, tcp_peek and tcp_write_vectored as C host functions. */
PyObject *lmp_define_net(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *lmp_net_io(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *lmp_net_ready(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
extern const char lmp_define_net_doc[], lmp_net_io_doc[], lmp_net_ready_doc[];
int lmp_net_init(void);

/* inbox.c: plain Message frames from other workers, straight into mailboxes. */
PyObject *lmp_deliver_messages(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *lmp_encode_message(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *lmp_split_link_records(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *lmp_batch_message(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *lmp_split_batch(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
extern const char lmp_deliver_messages_doc[], lmp_encode_message_doc[], lmp_split_link_records_doc[],
    lmp_batch_message_doc[], lmp_split_batch_doc[];

/* The Ticker type (ticker.c) and the epoch deadline callback every store gets. poll brackets each
 * guest run with lmp_poll_begin/end: tickers tick only while a guest runs. */
void lmp_poll_begin(void);
void lmp_poll_end(void);

/* Poll a call's future once (its store's state first woken from hibernation), with the GIL held
 * (the caller holds it) until the guest's slice reaches its first tick, or given up at once with
 * release (a long slice: its first tick may be far off); returns whether the call finished. */
bool lmp_poll(wasmtime_call_future_t *future, lmp_proc *state, bool release);
/* A long slice (ticker.c): from begin until until_ns (CLOCK_MONOTONIC), the ticker (a Ticker)
 * sleeps instead of ticking every period, unless an event on a descriptor it watches or a host
 * call of the guest ends it first; end (after the poll) ends it if nothing did. The engine's
 * thread calls both, with the GIL. */
void lmp_long_slice_begin(PyObject *ticker, long long until_ns);
void lmp_long_slice_end(PyObject *ticker);
/* A long chain (ticker.c): from listen until end, the ticker waits on the descriptors it watches
 * between its ticks, and the first event sets the flag cut returns, which ends the chain. The
 * engine's thread calls all three. */
void lmp_chain_listen(PyObject *ticker);
void lmp_chain_end(PyObject *ticker);
int lmp_chain_cut(PyObject *ticker);

/* The GIL for a C host function: inside a poll that still holds it (it lets go at the slice's
 * first tick) taking it is a thread-local check; anywhere else PyGILState_Ensure. Give back what
 * lmp_gil_take returned. */
typedef int lmp_gil_t;
lmp_gil_t lmp_gil_take(void);
void lmp_gil_give(lmp_gil_t held);
extern PyTypeObject lmp_TickerType;
wasmtime_error_t *lmp_epoch_deadline(wasmtime_context_t *context, void *data, uint64_t *delta,
                                     wasmtime_update_deadline_kind_t *kind);

/* A process's C state's finalizer (its store frees it). */
void lmp_free_state(void *state);

/* store.c: a process's store as the Store type. */
int lmp_store_init(PyObject *module);

/* calls.c: a process's calls (an instantiation, an export, a function) as the Call type. */
/* Raise RuntimeError("<what>: <wasmtime's message>") and free error; returns NULL. */
PyObject *lmp_wasmtime_error(wasmtime_error_t *error, const char *what);
int lmp_calls_init(PyObject *module);
/* Drop every call still pending in state's store (their futures borrow it): before it is deleted. */
void lmp_calls_finish_all(lmp_proc *state);
PyObject *lmp_instantiate(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *lmp_call_function(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
/* Whether call is an instantiation that finished without failing and was given an export to call
 * next; lmp_call_next starts that call in the same store: a new Call, or NULL (with an exception
 * set only on error: a missing export fails the instantiation instead, for Python to report). */
int lmp_call_has_next(PyObject *call);
PyObject *lmp_call_next(PyObject *call, wasmtime_context_t *context);
/* The pending future of a Call; NULL with an exception for another object or a finished call. */
wasmtime_call_future_t *lmp_call_future(PyObject *call);
/* The C state of the store a Call's pending future runs in (one lmp_call_future accepted). */
lmp_proc *lmp_call_state(PyObject *call);
/* The same for any object: NULL unless it is a Call with a pending future. */
lmp_proc *lmp_call_pending_state(PyObject *call);
/* Whether state knows its guest's exported memory, looked up through the call's instance if need
 * be (a guest that never had a C host function touch its memory). */
int lmp_call_find_memory(PyObject *call, lmp_proc *state);
extern const char lmp_instantiate_doc[], lmp_call_function_doc[];

/* pyhost.c: Python host functions behind C trampolines (no ctypes callback). */
PyObject *lmp_define_python(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *lmp_caller(PyObject *module, PyObject *unused);
PyObject *lmp_write_result(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *lmp_set_trap(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
extern const char lmp_define_python_doc[], lmp_caller_doc[], lmp_write_result_doc[], lmp_set_trap_doc[];

/* arena.c: linear memories and fiber stacks from arenas (wasmtime's host memory/stack creators). */
PyObject *lmp_arena_new(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *lmp_arena_install(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *lmp_arena_stats(PyObject *module, PyObject *arena);
PyObject *lmp_arena_retire(PyObject *module, PyObject *arena);
/* The usable range [*low, *top) of the fiber stack slot holding address: 1, or 0 if no stack arena
 * holds it. */
int lmp_stack_slot(const void *address, uint8_t **low, uint8_t **top);
extern const char lmp_arena_new_doc[], lmp_arena_install_doc[], lmp_arena_stats_doc[], lmp_arena_retire_doc[];

/* hibernate.c: an idle process's memory pages, kept compactly on the heap while it waits long. */
int lmp_hibernate(lmp_proc *state); /* 1 if its pages were given back */
void lmp_wake_pages(lmp_proc *state);
void lmp_drop_hibernation(lmp_proc *state); /* its store is going: the pages are not needed */
static inline void lmp_awake(lmp_proc *state) {
    if (state->hibernation != NULL)
        lmp_wake_pages(state);
}
PyObject *lmp_hibernate_idle(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *lmp_hibernation_stats(PyObject *module, PyObject *unused);
PyObject *lmp_waits_begun(PyObject *module, PyObject *unused);
extern const char lmp_hibernate_idle_doc[], lmp_hibernation_stats_doc[], lmp_waits_begun_doc[];
extern unsigned long long lmp_waits; /* receive.c: suspensions until woken so far (a sweep skips if none) */

/* runner.c: the scheduler's run queue and resume loop (the RunQueue and Runner types). */
extern PyTypeObject lmp_RunnerType, lmp_RunQueueType;
/* Queue process at the back of queue (a RunQueue) unless its queued flag says it is: 1 if queued
 * now, 0 if it was, -1 on error. */
int lmp_make_ready(PyObject *queue, PyObject *process);
/* ticker.c: the ticks of every ticker of this process so far (a round that saw one ran a tick),
 * and yield_soon's epoch increments, which count as ticks (lmp_epoch_advanced). */
unsigned long long lmp_ticks(void);
void lmp_epoch_advanced(void);
int lmp_runner_init(void);

#endif
