/* Internal declarations shared by the C core's source files (_core.c, ticker.c). */
#ifndef LUNATIC_MP_CORE_H
#define LUNATIC_MP_CORE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "wasmtime_api.h"

/* True once lmp_resolve found every function of wasmtime_api.h. */
extern int lmp_ready;

/* Raise RuntimeError and return 0 unless the library is loaded (every entry point checks). */
int lmp_require_ready(void);

/* A Python int holding an address, as a non-null pointer; NULL with an exception set otherwise. */
void *lmp_address(PyObject *value, const char *what);

/* A store's time slice: the state its epoch deadline callback keeps (freed with the store). */
typedef struct {
    wasmtime_context_t *context;
    int armed; /* a tick has passed since the guest was last resumed: the next one ends its slice */
} lmp_slice;

/* The Ticker type (ticker.c) and the epoch deadline callback every store gets. */
extern PyTypeObject lmp_TickerType;
wasmtime_error_t *lmp_epoch_deadline(wasmtime_context_t *context, void *data, uint64_t *delta,
                                     wasmtime_update_deadline_kind_t *kind);

#endif
