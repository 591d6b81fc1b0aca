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
typedef struct wasi_config_t wasi_config_t;
typedef struct wasmtime_call_future wasmtime_call_future_t;
typedef struct wasmtime_caller wasmtime_caller_t;
typedef struct wasmtime_linker wasmtime_linker_t;
typedef struct wasm_trap_t wasm_trap_t;
typedef struct wasm_valtype_t wasm_valtype_t;
typedef struct wasm_functype_t wasm_functype_t;
typedef struct wasmtime_instance_pre wasmtime_instance_pre_t;
typedef struct wasm_config_t wasm_config_t;
typedef struct wasm_memorytype_t wasm_memorytype_t;

/* wasm.h: value kinds, and vectors (wasm_valtype_vec_new takes ownership of the elements). */
typedef uint8_t wasm_valkind_t;
#define WASM_I32 0
#define WASM_I64 1
#define WASM_F32 2
#define WASM_F64 3
typedef struct {
    size_t size;
    wasm_valtype_t **data;
} wasm_valtype_vec_t;
typedef struct {
    size_t size;
    char *data;
} wasm_byte_vec_t;

/* wasmtime/extern.h: a memory, and an export as wasmtime_caller_export_get writes it. The union is
 * padded past wasmtime's own (24 bytes in wasmtime 50): it is only ever written by the library. */
typedef struct {
    struct {
        uint64_t store_id;
        uint32_t private1;
    } anon;
    uint32_t private2;
} wasmtime_memory_t;
typedef struct {
    uint64_t store_id;
    void *private_;
} wasmtime_func_t;
typedef struct {
    uint64_t store_id;
    size_t private_;
} wasmtime_instance_t;
typedef uint8_t wasmtime_extern_kind_t;
#define WASMTIME_EXTERN_FUNC 0
#define WASMTIME_EXTERN_MEMORY 3
typedef struct {
    wasmtime_extern_kind_t kind;
    union {
        wasmtime_func_t func;
        wasmtime_memory_t memory;
        uint8_t pad[64];
    } of;
} wasmtime_extern_t;

/* wasmtime/val.h: one raw argument or result slot of an unchecked host function. */
typedef union {
    int32_t i32;
    int64_t i64;
    float f32;
    double f64;
    uint8_t v128[16];
    uint32_t anyref;
    uint32_t externref;
    void *funcref;
} wasmtime_val_raw_t;
/* wasmtime/val.h: a typed value (kind, then the value at offset 8; 32 bytes in wasmtime 50). */
typedef uint8_t wasmtime_valkind_t;
#define WASMTIME_I32 0
#define WASMTIME_I64 1
#define WASMTIME_F32 2
#define WASMTIME_F64 3
#define WASMTIME_V128 4
typedef struct {
    wasmtime_valkind_t kind;
    union {
        int32_t i32;
        int64_t i64;
        float f32;
        double f64;
        uint8_t pad[24];
    } of;
} wasmtime_val_t;

/* wasmtime/async.h: an async host function, and the continuation it leaves when it suspends. */
typedef bool (*wasmtime_func_async_continuation_callback_t)(void *env);
typedef struct {
    wasmtime_func_async_continuation_callback_t callback;
    void *env;
    void (*finalizer)(void *);
} wasmtime_async_continuation_t;
typedef void (*wasmtime_func_async_callback_t)(void *env, wasmtime_caller_t *caller, const wasmtime_val_t *args,
                                               size_t nargs, wasmtime_val_t *results, size_t nresults,
                                               wasm_trap_t **trap_ret, wasmtime_async_continuation_t *continuation);

typedef wasm_trap_t *(*wasmtime_func_unchecked_callback_t)(void *env, wasmtime_caller_t *caller,
                                                            wasmtime_val_raw_t *args_and_results,
                                                            size_t num_args_and_results);

/* wasmtime/store.h: what the epoch deadline callback tells wasmtime to do next. */
typedef uint8_t wasmtime_update_deadline_kind_t;
#define WASMTIME_UPDATE_DEADLINE_CONTINUE 0
#define WASMTIME_UPDATE_DEADLINE_YIELD 1

