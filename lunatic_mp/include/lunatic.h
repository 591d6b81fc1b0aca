/*
 * lunatic.h: the lunatic 0.13 guest ABI, as lunatic_mp implements it, for C programs built with
 * clang --target=wasm32-wasi (see docs/guests.md and workers/build.sh).
 *
 * Two layers:
 *   1. lunatic_<namespace>_<function>: one declaration per host function of docs/abi.md, with
 *      the import module and name the host defines and the exact Wasm types (on wasm32, pointers
 *      and 32-bit integers are i32, 64-bit integers i64, double f64). A declaration only becomes
 *      an import when a program uses it.
 *   2. lm_*: a thin static-inline layer over them: messages with tags and timeouts,
 *      request/reply, spawning an export with parameters, links, monitors, the registry with
 *      versions, timers, errors as strings, the HTTP requests of lunatic-mp serve's routes,
 *      and TCP: listen, accept, read, write, and hand a connection to another process.
 *
 * lunatic::networking's UDP and DNS calls are declared at the first layer only. The network needs
 * the config's rules (docs/abi.md, "Permissions"): `lunatic-mp run` gives its root process all.
 */
#ifndef LUNATIC_H
#define LUNATIC_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if !defined(__wasm32__)
#error "lunatic.h is for WebAssembly guests: compile with clang --target=wasm32-wasi"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * ABI constants
 * ------------------------------------------------------------------------------------------- */

#define LUNATIC_OK 0
#define LUNATIC_ERROR 1
#define LUNATIC_TIMEOUT 9027
#define LUNATIC_NO_TIMEOUT UINT64_MAX     /* a timeout that never expires */
#define LUNATIC_SELF (-1)                 /* config_id / module_id: the caller's own */
#define LUNATIC_NOT_PERMITTED (-1)        /* compile_module, create_config */
#define LUNATIC_ALREADY_REGISTERED 2      /* get_or_spawn: the name was taken */

/* What receive returns. */
#define LUNATIC_DATA_MESSAGE 0
#define LUNATIC_LINK_DIED 1
#define LUNATIC_PROCESS_DIED 2

/* Spawn parameter records: a type byte and a 16-byte little-endian value. */
#define LUNATIC_PARAM_SIZE 17
#define LUNATIC_PARAM_I32 0x7F
#define LUNATIC_PARAM_I64 0x7E
#define LUNATIC_PARAM_V128 0x7B

/* tcp_bind / tcp_connect / resolve_next address types. */
#define LUNATIC_ADDR_V4 4
#define LUNATIC_ADDR_V6 6

/* An iovec of tcp_write_vectored: (ptr u32, len u32). */
typedef struct {
    const void *ptr;
    uint32_t len;
} lunatic_iovec_t;

/* ---------------------------------------------------------------------------------------------
 * lunatic::process
 * ------------------------------------------------------------------------------------------- */

/* 0 ok (module id written), 1 error (error id written), -1 not permitted. */
__attribute__((import_module("lunatic::process"), import_name("compile_module")))
int32_t lunatic_process_compile_module(const void *data, uint32_t data_len, uint64_t *id);
__attribute__((import_module("lunatic::process"), import_name("drop_module")))
void lunatic_process_drop_module(int64_t module_id);
/* A new config with everything denied; -1 if not permitted. */
__attribute__((import_module("lunatic::process"), import_name("create_config")))
int64_t lunatic_process_create_config(void);
__attribute__((import_module("lunatic::process"), import_name("drop_config")))
void lunatic_process_drop_config(int64_t config_id);
__attribute__((import_module("lunatic::process"), import_name("config_set_max_memory")))
void lunatic_process_config_set_max_memory(int64_t config_id, uint64_t bytes);
__attribute__((import_module("lunatic::process"), import_name("config_get_max_memory")))
uint64_t lunatic_process_config_get_max_memory(int64_t config_id);
/* Fuel in units of 100,000 instructions; 0 = unlimited. */
__attribute__((import_module("lunatic::process"), import_name("config_set_max_fuel")))
void lunatic_process_config_set_max_fuel(int64_t config_id, uint64_t fuel);
__attribute__((import_module("lunatic::process"), import_name("config_get_max_fuel")))
uint64_t lunatic_process_config_get_max_fuel(int64_t config_id);
__attribute__((import_module("lunatic::process"), import_name("config_set_can_compile_modules")))
void lunatic_process_config_set_can_compile_modules(int64_t config_id, int32_t flag);
__attribute__((import_module("lunatic::process"), import_name("config_can_compile_modules")))
int32_t lunatic_process_config_can_compile_modules(int64_t config_id);
__attribute__((import_module("lunatic::process"), import_name("config_set_can_create_configs")))
void lunatic_process_config_set_can_create_configs(int64_t config_id, int32_t flag);
__attribute__((import_module("lunatic::process"), import_name("config_can_create_configs")))
int32_t lunatic_process_config_can_create_configs(int64_t config_id);
__attribute__((import_module("lunatic::process"), import_name("config_set_can_spawn_processes")))
void lunatic_process_config_set_can_spawn_processes(int64_t config_id, int32_t flag);
__attribute__((import_module("lunatic::process"), import_name("config_can_spawn_processes")))
int32_t lunatic_process_config_can_spawn_processes(int64_t config_id);
/* 0 ok (pid written to *id), 1 error (error id written). link != 0 links the child with that
 * tag. Suspends. params: params_len bytes of 17-byte records. */
__attribute__((import_module("lunatic::process"), import_name("spawn")))
int32_t lunatic_process_spawn(int64_t link, int64_t config_id, int64_t module_id, const char *function,
                              uint32_t function_len, const uint8_t *params, uint32_t params_len,
                              uint64_t *id);
/* 0 spawned and registered, 1 error (error id in *id), 2 already registered (node and pid
 * written). Suspends. */
__attribute__((import_module("lunatic::process"), import_name("get_or_spawn")))
int32_t lunatic_process_get_or_spawn(const char *name, uint32_t name_len, int64_t link, int64_t config_id,
                                     int64_t module_id, const char *function, uint32_t function_len,
                                     const uint8_t *params, uint32_t params_len, uint64_t *node_id,
                                     uint64_t *id);
