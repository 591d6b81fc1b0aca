;; abi_all_imports.wat: imports every host function of ABI.md (all namespaces but networking;
;; lunatic::message's push_tcp_stream/take_tcp_stream belong to networking too) with exactly the
;; types of its table row. If it links, the host's import table matches the contract.
;; The only export besides `memory` is `answer`, which returns 42 without calling anything.
(module
  ;; --- lunatic::process
  (import "lunatic::process" "compile_module" (func (param i32 i32 i32) (result i32)))
  (import "lunatic::process" "drop_module" (func (param i64)))
  (import "lunatic::process" "create_config" (func (result i64)))
  (import "lunatic::process" "drop_config" (func (param i64)))
  (import "lunatic::process" "config_set_max_memory" (func (param i64 i64)))
  (import "lunatic::process" "config_get_max_memory" (func (param i64) (result i64)))
  (import "lunatic::process" "config_set_max_fuel" (func (param i64 i64)))
  (import "lunatic::process" "config_get_max_fuel" (func (param i64) (result i64)))
  (import "lunatic::process" "config_set_can_compile_modules" (func (param i64 i32)))
  (import "lunatic::process" "config_can_compile_modules" (func (param i64) (result i32)))
  (import "lunatic::process" "config_set_can_create_configs" (func (param i64 i32)))
  (import "lunatic::process" "config_can_create_configs" (func (param i64) (result i32)))
  (import "lunatic::process" "config_set_can_spawn_processes" (func (param i64 i32)))
  (import "lunatic::process" "config_can_spawn_processes" (func (param i64) (result i32)))
  (import "lunatic::process" "spawn"
    (func (param i64 i64 i64 i32 i32 i32 i32 i32) (result i32)))
  (import "lunatic::process" "get_or_spawn"
    (func (param i32 i32 i64 i64 i64 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "lunatic::process" "sleep_ms" (func (param i64)))
  (import "lunatic::process" "die_when_link_dies" (func (param i32)))
  (import "lunatic::process" "process_id" (func (result i64)))
  (import "lunatic::process" "environment_id" (func (result i64)))
  (import "lunatic::process" "link" (func (param i64 i64)))
  (import "lunatic::process" "unlink" (func (param i64)))
  (import "lunatic::process" "monitor" (func (param i64)))
  (import "lunatic::process" "stop_monitoring" (func (param i64)))
  (import "lunatic::process" "kill" (func (param i64)))
  (import "lunatic::process" "exists" (func (param i64) (result i32)))

  ;; --- lunatic::message
  (import "lunatic::message" "create_data" (func (param i64 i64)))
  (import "lunatic::message" "write_data" (func (param i32 i32) (result i32)))
  (import "lunatic::message" "read_data" (func (param i32 i32) (result i32)))
  (import "lunatic::message" "seek_data" (func (param i64)))
  (import "lunatic::message" "get_tag" (func (result i64)))
  (import "lunatic::message" "data_size" (func (result i64)))
  (import "lunatic::message" "get_process_id" (func (result i64)))
  (import "lunatic::message" "push_module" (func (param i64) (result i64)))
  (import "lunatic::message" "take_module" (func (param i64) (result i64)))
  (import "lunatic::message" "send" (func (param i64) (result i32)))
  (import "lunatic::message" "send_receive_skip_search" (func (param i64 i64 i64) (result i32)))
  (import "lunatic::message" "receive" (func (param i32 i32 i64) (result i32)))

  ;; --- lunatic::timer
  (import "lunatic::timer" "send_after" (func (param i64 i64) (result i64)))
  (import "lunatic::timer" "cancel_timer" (func (param i64) (result i32)))

  ;; --- lunatic::registry
  (import "lunatic::registry" "put" (func (param i32 i32 i64 i64)))
  (import "lunatic::registry" "get" (func (param i32 i32 i32 i32) (result i32)))
  (import "lunatic::registry" "remove" (func (param i32 i32)))

  ;; --- lunatic::error
  (import "lunatic::error" "string_size" (func (param i64) (result i32)))
  (import "lunatic::error" "to_string" (func (param i64 i32)))
  (import "lunatic::error" "drop" (func (param i64)))

  ;; --- lunatic::version
  (import "lunatic::version" "major" (func (result i32)))
  (import "lunatic::version" "minor" (func (result i32)))
  (import "lunatic::version" "patch" (func (result i32)))

  ;; --- lunatic::trap
  (import "lunatic::trap" "catch" (func (param i32 i32) (result i32)))

  ;; --- lunatic::wasi
  (import "lunatic::wasi" "config_add_environment_variable" (func (param i64 i32 i32 i32 i32)))
  (import "lunatic::wasi" "config_add_command_line_argument" (func (param i64 i32 i32)))
  (import "lunatic::wasi" "config_preopen_dir" (func (param i64 i32 i32)))

  ;; --- lunatic::metrics
  (import "lunatic::metrics" "counter" (func (param i32 i32 i64)))
  (import "lunatic::metrics" "increment_counter" (func (param i32 i32)))
  (import "lunatic::metrics" "gauge" (func (param i32 i32 f64)))
  (import "lunatic::metrics" "increment_gauge" (func (param i32 i32 f64)))
  (import "lunatic::metrics" "decrement_gauge" (func (param i32 i32 f64)))
  (import "lunatic::metrics" "histogram" (func (param i32 i32 f64)))

  ;; --- lunatic::distributed (lunatic 0.13, crates/lunatic-distributed-api)
  (import "lunatic::distributed" "nodes_count" (func (result i32)))
  (import "lunatic::distributed" "get_nodes" (func (param i32 i32) (result i32)))
  (import "lunatic::distributed" "node_id" (func (result i64)))
  (import "lunatic::distributed" "module_id" (func (result i64)))
  (import "lunatic::distributed" "spawn" (func (param i64 i64 i64 i32 i32 i32 i32 i32) (result i32)))
  (import "lunatic::distributed" "send" (func (param i64 i64) (result i32)))
  (import "lunatic::distributed" "send_receive_skip_search" (func (param i64 i64 i64 i64) (result i32)))
  (import "lunatic::distributed" "exec_lookup_nodes" (func (param i32 i32 i32 i32 i32) (result i32)))
  (import "lunatic::distributed" "copy_lookup_nodes_results" (func (param i64 i32 i32 i32) (result i32)))
  (import "lunatic::distributed" "test_root_cert" (func (param i32) (result i32)))
  (import "lunatic::distributed" "default_server_certificates"
    (func (param i32 i32 i32 i32 i32) (result i32)))
  (import "lunatic::distributed" "sign_node" (func (param i32 i32 i32 i32 i32 i32 i32) (result i32)))

  (memory (export "memory") 1)

  ;; A trivial export: proves a module with the whole import table instantiates and runs.
  (func (export "answer") (result i32)
    (i32.const 42)))