typedef wasmtime_error_t *(*wasmtime_epoch_deadline_callback_t)(wasmtime_context_t *context, void *data,
                                                                 uint64_t *epoch_deadline_delta,
                                                                 wasmtime_update_deadline_kind_t *update_kind);

/* wasmtime/config.h: host memory and stack creators (linear memories and fiber stacks served by
 * the embedder; arena.c). get_stack_memory returns the top (highest address) of the stack. */
typedef uint8_t *(*wasmtime_memory_get_callback_t)(void *env, size_t *byte_size, size_t *maximum_byte_size);
typedef wasmtime_error_t *(*wasmtime_memory_grow_callback_t)(void *env, size_t new_size);
typedef struct {
    void *env;
    wasmtime_memory_get_callback_t get_memory;
    wasmtime_memory_grow_callback_t grow_memory;
    void (*finalizer)(void *);
} wasmtime_linear_memory_t;
typedef wasmtime_error_t *(*wasmtime_new_memory_callback_t)(void *env, const wasm_memorytype_t *ty, size_t minimum,
                                                             size_t maximum, size_t reserved_size_in_bytes,
                                                             size_t guard_size_in_bytes,
                                                             wasmtime_linear_memory_t *memory_ret);
typedef struct {
    void *env;
    wasmtime_new_memory_callback_t new_memory;
    void (*finalizer)(void *);
} wasmtime_memory_creator_t;
typedef uint8_t *(*wasmtime_stack_memory_get_callback_t)(void *env, size_t *out_len);
typedef struct {
    void *env;
    wasmtime_stack_memory_get_callback_t get_stack_memory;
    void (*finalizer)(void *);
} wasmtime_stack_memory_t;
typedef wasmtime_error_t *(*wasmtime_new_stack_memory_callback_t)(void *env, size_t size, bool zeroed,
                                                                   wasmtime_stack_memory_t *stack_ret);
typedef struct {
    void *env;
    wasmtime_new_stack_memory_callback_t new_stack;
    void (*finalizer)(void *);
} wasmtime_stack_creator_t;