__attribute__((import_module("lunatic::process"), import_name("sleep_ms")))
void lunatic_process_sleep_ms(uint64_t ms);
__attribute__((import_module("lunatic::process"), import_name("die_when_link_dies")))
void lunatic_process_die_when_link_dies(int32_t flag);
__attribute__((import_module("lunatic::process"), import_name("process_id")))
uint64_t lunatic_process_process_id(void);
__attribute__((import_module("lunatic::process"), import_name("environment_id")))
uint64_t lunatic_process_environment_id(void);
__attribute__((import_module("lunatic::process"), import_name("link")))
void lunatic_process_link(int64_t tag, uint64_t pid);
__attribute__((import_module("lunatic::process"), import_name("unlink")))
void lunatic_process_unlink(uint64_t pid);
__attribute__((import_module("lunatic::process"), import_name("monitor")))
void lunatic_process_monitor(uint64_t pid);
__attribute__((import_module("lunatic::process"), import_name("stop_monitoring")))
void lunatic_process_stop_monitoring(uint64_t pid);
__attribute__((import_module("lunatic::process"), import_name("kill")))
void lunatic_process_kill(uint64_t pid);
__attribute__((import_module("lunatic::process"), import_name("exists")))
int32_t lunatic_process_exists(uint64_t pid);

/* ---------------------------------------------------------------------------------------------
 * lunatic::message (one scratch message per process: built before send, filled by receive)
 * ------------------------------------------------------------------------------------------- */

__attribute__((import_module("lunatic::message"), import_name("create_data")))
void lunatic_message_create_data(int64_t tag, uint64_t capacity);
__attribute__((import_module("lunatic::message"), import_name("write_data")))
uint32_t lunatic_message_write_data(const void *data, uint32_t len);
__attribute__((import_module("lunatic::message"), import_name("read_data")))
uint32_t lunatic_message_read_data(void *buf, uint32_t len);
__attribute__((import_module("lunatic::message"), import_name("seek_data")))
void lunatic_message_seek_data(uint64_t position);
__attribute__((import_module("lunatic::message"), import_name("get_tag")))
int64_t lunatic_message_get_tag(void);
__attribute__((import_module("lunatic::message"), import_name("data_size")))
uint64_t lunatic_message_data_size(void);
/* The sender of a data message; the dead process of LinkDied and ProcessDied. */
__attribute__((import_module("lunatic::message"), import_name("get_process_id")))
uint64_t lunatic_message_get_process_id(void);
__attribute__((import_module("lunatic::message"), import_name("push_module")))
uint64_t lunatic_message_push_module(int64_t module_id);
__attribute__((import_module("lunatic::message"), import_name("take_module")))
int64_t lunatic_message_take_module(uint64_t index);
__attribute__((import_module("lunatic::message"), import_name("push_tcp_stream")))
uint64_t lunatic_message_push_tcp_stream(uint64_t stream_id);
__attribute__((import_module("lunatic::message"), import_name("take_tcp_stream")))
uint64_t lunatic_message_take_tcp_stream(uint64_t index);
__attribute__((import_module("lunatic::message"), import_name("send")))
int32_t lunatic_message_send(uint64_t pid);
/* Send, then wait for a reply tagged wait_tag: 0 reply in scratch, 9027 timeout. Suspends. */
__attribute__((import_module("lunatic::message"), import_name("send_receive_skip_search")))
int32_t lunatic_message_send_receive_skip_search(uint64_t pid, int64_t wait_tag, uint64_t timeout_ms);
/* The oldest message whose tag is in tags (any if tags_count is 0): 0 data, 1 LinkDied,
 * 2 ProcessDied, 9027 timeout. Suspends. */
__attribute__((import_module("lunatic::message"), import_name("receive")))
int32_t lunatic_message_receive(const int64_t *tags, uint32_t tags_count, uint64_t timeout_ms);

/* ---------------------------------------------------------------------------------------------
 * lunatic::timer
 * ------------------------------------------------------------------------------------------- */

/* Send the scratch message to pid after delay_ms; returns a timer id. */
__attribute__((import_module("lunatic::timer"), import_name("send_after")))
uint64_t lunatic_timer_send_after(uint64_t pid, uint64_t delay_ms);
/* 1 cancelled, 0 unknown or already fired. Suspends. */
__attribute__((import_module("lunatic::timer"), import_name("cancel_timer")))
int32_t lunatic_timer_cancel_timer(uint64_t timer_id);

/* ---------------------------------------------------------------------------------------------
 * lunatic::registry: put/get/remove take a name as it is (lunatic 0.13); the _versioned ones
 * parse "name@version" to register and "name@requirement" to look up (lunatic_mp's extension)
 * ------------------------------------------------------------------------------------------- */

__attribute__((import_module("lunatic::registry"), import_name("put")))
void lunatic_registry_put(const char *name, uint32_t name_len, uint64_t node_id, uint64_t pid);
/* 0 found (node and pid written), 1 not found. Suspends. */
__attribute__((import_module("lunatic::registry"), import_name("get")))
int32_t lunatic_registry_get(const char *name, uint32_t name_len, uint64_t *node_id, uint64_t *pid);
__attribute__((import_module("lunatic::registry"), import_name("remove")))
void lunatic_registry_remove(const char *name, uint32_t name_len);
__attribute__((import_module("lunatic::registry"), import_name("put_versioned")))
void lunatic_registry_put_versioned(const char *name, uint32_t name_len, uint64_t node_id, uint64_t pid);
__attribute__((import_module("lunatic::registry"), import_name("get_versioned")))
int32_t lunatic_registry_get_versioned(const char *name, uint32_t name_len, uint64_t *node_id, uint64_t *pid);
__attribute__((import_module("lunatic::registry"), import_name("remove_versioned")))
void lunatic_registry_remove_versioned(const char *name, uint32_t name_len);

/* ---------------------------------------------------------------------------------------------
 * lunatic::error
 * ------------------------------------------------------------------------------------------- */

__attribute__((import_module("lunatic::error"), import_name("string_size")))
uint32_t lunatic_error_string_size(uint64_t error_id);
/* Writes string_size(error_id) bytes, not NUL-terminated. */
__attribute__((import_module("lunatic::error"), import_name("to_string")))
void lunatic_error_to_string(uint64_t error_id, char *buf);
__attribute__((import_module("lunatic::error"), import_name("drop")))
void lunatic_error_drop(uint64_t error_id);

/* ---------------------------------------------------------------------------------------------
 * lunatic::version
 * ------------------------------------------------------------------------------------------- */

__attribute__((import_module("lunatic::version"), import_name("major")))
uint32_t lunatic_version_major(void);
__attribute__((import_module("lunatic::version"), import_name("minor")))
uint32_t lunatic_version_minor(void);
__attribute__((import_module("lunatic::version"), import_name("patch")))
uint32_t lunatic_version_patch(void);

/* ---------------------------------------------------------------------------------------------
 * lunatic::trap
 * ------------------------------------------------------------------------------------------- */

typedef void (*lunatic_catch_fn)(void *arg);

/* Calls the export _lunatic_catch_trap(function, arg) (defined below); returns its result, or 0
 * if it trapped. Suspends. Use lm_catch, which also repairs the stack pointer. */
