;; Compiling modules from a guest: the Wasm bytes arrive in a message (the host sends them),
;; compile_module turns them into a module id, and spawn starts that module's `answer` export.
(module
  (import "lunatic::process" "spawn" (func $spawn (param i64 i64 i64 i32 i32 i32 i32 i32) (result i32)))
  (import "lunatic::process" "compile_module" (func $compile (param i32 i32 i32) (result i32)))
  (import "lunatic::process" "drop_module" (func $drop_module (param i64)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (import "lunatic::message" "read_data" (func $read (param i32 i32) (result i32)))
  (import "lunatic::message" "data_size" (func $data_size (result i64)))
  (import "lunatic::error" "string_size" (func $error_size (param i64) (result i32)))
  (import "lunatic::error" "to_string" (func $error_text (param i64 i32)))
  (import "lunatic::metrics" "increment_counter" (func $counter (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "answer")
  ;; 0: module id or error id, 8: child pid or error id, 1024: error text, 4096: received bytes

  ;; Reports the text of error id `id` as the name of a metrics counter.
  (func $report (param $id i64)
    (call $error_text (local.get $id) (i32.const 1024))
    (call $counter (i32.const 1024) (call $error_size (local.get $id))))

  ;; Receives a message and compiles its data; returns compile_module's status (the module id is
  ;; at 0, or the error is reported).
  (func $compile_received (result i32)
    (local $size i32) (local $status i32)
    (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))
    (local.set $size (i32.wrap_i64 (call $data_size)))
    (drop (call $read (i32.const 4096) (local.get $size)))
    (local.set $status (call $compile (i32.const 4096) (local.get $size) (i32.const 0)))
    (if (i32.eq (local.get $status) (i32.const 1)) (then (call $report (i64.load (i32.const 0)))))
    (local.get $status))

  ;; Compiles the received bytes, spawns the new module's `answer` export and drops the module.
  ;; Returns (compile status, spawn status or -1 if not compiled).
  (func (export "compile_and_spawn") (result i32 i32)
    (local $status i32) (local $module i64)
    (local.set $status (call $compile_received))
    (if (local.get $status) (then (return (local.get $status) (i32.const -1))))
    (local.set $module (i64.load (i32.const 0)))
    (local.get $status)
    (call $spawn (i64.const 0) (i64.const -1) (local.get $module)
                 (i32.const 100) (i32.const 6) (i32.const 0) (i32.const 0) (i32.const 8))
    (call $drop_module (local.get $module)))

  ;; Compiles the received bytes, drops the module, then spawns it by its stale id (traps).
  (func (export "spawn_dropped") (result i32)
    (local $module i64)
    (drop (call $compile_received))
    (local.set $module (i64.load (i32.const 0)))
    (call $drop_module (local.get $module))
    (call $spawn (i64.const 0) (i64.const -1) (local.get $module)
                 (i32.const 100) (i32.const 6) (i32.const 0) (i32.const 0) (i32.const 8))))
