;; Workloads for benchmarks/engine.py: one engine in the harness process, no workers.
(module
  (import "lunatic::message" "create_data" (func $create (param i64 i64)))
  (import "lunatic::message" "write_data" (func $write (param i32 i32) (result i32)))
  (import "lunatic::message" "read_data" (func $read (param i32 i32) (result i32)))
  (import "lunatic::message" "send" (func $send (param i64) (result i32)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (import "lunatic::message" "get_tag" (func $get_tag (result i64)))
  (memory (export "memory") 1)

  ;; Returns at once: the cost of spawning and finishing a process.
  (func (export "noop"))

  ;; Waits for one message: an idle process.
  (func (export "idle") (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1))))

  ;; Waits for a message tagged 2 (which nobody sends), so everything else stays queued: a slow
  ;; receiver's backlog.
  (func (export "hold")
    (i64.store (i32.const 64) (i64.const 2))
    (drop (call $receive (i32.const 64) (i32.const 1) (i64.const -1))))

  ;; Sends `count` 8-byte messages (tag 1) to `peer`, as fast as it can.
  (func (export "flood") (param $peer i64) (param $count i64)
    (block $done (loop $next
      (br_if $done (i64.eqz (local.get $count)))
      (call $create (i64.const 1) (i64.const 8))
      (i64.store (i32.const 0) (local.get $count))
      (drop (call $write (i32.const 0) (i32.const 8)))
      (drop (call $send (local.get $peer)))
      (local.set $count (i64.sub (local.get $count) (i64.const 1)))
      (br $next))))

  ;; Sends `count` 64-byte messages to `peer`, then waits for its acknowledgement.
  (func (export "produce") (param $peer i64) (param $count i64)
    (block $done (loop $next
      (br_if $done (i64.eqz (local.get $count)))
      (call $create (i64.const 1) (i64.const 64))
      (drop (call $write (i32.const 0) (i32.const 64)))
      (drop (call $send (local.get $peer)))
      (local.set $count (i64.sub (local.get $count) (i64.const 1)))
      (br $next)))
    (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1))))

  ;; Receives `count` messages, reading each, then acknowledges to `peer`.
  (func (export "consume") (param $peer i64) (param $count i64)
    (block $done (loop $next
      (br_if $done (i64.eqz (local.get $count)))
      (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))
      (drop (call $read (i32.const 0) (i32.const 64)))
      (local.set $count (i64.sub (local.get $count) (i64.const 1)))
      (br $next)))
    (call $create (i64.const 2) (i64.const 0))
    (drop (call $send (local.get $peer))))

  ;; Ping-pong: sends `count` pings to `peer`, waiting for each reply (the receiver is always
  ;; suspended when a message arrives).
  (func (export "ping") (param $peer i64) (param $count i64)
    (block $done (loop $next
      (br_if $done (i64.eqz (local.get $count)))
      (call $create (i64.const 1) (i64.const 8))
      (drop (call $send (local.get $peer)))
      (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))
      (local.set $count (i64.sub (local.get $count) (i64.const 1)))
      (br $next)))
    (call $create (i64.const 0) (i64.const 0))
    (drop (call $send (local.get $peer))))

  ;; Answers each ping (tag 1) to `peer`; returns at a message with tag 0.
  (func (export "pong") (param $peer i64)
    (loop $next
      (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))
      (if (i64.eq (call $get_tag) (i64.const 1))
        (then
          (call $create (i64.const 2) (i64.const 8))
          (drop (call $send (local.get $peer)))
          (br $next)))))

  ;; CPU-bound: an LCG iterated `n` times.
  (func (export "crunch") (param $n i64) (result i64) (local $x i64)
    (local.set $x (i64.const 1))
    (block $done (loop $next
      (br_if $done (i64.eqz (local.get $n)))
      (local.set $x (i64.add (i64.mul (local.get $x) (i64.const 6364136223846793005)) (i64.const 1442695040888963407)))
      (local.set $n (i64.sub (local.get $n) (i64.const 1)))
      (br $next)))
    (local.get $x)))