__attribute__((import_module("lunatic::trap"), import_name("catch")))
int32_t lunatic_trap_catch(lunatic_catch_fn function, void *arg);

/* ---------------------------------------------------------------------------------------------
 * lunatic::wasi (arguments, environment and directories of a config, for its processes)
 * ------------------------------------------------------------------------------------------- */

__attribute__((import_module("lunatic::wasi"), import_name("config_add_environment_variable")))
void lunatic_wasi_config_add_environment_variable(int64_t config_id, const char *key, uint32_t key_len,
                                                  const char *value, uint32_t value_len);
__attribute__((import_module("lunatic::wasi"), import_name("config_add_command_line_argument")))
void lunatic_wasi_config_add_command_line_argument(int64_t config_id, const char *argument, uint32_t len);
__attribute__((import_module("lunatic::wasi"), import_name("config_preopen_dir")))
void lunatic_wasi_config_preopen_dir(int64_t config_id, const char *dir, uint32_t len);

/* ---------------------------------------------------------------------------------------------
 * lunatic::networking (TCP, UDP and DNS; calls the config's rules deny return 1 with an error)
 * ------------------------------------------------------------------------------------------- */

__attribute__((import_module("lunatic::networking"), import_name("resolve")))
int32_t lunatic_networking_resolve(const char *name, uint32_t name_len, uint64_t timeout_ms, uint64_t *id);
/* Writes the address type (u32: 4 or 6), 16 address bytes, the port, flow info and scope id. */
__attribute__((import_module("lunatic::networking"), import_name("resolve_next")))
int32_t lunatic_networking_resolve_next(uint64_t iter, uint32_t *addr_type, uint8_t *addr, uint32_t *port,
                                        uint32_t *flow_info, uint32_t *scope_id);
__attribute__((import_module("lunatic::networking"), import_name("drop_dns_iterator")))
void lunatic_networking_drop_dns_iterator(uint64_t iter);
__attribute__((import_module("lunatic::networking"), import_name("drop_tcp_listener")))
void lunatic_networking_drop_tcp_listener(uint64_t listener);
__attribute__((import_module("lunatic::networking"), import_name("drop_tcp_stream")))
void lunatic_networking_drop_tcp_stream(uint64_t stream);
__attribute__((import_module("lunatic::networking"), import_name("tcp_bind")))
int32_t lunatic_networking_tcp_bind(uint32_t addr_type, const uint8_t *addr, uint32_t port, uint32_t flow_info,
                                    uint32_t scope_id, uint64_t *id);
__attribute__((import_module("lunatic::networking"), import_name("tcp_local_addr")))
int32_t lunatic_networking_tcp_local_addr(uint64_t listener, uint64_t *id);
__attribute__((import_module("lunatic::networking"), import_name("tcp_accept")))
int32_t lunatic_networking_tcp_accept(uint64_t listener, uint64_t *id, uint64_t *peer_iter);
__attribute__((import_module("lunatic::networking"), import_name("tcp_connect")))
int32_t lunatic_networking_tcp_connect(uint32_t addr_type, const uint8_t *addr, uint32_t port,
                                       uint32_t flow_info, uint32_t scope_id, uint64_t timeout_ms,
                                       uint64_t *id);
__attribute__((import_module("lunatic::networking"), import_name("tcp_peer_addr")))
int32_t lunatic_networking_tcp_peer_addr(uint64_t stream, uint64_t *id);
__attribute__((import_module("lunatic::networking"), import_name("clone_tcp_stream")))
uint64_t lunatic_networking_clone_tcp_stream(uint64_t stream);
/* 0 ok (count written to *opaque), 1 error (error id written), 9027 timeout. */
__attribute__((import_module("lunatic::networking"), import_name("tcp_write_vectored")))
int32_t lunatic_networking_tcp_write_vectored(uint64_t stream, const lunatic_iovec_t *iovecs,
                                              uint32_t iovec_count, uint64_t *opaque);
__attribute__((import_module("lunatic::networking"), import_name("tcp_read")))
int32_t lunatic_networking_tcp_read(uint64_t stream, void *buf, uint32_t len, uint64_t *opaque);
__attribute__((import_module("lunatic::networking"), import_name("tcp_peek")))
int32_t lunatic_networking_tcp_peek(uint64_t stream, void *buf, uint32_t len, uint64_t *opaque);
__attribute__((import_module("lunatic::networking"), import_name("tcp_flush")))
int32_t lunatic_networking_tcp_flush(uint64_t stream, uint64_t *error_id);
__attribute__((import_module("lunatic::networking"), import_name("set_read_timeout")))
void lunatic_networking_set_read_timeout(uint64_t stream, uint64_t ms);
__attribute__((import_module("lunatic::networking"), import_name("set_write_timeout")))
void lunatic_networking_set_write_timeout(uint64_t stream, uint64_t ms);
__attribute__((import_module("lunatic::networking"), import_name("set_peek_timeout")))
void lunatic_networking_set_peek_timeout(uint64_t stream, uint64_t ms);
__attribute__((import_module("lunatic::networking"), import_name("get_read_timeout")))
uint64_t lunatic_networking_get_read_timeout(uint64_t stream);
__attribute__((import_module("lunatic::networking"), import_name("get_write_timeout")))
uint64_t lunatic_networking_get_write_timeout(uint64_t stream);
__attribute__((import_module("lunatic::networking"), import_name("get_peek_timeout")))
uint64_t lunatic_networking_get_peek_timeout(uint64_t stream);
__attribute__((import_module("lunatic::networking"), import_name("udp_bind")))
int32_t lunatic_networking_udp_bind(uint32_t addr_type, const uint8_t *addr, uint32_t port, uint32_t flow_info,
                                    uint32_t scope_id, uint64_t *id);
__attribute__((import_module("lunatic::networking"), import_name("udp_local_addr")))
int32_t lunatic_networking_udp_local_addr(uint64_t socket, uint64_t *id);
/* The connected address as a DNS iterator; 1 (error id written) before udp_connect. */
__attribute__((import_module("lunatic::networking"), import_name("udp_peer_addr")))
int32_t lunatic_networking_udp_peer_addr(uint64_t socket, uint64_t *id);
__attribute__((import_module("lunatic::networking"), import_name("drop_udp_socket")))
void lunatic_networking_drop_udp_socket(uint64_t socket);
__attribute__((import_module("lunatic::networking"), import_name("clone_udp_socket")))
uint64_t lunatic_networking_clone_udp_socket(uint64_t socket);
__attribute__((import_module("lunatic::networking"), import_name("udp_connect")))
int32_t lunatic_networking_udp_connect(uint64_t socket, uint32_t addr_type, const uint8_t *addr, uint32_t port,
                                       uint32_t flow_info, uint32_t scope_id, uint64_t timeout_ms,
                                       uint64_t *id);
