/* What the two halves of lunatic::message in C share: message.c (the scratch message, send) and
 * receive.c (receive, send_receive_skip_search). */
#ifndef LUNATIC_MP_MESSAGE_H
#define LUNATIC_MP_MESSAGE_H

#include "core.h"

/* The hooks every function here shares (a tuple the Python Linker keeps alive as long as its
 * definitions can be called; borrowed here, since a reference held by C would hide a cycle through
 * the engine from the garbage collector). */
enum {
    LMP_WAIT_FOR,
    LMP_GUEST_TRAP,
    LMP_ON_ERROR,
    LMP_PENDING,
    LMP_DELIVER,
    LMP_PROCESSES,
    LMP_TIMEOUT,
    LMP_RUN_QUEUE,
    LMP_LINK_BATCHES,   /* dict: node -> bytearray of link records for it (inbox.c: lmp_batch_for_node) */
    LMP_WORKER_BATCHES, /* dict: place -> bytearray of records for a worker of this node (the same form) */
    LMP_HOOKS
};
#define LMP_HOOK(hooks, which) PyTuple_GET_ITEM((hooks), (which))

extern const char LMP_OUTSIDE[];      /* a host function called with no process (trap text) */
extern const char LMP_PYTHON_ERROR[]; /* lmp_send_scratch's outcome when a Python exception is set */

wasm_trap_t *lmp_trap(const char *message);
/* A trap for the pending Python exception (cleared): a GuestTrap's text, or a host error. */
wasm_trap_t *lmp_trap_from_hooks(PyObject *hooks, const char *function);
lmp_proc *lmp_caller_state(wasmtime_caller_t *caller);
/* The guest memory at [ptr, ptr + len), or NULL if any of it is out of bounds (or no memory). */
uint8_t *lmp_span(lmp_proc *state, wasmtime_caller_t *caller, uint32_t ptr, uint32_t len);
wasm_trap_t *lmp_out_of_bounds(lmp_proc *state, uint32_t ptr, uint32_t len);
/* Send the caller's scratch message to pid `to`: NULL (sent), a guest error, or LMP_PYTHON_ERROR. */
const char *lmp_send_scratch(PyObject *hooks, lmp_proc *state, int64_t to);
/* Deliver message to pid as Engine.deliver does: into a local mailbox, or to a C receive waiting
 * for it, in C when nothing else must happen; otherwise through Engine.deliver (another worker, a
 * bound reached, a receiver that is not plain). 0, or -1 with an exception set. */
int lmp_deliver(PyObject *hooks, PyObject *pid, lmp_message *message);
/* inbox.c: append a plain message for pid `to` on another node to that node's batch of link
 * records (hooks' LMP_LINK_BATCHES), as the worker's Python path would: 1 if it did, 0 if Python
 * must (no batch for that node, a full batch, modules or streams attached, large data), -1 with
 * an exception set. */
int lmp_batch_for_node(PyObject *hooks, int64_t to, lmp_message *message);
/* The same for a pid on another worker of this node (hooks' LMP_WORKER_BATCHES, by place). */
int lmp_batch_for_worker(PyObject *hooks, int64_t to, lmp_message *message);
/* receive.c: an async host call's state (its continuation set to go on at once), or NULL with
 * *trap_ret set outside a process; and the continuation of a call suspended in C until
 * Store.wake gives it its value: a receive, or a socket wait (net.c). */
lmp_proc *lmp_async_state(wasmtime_caller_t *caller, wasm_trap_t **trap_ret,
                          wasmtime_async_continuation_t *continuation);
bool lmp_wait_over(void *env);
/* Suspend the async call whose results these are until Store.wake (or a C wake) gives it its
 * value: lmp_wait_over as its continuation (a receive's wait, a socket wait). */
void lmp_suspend_until_woken(lmp_proc *state, wasmtime_val_t *results,
                             wasmtime_async_continuation_t *continuation);
void lmp_valtypes(wasm_valtype_vec_t *out, const char *kinds);
/* Define an async host function returning i32 with params of kinds (lmp_valtypes), or -1 and a
 * RuntimeError naming it (receive.c; lunatic::message's and lunatic::networking's). */
int lmp_define_async(wasmtime_linker_t *linker, const char *namespace, const char *name, const char *params,
                     wasmtime_func_async_callback_t callback, PyObject *hooks);
int lmp_check_hooks(PyObject *hooks, const char *function);

#endif
