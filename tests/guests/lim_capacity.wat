;; Process capacity: a waiter, and a spawner that reports why a spawn failed.
;; The error text of a failed spawn is reported as the name of a metrics counter, so that the
;; host can read it from engine.metrics.counters.
(module
  (import "lunatic::process" "spawn" (func $spawn (param i64 i64 i64 i32 i32 i32 i32 i32) (result i32)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (import "lunatic::message" "data_size" (func $data_size (result i64)))
  (import "lunatic::error" "string_size" (func $error_size (param i64) (result i32)))
  (import "lunatic::error" "to_string" (func $error_text (param i64 i32)))
  (import "lunatic::metrics" "increment_counter" (func $counter (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "wait")
  ;; 0: out slot for the child's pid or the error id; 1024: error text

  ;; Waits for any message; returns its size.
  (func (export "wait") (result i64)
    (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))
    (call $data_size))

  ;; Spawns a `wait` child; on error reports the error text as a counter name.
  ;; Returns spawn's status (0 ok, 1 error).
  (func (export "spawn_waiter") (result i32)
    (local $status i32)
    (local.set $status
      (call $spawn (i64.const 0) (i64.const -1) (i64.const -1)
                   (i32.const 100) (i32.const 4) (i32.const 0) (i32.const 0) (i32.const 0)))
    (if (local.get $status)
      (then
        (call $error_text (i64.load (i32.const 0)) (i32.const 1024))
        (call $counter (i32.const 1024) (call $error_size (i64.load (i32.const 0))))))
    (local.get $status)))