/* 0 ok (count written to *opaque), 1 error (error id written). */
__attribute__((import_module("lunatic::networking"), import_name("udp_send")))
int32_t lunatic_networking_udp_send(uint64_t socket, const void *buf, uint32_t len, uint64_t *opaque);
__attribute__((import_module("lunatic::networking"), import_name("udp_send_to")))
int32_t lunatic_networking_udp_send_to(uint64_t socket, const void *buf, uint32_t len, uint32_t addr_type,
                                       const uint8_t *addr, uint32_t port, uint32_t flow_info,
                                       uint32_t scope_id, uint64_t *opaque);
__attribute__((import_module("lunatic::networking"), import_name("udp_receive")))
int32_t lunatic_networking_udp_receive(uint64_t socket, void *buf, uint32_t len, uint64_t *opaque);
/* Also writes a DNS iterator with the sender's address to *peer_iter. */
__attribute__((import_module("lunatic::networking"), import_name("udp_receive_from")))
int32_t lunatic_networking_udp_receive_from(uint64_t socket, void *buf, uint32_t len, uint64_t *opaque,
                                            uint64_t *peer_iter);
__attribute__((import_module("lunatic::networking"), import_name("set_udp_socket_broadcast")))
void lunatic_networking_set_udp_socket_broadcast(uint64_t socket, uint32_t flag);
__attribute__((import_module("lunatic::networking"), import_name("get_udp_socket_broadcast")))
int32_t lunatic_networking_get_udp_socket_broadcast(uint64_t socket);
__attribute__((import_module("lunatic::networking"), import_name("set_udp_socket_ttl")))
void lunatic_networking_set_udp_socket_ttl(uint64_t socket, uint32_t ttl);
__attribute__((import_module("lunatic::networking"), import_name("get_udp_socket_ttl")))
int32_t lunatic_networking_get_udp_socket_ttl(uint64_t socket);

/* ---------------------------------------------------------------------------------------------
 * lunatic::distributed (lunatic 0.13's signatures). One runtime is one node: node_id() and
 * nodes_count() are 0, get_nodes copies nothing, and the calls that need another node (spawn,
 * send, send_receive_skip_search, the lookups) and the certificate helpers trap.
 * ------------------------------------------------------------------------------------------- */

__attribute__((import_module("lunatic::distributed"), import_name("nodes_count")))
uint32_t lunatic_distributed_nodes_count(void);
__attribute__((import_module("lunatic::distributed"), import_name("get_nodes")))
uint32_t lunatic_distributed_get_nodes(uint64_t *nodes, uint32_t nodes_len);
__attribute__((import_module("lunatic::distributed"), import_name("node_id")))
uint64_t lunatic_distributed_node_id(void);
__attribute__((import_module("lunatic::distributed"), import_name("module_id")))
uint64_t lunatic_distributed_module_id(void);
__attribute__((import_module("lunatic::distributed"), import_name("spawn")))
int32_t lunatic_distributed_spawn(uint64_t node_id, int64_t config_id, uint64_t module_id, const char *function,
                                  uint32_t function_len, const uint8_t *params, uint32_t params_len, uint64_t *id);
__attribute__((import_module("lunatic::distributed"), import_name("send")))
int32_t lunatic_distributed_send(uint64_t node_id, uint64_t pid);
__attribute__((import_module("lunatic::distributed"), import_name("send_receive_skip_search")))
int32_t lunatic_distributed_send_receive_skip_search(uint64_t node_id, uint64_t pid, int64_t wait_tag,
                                                     uint64_t timeout_ms);
__attribute__((import_module("lunatic::distributed"), import_name("exec_lookup_nodes")))
int32_t lunatic_distributed_exec_lookup_nodes(const char *query, uint32_t query_len, uint64_t *query_id,
                                              uint64_t *nodes_len, uint64_t *error_id);
__attribute__((import_module("lunatic::distributed"), import_name("copy_lookup_nodes_results")))
int32_t lunatic_distributed_copy_lookup_nodes_results(uint64_t query_id, uint64_t *nodes, uint32_t nodes_len,
                                                      uint64_t *error_id);
__attribute__((import_module("lunatic::distributed"), import_name("test_root_cert")))
uint32_t lunatic_distributed_test_root_cert(uint32_t *len);
__attribute__((import_module("lunatic::distributed"), import_name("default_server_certificates")))
uint32_t lunatic_distributed_default_server_certificates(const char *cert_pem, uint32_t cert_pem_len,
                                                         const char *pk_pem, uint32_t pk_pem_len, uint32_t *len);
__attribute__((import_module("lunatic::distributed"), import_name("sign_node")))
uint32_t lunatic_distributed_sign_node(const char *cert_pem, uint32_t cert_pem_len, const char *pk_pem,
                                       uint32_t pk_pem_len, const char *csr_pem, uint32_t csr_pem_len,
                                       uint32_t *len);

/* ---------------------------------------------------------------------------------------------
 * lunatic::metrics
 * ------------------------------------------------------------------------------------------- */

__attribute__((import_module("lunatic::metrics"), import_name("counter")))
void lunatic_metrics_counter(const char *name, uint32_t name_len, uint64_t value);
__attribute__((import_module("lunatic::metrics"), import_name("increment_counter")))
void lunatic_metrics_increment_counter(const char *name, uint32_t name_len);
__attribute__((import_module("lunatic::metrics"), import_name("gauge")))
void lunatic_metrics_gauge(const char *name, uint32_t name_len, double value);
__attribute__((import_module("lunatic::metrics"), import_name("increment_gauge")))
void lunatic_metrics_increment_gauge(const char *name, uint32_t name_len, double value);
__attribute__((import_module("lunatic::metrics"), import_name("decrement_gauge")))
void lunatic_metrics_decrement_gauge(const char *name, uint32_t name_len, double value);
__attribute__((import_module("lunatic::metrics"), import_name("histogram")))
void lunatic_metrics_histogram(const char *name, uint32_t name_len, double value);

/* =============================================================================================
 * The helper layer
 * =========================================================================================== */

#define LM_OK LUNATIC_OK
#define LM_ERROR LUNATIC_ERROR
#define LM_TIMEOUT LUNATIC_TIMEOUT
#define LM_FOREVER LUNATIC_NO_TIMEOUT
#define LM_ALREADY_REGISTERED LUNATIC_ALREADY_REGISTERED
#define LM_DATA LUNATIC_DATA_MESSAGE
#define LM_LINK_DIED LUNATIC_LINK_DIED
#define LM_PROCESS_DIED LUNATIC_PROCESS_DIED

