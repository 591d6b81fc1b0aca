/* The part of wasmtime 50's C API that lunatic_mp's C core calls, transcribed from wasmtime 50's
 * C headers (wasmtime/store.h, wasmtime/engine.h) and checked against wasmtime-py's
 * wasmtime/_bindings.py.
 *
 * The core does not link against wasmtime: at import it finds the _libwasmtime.so that wasmtime-py
 * already loaded and resolves each function below with dlsym (lmp_resolve in _core.c). The list is
 * the single place that names them: LMP_WASMTIME_FUNCTIONS expands to the function pointers, the
 * resolution loop and the names the tests check against the library.
 *
 * Hazard (measured with wasmtime 50.0.1): wasmtime_context_epoch_deadline_async_yield_and_update
 * returns void in the library while _bindings.py declares an error pointer; reading that "error"
 * crashes. The core yields from its own epoch deadline callback instead, and does not use it.
 */
#ifndef LUNATIC_MP_WASMTIME_API_H
#define LUNATIC_MP_WASMTIME_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct wasm_engine_t wasm_engine_t;
typedef struct wasmtime_store wasmtime_store_t;
typedef struct wasmtime_context wasmtime_context_t;
typedef struct wasmtime_error wasmtime_error_t;
typedef struct wasmtime_call_future wasmtime_call_future_t;

/* wasmtime/store.h: what the epoch deadline callback tells wasmtime to do next. */
typedef uint8_t wasmtime_update_deadline_kind_t;
#define WASMTIME_UPDATE_DEADLINE_CONTINUE 0
#define WASMTIME_UPDATE_DEADLINE_YIELD 1

typedef wasmtime_error_t *(*wasmtime_epoch_deadline_callback_t)(wasmtime_context_t *context, void *data,
                                                                 uint64_t *epoch_deadline_delta,
                                                                 wasmtime_update_deadline_kind_t *update_kind);

/* X(return type, name, parameter list): every wasmtime function the core calls. */
#define LMP_WASMTIME_FUNCTIONS(X)                                                                     \
    X(void, wasmtime_engine_increment_epoch, (wasm_engine_t * engine))                                \
    X(wasmtime_context_t *, wasmtime_store_context, (wasmtime_store_t * store))                       \
    X(void, wasmtime_context_set_epoch_deadline, (wasmtime_context_t * context, uint64_t ticks))      \
    X(void, wasmtime_store_epoch_deadline_callback,                                                   \
      (wasmtime_store_t * store, wasmtime_epoch_deadline_callback_t func, void *data,                 \
       void (*finalizer)(void *)))                                                                    \
    X(bool, wasmtime_call_future_poll, (wasmtime_call_future_t * future))

/* The resolved functions, called as lmp_<wasmtime name>(...). */
#define LMP_DECLARE_POINTER(ret, name, params) extern ret(*lmp_##name) params;
LMP_WASMTIME_FUNCTIONS(LMP_DECLARE_POINTER)
#undef LMP_DECLARE_POINTER

#endif
