;; Ping-pong: `main(n)` spawns a ponger, sends it n pings and waits for each pong.
;; Returns n when every pong came back.
(module
  (import "lunatic::process" "spawn" (func $spawn (param i64 i64 i64 i32 i32 i32 i32 i32) (result i32)))
  (import "lunatic::process" "process_id" (func $self (result i64)))
  (import "lunatic::message" "create_data" (func $create (param i64 i64)))
  (import "lunatic::message" "write_data" (func $write (param i32 i32) (result i32)))
  (import "lunatic::message" "read_data" (func $read (param i32 i32) (result i32)))
  (import "lunatic::message" "send" (func $send (param i64) (result i32)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "pong")
  ;; 0: out pid slot, 16: i64 buffer
  (func (export "main") (param $n i64) (result i64)
    (local $child i64) (local $i i64)
    (if (call $spawn (i64.const 0) (i64.const -1) (i64.const -1)
                     (i32.const 100) (i32.const 4) (i32.const 0) (i32.const 0) (i32.const 0))
      (then unreachable))
    (local.set $child (i64.load (i32.const 0)))
    (block $done
      (loop $next
        (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
        ;; ping carries our pid
        (call $create (i64.const 1) (i64.const 8))
        (i64.store (i32.const 16) (call $self))
        (drop (call $write (i32.const 16) (i32.const 8)))
        (drop (call $send (local.get $child)))
        (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $next)))
    (local.get $i))
  (func (export "pong")
    (loop $forever
      (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))
      (drop (call $read (i32.const 16) (i32.const 8)))
      (call $create (i64.const 2) (i64.const 0))
      (drop (call $send (i64.load (i32.const 16))))
      (br $forever))))