#ifndef LM_MAX_PARAMS
#define LM_MAX_PARAMS 8
#endif
#ifndef LM_ERROR_CAPACITY
#define LM_ERROR_CAPACITY 256
#endif

/* -- errors as strings ---------------------------------------------------------------------- */

/* The message of the last helper that failed with LM_ERROR (a weak definition: one buffer per
 * program, however many files include this header). */
__attribute__((weak)) char lm_last_error_text[LM_ERROR_CAPACITY];

static inline const char *lm_last_error(void) { return lm_last_error_text; }

/* Copy the message of error_id into buf (truncated, NUL-terminated) and drop the error; returns
 * the message's full length. */
static inline uint32_t lm_error_message(uint64_t error_id, char *buf, uint32_t capacity) {
    uint32_t size = lunatic_error_string_size(error_id);
    if (size < capacity) {
        lunatic_error_to_string(error_id, buf);
        buf[size] = '\0';
    } else if (capacity > 0) { /* too long: the host writes it whole, so into a copy */
        char *text = (char *)malloc(size);
        uint32_t n = text ? capacity - 1 : 0;
        if (text) {
            lunatic_error_to_string(error_id, text);
            memcpy(buf, text, n);
            free(text);
        }
        buf[n] = '\0';
    }
    lunatic_error_drop(error_id);
    return size;
}

/* Record error_id as the last error (see lm_last_error); returns LM_ERROR. */
static inline int32_t lm__fail(uint64_t error_id) {
    lm_error_message(error_id, lm_last_error_text, LM_ERROR_CAPACITY);
    return LM_ERROR;
}

/* -- this process --------------------------------------------------------------------------- */

static inline uint64_t lm_self(void) { return lunatic_process_process_id(); }
static inline void lm_sleep(uint64_t ms) { lunatic_process_sleep_ms(ms); }
/* flag 0: a failing linked process arrives as an LM_LINK_DIED message instead of killing this
 * one (Erlang's trap_exit). */
static inline void lm_die_when_link_dies(int flag) { lunatic_process_die_when_link_dies(flag ? 1 : 0); }

/* -- messages ------------------------------------------------------------------------------- */

/* What a receive took: its kind (LM_DATA, LM_LINK_DIED, LM_PROCESS_DIED), tag, the sender (or
 * the dead process of a notice) and the size of its data. */
typedef struct {
    int32_t kind;
    int64_t tag;
    uint64_t pid;
    uint64_t size;
} lm_message;

/* Send len bytes of data to pid with tag (0: none). */
static inline void lm_send(uint64_t pid, int64_t tag, const void *data, uint32_t len) {
    lunatic_message_create_data(tag, len);
    if (len) lunatic_message_write_data(data, len);
    lunatic_message_send(pid);
}

static inline void lm__describe(lm_message *msg, int32_t kind) {
    msg->kind = kind;
    msg->tag = lunatic_message_get_tag();
    msg->pid = lunatic_message_get_process_id();
    msg->size = lunatic_message_data_size();
}

/* Wait up to timeout_ms (LM_FOREVER: no limit) for the oldest message whose tag is one of
 * tags[0..ntags) (any message when ntags is 0). Returns its kind, or LM_TIMEOUT. Its data
 * stays in the scratch message: read it with lm_read. */
static inline int32_t lm_receive(lm_message *msg, const int64_t *tags, uint32_t ntags, uint64_t timeout_ms) {
    int32_t kind = lunatic_message_receive(tags, ntags, timeout_ms);
    if (kind != LM_TIMEOUT) lm__describe(msg, kind);
    return kind;
}

/* Like lm_receive, for one tag. */
static inline int32_t lm_receive_tag(lm_message *msg, int64_t tag, uint64_t timeout_ms) {
    return lm_receive(msg, &tag, 1, timeout_ms);
}

/* Read up to capacity bytes of the received message's data (from the read cursor). */
static inline uint32_t lm_read(void *buf, uint32_t capacity) { return lunatic_message_read_data(buf, capacity); }

/* Receive, then read the data into buf: returns the kind or LM_TIMEOUT; msg->size says how
 * much there was (more than capacity: the rest is still readable with lm_read). */
static inline int32_t lm_receive_into(lm_message *msg, void *buf, uint32_t capacity, const int64_t *tags,
                                      uint32_t ntags, uint64_t timeout_ms) {
    int32_t kind = lm_receive(msg, tags, ntags, timeout_ms);
    if (kind == LM_DATA && capacity) lm_read(buf, capacity);
    return kind;
}

/* -- request / reply ------------------------------------------------------------------------ */

/* The last tag lm_unique_tag gave (weak: one counter per program). */
__attribute__((weak)) uint64_t lm_last_unique_tag;

/* A fresh request tag: unique within this process, in a range of its own (the two high bits
 * set, so it never collides with small application tags). */
static inline int64_t lm_unique_tag(void) { return (int64_t)(0xC000000000000000ULL | ++lm_last_unique_tag); }

/* Send request bytes to pid with a fresh tag and wait for the reply with that tag (the server
 * answers with lm_reply). Returns LM_OK (reply described in *reply, its data read into
 * reply_buf) or LM_TIMEOUT. */
static inline int32_t lm_request(uint64_t pid, const void *data, uint32_t len, lm_message *reply,
                                 void *reply_buf, uint32_t reply_capacity, uint64_t timeout_ms) {
    int64_t tag = lm_unique_tag();
    lunatic_message_create_data(tag, len);
    if (len) lunatic_message_write_data(data, len);
    int32_t result = lunatic_message_send_receive_skip_search(pid, tag, timeout_ms);
    if (result != LM_OK) return result;
    lm__describe(reply, LM_DATA);
    if (reply_capacity) lm_read(reply_buf, reply_capacity);
    return LM_OK;
}

/* Answer a request: send data back to its sender with its tag. */
static inline void lm_reply(const lm_message *request, const void *data, uint32_t len) {
    lm_send(request->pid, request->tag, data, len);
}

/* -- spawning ------------------------------------------------------------------------------- */

/* The parameters of a spawned export, in the order of its Wasm signature. */
typedef struct {
    uint8_t bytes[LUNATIC_PARAM_SIZE * LM_MAX_PARAMS];
    uint32_t len;
} lm_params;

static inline void lm__param(lm_params *params, uint8_t type, uint64_t low, uint64_t high) {
    if (params->len + LUNATIC_PARAM_SIZE > sizeof params->bytes) __builtin_trap(); /* raise LM_MAX_PARAMS */
    uint8_t *record = params->bytes + params->len;
    record[0] = type;
    for (int i = 0; i < 8; i++) {
        record[1 + i] = (uint8_t)(low >> (8 * i));
        record[9 + i] = (uint8_t)(high >> (8 * i));
    }
    params->len += LUNATIC_PARAM_SIZE;
}

