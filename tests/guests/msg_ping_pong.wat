;; Counted ping-pong between two processes.
;; `main(n)` spawns `pong`, sends it n pings carrying (its own pid, i) and checks that each reply
;; carries 2*i (traps otherwise). Returns the sum of the replies: n*(n-1).
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
  ;; memory: 0 child pid | 16 outgoing (pid, i) | 32 incoming (pid, i) | 48 outgoing reply

  ;; The pinger: n round trips, each reply checked.
  (func (export "main") (param $n i64) (result i64)
    (local $child i64) (local $i i64) (local $sum i64) (local $reply i64)
    (if (call $spawn (i64.const 0) (i64.const -1) (i64.const -1)
                     (i32.const 100) (i32.const 4) (i32.const 0) (i32.const 0) (i32.const 0))
      (then unreachable))
    (local.set $child (i64.load (i32.const 0)))
    (block $done
      (loop $next
        (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
        ;; ping = (our pid, i)
        (call $create (i64.const 1) (i64.const 16))
        (i64.store (i32.const 16) (call $self))
        (i64.store (i32.const 24) (local.get $i))
        (drop (call $write (i32.const 16) (i32.const 16)))
        (drop (call $send (local.get $child)))
        ;; the pong must be a data message carrying 2*i
        (if (call $receive (i32.const 0) (i32.const 0) (i64.const -1)) (then unreachable))
        (if (i32.ne (call $read (i32.const 32) (i32.const 8)) (i32.const 8)) (then unreachable))
        (local.set $reply (i64.load (i32.const 32)))
        (if (i64.ne (local.get $reply) (i64.mul (local.get $i) (i64.const 2))) (then unreachable))
        (local.set $sum (i64.add (local.get $sum) (local.get $reply)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $next)))
    (local.get $sum))

  ;; The ponger: forever, answer (pid, i) with 2*i.
  (func (export "pong")
    (loop $forever
      (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))
      (drop (call $read (i32.const 32) (i32.const 16)))
      (call $create (i64.const 2) (i64.const 8))
      (i64.store (i32.const 48) (i64.mul (i64.load (i32.const 40)) (i64.const 2)))
      (drop (call $write (i32.const 48) (i32.const 8)))
      (drop (call $send (i64.load (i32.const 32))))
      (br $forever))))