/* X(return type, name, parameter list): every wasmtime function the core calls. */
#define LMP_WASMTIME_FUNCTIONS(X)                                                                     \
    X(wasmtime_store_t *, wasmtime_store_new, (wasm_engine_t * engine, void *data, void (*finalizer)(void *)))   \
    X(wasmtime_error_t *, wasmtime_context_set_fuel, (wasmtime_context_t * context, uint64_t fuel))   \
    X(void, wasmtime_store_limiter,                                                                  \
      (wasmtime_store_t * store, int64_t memory_size, int64_t table_elements, int64_t instances,      \
       int64_t tables, int64_t memories))                                                             \
    X(wasmtime_call_future_t *, wasmtime_instance_pre_instantiate_async,                             \
      (const wasmtime_instance_pre_t *pre, wasmtime_context_t *context, wasmtime_instance_t *instance,\
       wasm_trap_t **trap_ret, wasmtime_error_t **error_ret))                                         \
    X(bool, wasmtime_instance_export_get,                                                            \
      (wasmtime_context_t * context, const wasmtime_instance_t *instance, const char *name,           \
       size_t name_len, wasmtime_extern_t *item))                                                     \
    X(wasmtime_call_future_t *, wasmtime_func_call_async,                                            \
      (wasmtime_context_t * context, const wasmtime_func_t *func, const wasmtime_val_t *args,         \
       size_t nargs, wasmtime_val_t *results, size_t nresults, wasm_trap_t **trap_ret,                \
       wasmtime_error_t **error_ret))                                                                 \
    X(void, wasmtime_call_future_delete, (wasmtime_call_future_t * future))                           \
    X(void, wasmtime_store_delete, (wasmtime_store_t * store))                                        \
    X(void, wasm_trap_delete, (wasm_trap_t * trap))                                                   \
    X(void, wasmtime_engine_increment_epoch, (wasm_engine_t * engine))                                \
    X(wasmtime_context_t *, wasmtime_store_context, (wasmtime_store_t * store))                       \
    X(void, wasmtime_context_set_epoch_deadline, (wasmtime_context_t * context, uint64_t ticks))      \
    X(void, wasmtime_store_epoch_deadline_callback,                                                   \
      (wasmtime_store_t * store, wasmtime_epoch_deadline_callback_t func, void *data,                 \
       void (*finalizer)(void *)))                                                                    \
    X(bool, wasmtime_call_future_poll, (wasmtime_call_future_t * future))                             \
    X(wasmtime_context_t *, wasmtime_caller_context, (wasmtime_caller_t * caller))                    \
    X(void *, wasmtime_context_get_data, (const wasmtime_context_t *context))                         \
    X(bool, wasmtime_caller_export_get,                                                              \
      (wasmtime_caller_t * caller, const char *name, size_t name_len, wasmtime_extern_t *item))       \
    X(uint8_t *, wasmtime_memory_data, (const wasmtime_context_t *context, const wasmtime_memory_t *memory)) \
    X(size_t, wasmtime_memory_data_size,                                                             \
      (const wasmtime_context_t *context, const wasmtime_memory_t *memory))                          \
    X(wasm_trap_t *, wasmtime_trap_new, (const char *message, size_t len))                           \
    X(wasm_valtype_t *, wasm_valtype_new, (wasm_valkind_t kind))                                      \
    X(void, wasm_valtype_vec_new, (wasm_valtype_vec_t * out, size_t size, wasm_valtype_t *const data[])) \
    X(wasm_functype_t *, wasm_functype_new, (wasm_valtype_vec_t * params, wasm_valtype_vec_t * results)) \
    X(void, wasm_functype_delete, (wasm_functype_t * type))                                           \
    X(wasmtime_error_t *, wasmtime_linker_define_func_unchecked,                                     \
      (wasmtime_linker_t * linker, const char *module, size_t module_len, const char *name,           \
       size_t name_len, const wasm_functype_t *type, wasmtime_func_unchecked_callback_t callback,     \
       void *env, void (*finalizer)(void *)))                                                         \
    X(wasmtime_error_t *, wasmtime_linker_define_async_func,                                         \
      (wasmtime_linker_t * linker, const char *module, size_t module_len, const char *name,           \
       size_t name_len, const wasm_functype_t *type, wasmtime_func_async_callback_t callback,         \
       void *env, void (*finalizer)(void *)))                                                         \
    X(void, wasmtime_error_message, (const wasmtime_error_t *error, wasm_byte_vec_t *message))        \
    X(void, wasmtime_error_delete, (wasmtime_error_t * error))                                        \
    X(void, wasm_byte_vec_delete, (wasm_byte_vec_t * vec))                                            \
    X(wasmtime_error_t *, wasmtime_error_new, (const char *message))                                  \
    X(void, wasmtime_config_host_memory_creator_set, (wasm_config_t * config, wasmtime_memory_creator_t * creator)) \
    X(void, wasmtime_config_host_stack_creator_set, (wasm_config_t * config, wasmtime_stack_creator_t * creator)) \
    X(wasi_config_t *, wasi_config_new, (void))                                                       \
    X(void, wasi_config_delete, (wasi_config_t * config))                                             \
    X(bool, wasi_config_set_argv, (wasi_config_t * config, size_t argc, const char *argv[]))         \
    X(bool, wasi_config_set_env,                                                                     \
      (wasi_config_t * config, size_t envc, const char *names[], const char *values[]))              \
    X(bool, wasi_config_preopen_dir,                                                                 \
      (wasi_config_t * config, const char *host_path, const char *guest_path, bool fs_mutable))      \
    X(void, wasi_config_inherit_stdout, (wasi_config_t * config))                                     \
    X(void, wasi_config_inherit_stderr, (wasi_config_t * config))                                     \
    X(wasmtime_error_t *, wasmtime_context_set_wasi, (wasmtime_context_t * context, wasi_config_t * wasi))

/* The resolved functions, called as lmp_<wasmtime name>(...). */
#define LMP_DECLARE_POINTER(ret, name, params) extern ret(*lmp_##name) params;
LMP_WASMTIME_FUNCTIONS(LMP_DECLARE_POINTER)
#undef LMP_DECLARE_POINTER

#endif