/* Append an i32 (int32_t / uint32_t / pointer-sized) parameter. */
static inline lm_params *lm_param_i32(lm_params *params, int32_t value) {
    lm__param(params, LUNATIC_PARAM_I32, (uint32_t)value, 0);
    return params;
}
/* Append an i64 (int64_t / uint64_t, a pid) parameter. */
static inline lm_params *lm_param_i64(lm_params *params, int64_t value) {
    lm__param(params, LUNATIC_PARAM_I64, (uint64_t)value, 0);
    return params;
}
/* Append a v128 parameter: low and high 64-bit halves. */
static inline lm_params *lm_param_v128(lm_params *params, uint64_t low, uint64_t high) {
    lm__param(params, LUNATIC_PARAM_V128, low, high);
    return params;
}

/* Spawn the export `function` of module_id (LUNATIC_SELF: this module) in config_id
 * (LUNATIC_SELF: a copy of this process's), with params (NULL: none). link_tag != 0 links the
 * child with that tag. Returns LM_OK with the child in *pid, or LM_ERROR (lm_last_error()). */
static inline int32_t lm_spawn_ex(int64_t link_tag, int64_t config_id, int64_t module_id, const char *function,
                                  const lm_params *params, uint64_t *pid) {
    uint64_t id = 0;
    int32_t result = lunatic_process_spawn(link_tag, config_id, module_id, function, (uint32_t)strlen(function),
                                           params ? params->bytes : 0, params ? params->len : 0, &id);
    if (result != LM_OK) return lm__fail(id);
    *pid = id;
    return LM_OK;
}

/* Spawn an export of this module with this process's config. */
static inline int32_t lm_spawn(const char *function, const lm_params *params, uint64_t *pid) {
    return lm_spawn_ex(0, LUNATIC_SELF, LUNATIC_SELF, function, params, pid);
}

/* Spawn an export of this module, linked with link_tag (non-zero). */
static inline int32_t lm_spawn_link(int64_t link_tag, const char *function, const lm_params *params,
                                    uint64_t *pid) {
    return lm_spawn_ex(link_tag, LUNATIC_SELF, LUNATIC_SELF, function, params, pid);
}

/* -- links, monitors, kills ----------------------------------------------------------------- */

static inline void lm_link(int64_t tag, uint64_t pid) { lunatic_process_link(tag, pid); }
static inline void lm_unlink(uint64_t pid) { lunatic_process_unlink(pid); }
static inline void lm_monitor(uint64_t pid) { lunatic_process_monitor(pid); }
static inline void lm_stop_monitoring(uint64_t pid) { lunatic_process_stop_monitoring(pid); }
static inline void lm_kill(uint64_t pid) { lunatic_process_kill(pid); }
static inline int lm_exists(uint64_t pid) { return lunatic_process_exists(pid) != 0; }

/* -- registry (names with versions) --------------------------------------------------------- */

/* Run body with var (not NUL-terminated, var_len bytes) holding "name", or "name@suffix" when
 * suffix is neither NULL nor empty. */
#define LM__WITH_NAME(var, var_len, name, suffix, body)                                   \
    do {                                                                                  \
        uint32_t lm__n = (uint32_t)strlen(name);                                          \
        uint32_t lm__s = (suffix) && *(suffix) ? (uint32_t)strlen(suffix) : 0;            \
        char var[lm__n + 1 + lm__s + 1];                                                  \
        memcpy(var, (name), lm__n);                                                       \
        uint32_t var_len = lm__n;                                                         \
        if (lm__s) {                                                                      \
            var[lm__n] = '@';                                                             \
            memcpy(var + lm__n + 1, (suffix), lm__s);                                     \
            var_len += 1 + lm__s;                                                         \
        }                                                                                 \
        body;                                                                             \
    } while (0)

/* Register pid as `name` version `version` ("1.2.0"; NULL: unversioned). Overwrites that exact
 * entry. The name is removed when pid dies. An invalid version traps. */
static inline void lm_register(const char *name, const char *version, uint64_t pid) {
    LM__WITH_NAME(full, len, name, version, lunatic_registry_put_versioned(full, len, 0, pid));
}

/* Look up the newest `name` matching requirement ("^1.1", ">=2, <3"; NULL: the newest of
 * all). Returns 1 with the pid in *pid, or 0 if none matches. */
static inline int lm_lookup(const char *name, const char *requirement, uint64_t *pid) {
    uint64_t node = 0, found = 0;
    int32_t result = 1;
    LM__WITH_NAME(full, len, name, requirement,
                  result = lunatic_registry_get_versioned(full, len, &node, &found));
    if (result != LM_OK) return 0;
    *pid = found;
    return 1;
}

/* Remove `name` version `version` (NULL: every entry of the name). */
static inline void lm_unregister(const char *name, const char *version) {
    LM__WITH_NAME(full, len, name, version, lunatic_registry_remove_versioned(full, len));
}

/* Atomically look `name` up, or spawn `function` and register it under that name (taken as it is,
 * as lunatic's registry functions take it: "kv@1.0.0" is a name, not a version). Returns LM_OK (spawned), LM_ALREADY_REGISTERED (*pid is the existing one) or
 * LM_ERROR (lm_last_error()). */
static inline int32_t lm_get_or_spawn(const char *name, int64_t link_tag, const char *function,
                                      const lm_params *params, uint64_t *pid) {
    uint64_t node = 0, id = 0;
    int32_t result = lunatic_process_get_or_spawn(
        name, (uint32_t)strlen(name), link_tag, LUNATIC_SELF, LUNATIC_SELF, function, (uint32_t)strlen(function),
        params ? params->bytes : 0, params ? params->len : 0, &node, &id);
    if (result == LM_ERROR) return lm__fail(id);
    *pid = id;
    return result;
}

/* -- timers --------------------------------------------------------------------------------- */

/* Send data with tag to pid after delay_ms; returns the timer's id. */
static inline uint64_t lm_send_after(uint64_t pid, int64_t tag, const void *data, uint32_t len,
                                     uint64_t delay_ms) {
    lunatic_message_create_data(tag, len);
    if (len) lunatic_message_write_data(data, len);
    return lunatic_timer_send_after(pid, delay_ms);
}

/* 1 if the timer was cancelled before it fired, 0 if it had fired (or was unknown). */
static inline int lm_cancel_timer(uint64_t timer_id) { return lunatic_timer_cancel_timer(timer_id) != 0; }

/* -- traps ---------------------------------------------------------------------------------- */

#ifndef LUNATIC_NO_CATCH_EXPORT
/* The export lunatic::trap::catch calls. Weak: one per program. */
__attribute__((weak, export_name("_lunatic_catch_trap"))) int32_t lm__catch_trap(lunatic_catch_fn function,
                                                                                  void *arg) {
    function(arg);
    return 1;
}
#endif

__asm__(".globaltype __stack_pointer, i32");

static inline uint32_t lm__stack_pointer(void) {
    uint32_t sp;
    __asm__ volatile("global.get __stack_pointer\n\tlocal.set %0" : "=r"(sp));
    return sp;
}

static inline void lm__set_stack_pointer(uint32_t sp) {
    __asm__ volatile("local.get %0\n\tglobal.set __stack_pointer" : : "r"(sp));
}

/* Run function(arg); a trap inside it (out-of-bounds access, __builtin_trap, unreachable...)
 * returns 0 instead of killing the process, 1 means it returned. The C stack pointer, which a
 * trap leaves where the trapped frame had moved it, is put back. State the function was changing
 * (malloc's, for one) may be left half-updated: keep trapping code simple. */
static inline int lm_catch(lunatic_catch_fn function, void *arg) {
    uint32_t sp = lm__stack_pointer();
    int32_t returned = lunatic_trap_catch(function, arg);
    if (!returned) lm__set_stack_pointer(sp);
    return returned != 0;
}

/* -- metrics -------------------------------------------------------------------------------- */

static inline void lm_counter(const char *name, uint64_t value) {
    lunatic_metrics_counter(name, (uint32_t)strlen(name), value);
}
static inline void lm_increment_counter(const char *name) {
    lunatic_metrics_increment_counter(name, (uint32_t)strlen(name));
}
static inline void lm_gauge(const char *name, double value) {
    lunatic_metrics_gauge(name, (uint32_t)strlen(name), value);
}
static inline void lm_histogram(const char *name, double value) {
    lunatic_metrics_histogram(name, (uint32_t)strlen(name), value);
}

/* -- HTTP routes of lunatic-mp serve (docs/serve.md, "HTTP routes") ------------------------- */

/* A request as a route's handler receives it: one data message of u32 length-prefixed fields,
 * little-endian (method, path, query, headers, body). The pointers point into data, which
 * lm_http_receive allocates and lm_http_free frees; texts are not NUL-terminated. Header names
 * are lower-case. */
typedef struct {
    const char *method;
    uint32_t method_len;
    const char *path; /* as sent: percent-encoded, no query */
    uint32_t path_len;
    const char *query; /* as sent, without the "?" */
    uint32_t query_len;
    uint32_t header_count;
    const uint8_t *headers; /* header_count times: u32 length, name, u32 length, value */
    const uint8_t *body;
    uint32_t body_len;
    lm_message msg; /* the request message: the reply goes to msg.pid with msg.tag */
    uint8_t *data;
} lm_http_request;

static inline uint32_t lm__u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Take one length-prefixed field at *at (before end) into *field and *len; 0 if it runs over. */
static inline int lm__http_field(const uint8_t **at, const uint8_t *end, const uint8_t **field, uint32_t *len) {
    if (end - *at < 4) return 0;
    *len = lm__u32(*at);
    if ((uint32_t)(end - *at - 4) < *len) return 0;
    *field = *at + 4;
    *at += 4 + *len;
    return 1;
}

/* Wait up to timeout_ms (LM_FOREVER: no limit) for a request and parse it into *req. Returns
 * LM_OK, LM_TIMEOUT, or LM_ERROR: a message that is no request (req->msg says what it was;
 * nothing to free). */
static inline int32_t lm_http_receive(lm_http_request *req, uint64_t timeout_ms) {
    memset(req, 0, sizeof *req);
    int32_t kind = lm_receive(&req->msg, 0, 0, timeout_ms);
    if (kind == LM_TIMEOUT) return LM_TIMEOUT;
    if (kind != LM_DATA || req->msg.size > UINT32_MAX) return LM_ERROR;
    uint32_t size = (uint32_t)req->msg.size;
    req->data = (uint8_t *)malloc(size ? size : 1);
    if (!req->data) __builtin_trap();
    lm_read(req->data, size);
    const uint8_t *at = req->data, *end = req->data + size, *field;
    if (!lm__http_field(&at, end, &field, &req->method_len)) goto bad;
    req->method = (const char *)field;
    if (!lm__http_field(&at, end, &field, &req->path_len)) goto bad;
    req->path = (const char *)field;
    if (!lm__http_field(&at, end, &field, &req->query_len)) goto bad;
    req->query = (const char *)field;
    if (end - at < 4) goto bad;
    req->header_count = lm__u32(at);
    at += 4;
    req->headers = at;
    for (uint32_t i = 0; i < 2 * req->header_count; i++) {
        uint32_t len;
        if (!lm__http_field(&at, end, &field, &len)) goto bad;
    }
    if (!lm__http_field(&at, end, &req->body, &req->body_len) || at != end) goto bad;
    return LM_OK;
bad:
    free(req->data);
    req->data = 0;
    return LM_ERROR;
}

/* The value of the header named name (lower-case), or NULL; its length in *len. */
static inline const char *lm_http_header(const lm_http_request *req, const char *name, uint32_t *len) {
    uint32_t name_len = (uint32_t)strlen(name);
    const uint8_t *at = req->headers;
    for (uint32_t i = 0; i < req->header_count; i++) {
        uint32_t n = lm__u32(at), v = lm__u32(at + 4 + n);
        if (n == name_len && memcmp(at + 4, name, n) == 0) {
            *len = v;
            return (const char *)(at + 8 + n);
        }
        at += 8 + n + v;
    }
    return 0;
}

static inline void lm_http_free(lm_http_request *req) {
    free(req->data);
    req->data = 0;
}

static inline uint8_t *lm__put_u32(uint8_t *at, uint32_t value) {
    memcpy(at, &value, 4); /* wasm32 is little-endian, as the layout */
    return at + 4;
}

/* Answer a request: status, headers as NUL-terminated name and value strings in turn
 * (header_count pairs, so 2 * header_count strings; NULL when none), and the body. The reply is
 * laid out in one buffer and written with one host call (each call costs more than copying). */
static inline void lm_http_reply(const lm_http_request *req, uint32_t status, const char *const *headers,
                                 uint32_t header_count, const void *body, uint32_t body_len) {
    uint64_t size = 8 + (uint64_t)body_len;
    for (uint32_t i = 0; i < 2 * header_count; i++) size += 4 + strlen(headers[i]);
    if (size > UINT32_MAX) __builtin_trap();
    uint8_t *reply = (uint8_t *)malloc((size_t)size), *at = reply;
    if (!reply) __builtin_trap();
    at = lm__put_u32(at, status);
    at = lm__put_u32(at, header_count);
    for (uint32_t i = 0; i < 2 * header_count; i++) {
        uint32_t len = (uint32_t)strlen(headers[i]);
        at = lm__put_u32(at, len);
        memcpy(at, headers[i], len);
        at += len;
    }
    if (body_len) memcpy(at, body, body_len);
    lm_send(req->msg.pid, req->msg.tag, reply, (uint32_t)size);
    free(reply);
}

/* -- TCP (lunatic::networking) -------------------------------------------------------------- */

/* Listeners and streams are ids of this process: they close when dropped or when it dies. */

/* Record text as the last error; returns LM_ERROR. */
static inline int32_t lm__fail_text(const char *text) {
    size_t n = strlen(text);
    if (n >= LM_ERROR_CAPACITY) n = LM_ERROR_CAPACITY - 1;
    memcpy(lm_last_error_text, text, n);
    lm_last_error_text[n] = '\0';
    return LM_ERROR;
}

/* Parse a dotted-quad IPv4 address ("127.0.0.1") into its four bytes; 0 if it is not one. */
static inline int lm__parse_ipv4(const char *text, uint8_t addr[4]) {
    for (int i = 0; i < 4; i++) {
        unsigned value = 0, digits = 0;
        while (*text >= '0' && *text <= '9' && digits < 4) {
            value = value * 10 + (unsigned)(*text++ - '0');
            digits++;
        }
        if (digits == 0 || digits > 3 || value > 255 || *text != (i < 3 ? '.' : '\0')) return 0;
        addr[i] = (uint8_t)value;
        if (i < 3) text++;
    }
    return 1;
}

/* Listen on an IPv4 address ("127.0.0.1", "0.0.0.0") and port (0: any free one). Returns LM_OK
 * with the listener in *listener, or LM_ERROR: not an address, not permitted, in use... */
static inline int32_t lm_tcp_bind(const char *ipv4, uint16_t port, uint64_t *listener) {
    uint8_t addr[16] = {0};
    if (!lm__parse_ipv4(ipv4, addr)) return lm__fail_text("not an IPv4 address");
    uint64_t id = 0;
    if (lunatic_networking_tcp_bind(LUNATIC_ADDR_V4, addr, port, 0, 0, &id) != LM_OK) return lm__fail(id);
    *listener = id;
    return LM_OK;
}

/* The port a listener is bound to (what port 0 turned into). LM_OK or LM_ERROR. */
static inline int32_t lm_tcp_local_port(uint64_t listener, uint16_t *port) {
    uint64_t iter = 0;
    if (lunatic_networking_tcp_local_addr(listener, &iter) != LM_OK) return lm__fail(iter);
    uint32_t type = 0, number = 0, flow = 0, scope = 0;
    uint8_t addr[16];
    int32_t more = lunatic_networking_resolve_next(iter, &type, addr, &number, &flow, &scope);
    lunatic_networking_drop_dns_iterator(iter);
    if (more != LM_OK) return lm__fail_text("the listener has no address");
    *port = (uint16_t)number;
    return LM_OK;
}

/* Wait for the next connection (suspends only this process). LM_OK with the stream in *stream,
 * or LM_ERROR. */
static inline int32_t lm_tcp_accept(uint64_t listener, uint64_t *stream) {
    uint64_t id = 0, peer = 0;
    if (lunatic_networking_tcp_accept(listener, &id, &peer) != LM_OK) return lm__fail(id);
    lunatic_networking_drop_dns_iterator(peer);
    *stream = id;
    return LM_OK;
}

/* Read up to capacity bytes: LM_OK with the count in *n (0: the peer closed its side),
 * LM_ERROR, or LM_TIMEOUT (the stream's read timeout passed; none by default). */
static inline int32_t lm_tcp_read(uint64_t stream, void *buf, uint32_t capacity, uint32_t *n) {
    uint64_t opaque = 0;
    int32_t result = lunatic_networking_tcp_read(stream, buf, capacity, &opaque);
    if (result == LM_ERROR) return lm__fail(opaque);
    if (result != LM_OK) return result;
    *n = (uint32_t)opaque;
    return LM_OK;
}

/* Write all len bytes, however many calls that takes: LM_OK, LM_ERROR (the peer went away...),
 * or LM_TIMEOUT (the stream's write timeout passed; part may have been written). */
static inline int32_t lm_tcp_write_all(uint64_t stream, const void *data, uint32_t len) {
    const uint8_t *at = (const uint8_t *)data;
    while (len) {
        lunatic_iovec_t iovec = {at, len};
        uint64_t opaque = 0;
        int32_t result = lunatic_networking_tcp_write_vectored(stream, &iovec, 1, &opaque);
        if (result == LM_ERROR) return lm__fail(opaque);
        if (result != LM_OK) return result;
        if (opaque == 0 || opaque > len) return lm__fail_text("the stream took no bytes");
        at += opaque;
        len -= (uint32_t)opaque;
    }
    return LM_OK;
}

/* Timeouts of a stream's reads and writes (LM_FOREVER: none, the default). */
static inline void lm_tcp_set_timeouts(uint64_t stream, uint64_t read_ms, uint64_t write_ms) {
    lunatic_networking_set_read_timeout(stream, read_ms);
    lunatic_networking_set_write_timeout(stream, write_ms);
}

static inline void lm_tcp_drop(uint64_t stream) { lunatic_networking_drop_tcp_stream(stream); }
static inline void lm_tcp_drop_listener(uint64_t listener) { lunatic_networking_drop_tcp_listener(listener); }

/* Send a stream to pid in a message with tag and data: the stream leaves this process (its id
 * is no longer valid here), and goes to another worker's process too, with its timeouts. */
static inline void lm_send_stream(uint64_t pid, int64_t tag, uint64_t stream, const void *data, uint32_t len) {
    lunatic_message_create_data(tag, len);
    lunatic_message_push_tcp_stream(stream);
    if (len) lunatic_message_write_data(data, len);
    lunatic_message_send(pid);
}

/* The stream of the message just received (from lm_send_stream), now this process's. A message
 * without one traps. */
static inline uint64_t lm_take_stream(void) { return lunatic_message_take_tcp_stream(0); }

/* -- lunatic_mp specifics ------------------------------------------------------------------- */

/* The worker a pid lives on: lunatic_mp pids are (node << 48) | (worker << 32) | local. Other
 * lunatic runtimes number processes differently. */
static inline uint32_t lm_worker_of(uint64_t pid) { return (uint32_t)((pid >> 32) & 0xFFFF); }

#ifdef __cplusplus
}
#endif

#endif /* LUNATIC_H */
