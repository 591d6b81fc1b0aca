;; Workloads for benchmarks/runtime.py: timed ping-pong, streaming and CPU-bound jobs.
(module
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "lunatic::message" "create_data" (func $create (param i64 i64)))
  (import "lunatic::message" "write_data" (func $write (param i32 i32) (result i32)))
  (import "lunatic::message" "read_data" (func $read (param i32 i32) (result i32)))
  (import "lunatic::message" "send" (func $send (param i64) (result i32)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (import "lunatic::message" "get_tag" (func $get_tag (result i64)))
  (import "lunatic::message" "get_process_id" (func $sender (result i64)))
  (memory (export "memory") 8)
  ;; 0..64: message buffer; 64: clock out; 1024..: round-trip times (u64 ns each)

  (func $now (result i64)
    (drop (call $clock (i32.const 1) (i64.const 1) (i32.const 64)))
    (i64.load (i32.const 64)))

  ;; Sends `count` pings to `peer`, timing each round trip; then sends the times (u64 ns each)
  ;; to `report`, and tells the peer to stop (tag 0).
  (func (export "ping") (param $peer i64) (param $count i64) (param $report i64)
    (local $i i64) (local $start i64) (local $at i32)
    (local.set $at (i32.const 1024))
    (block $done (loop $next
      (br_if $done (i64.ge_u (local.get $i) (local.get $count)))
      (local.set $start (call $now))
      (call $create (i64.const 1) (i64.const 8))
      (drop (call $send (local.get $peer)))
      (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))
      (i64.store (local.get $at) (i64.sub (call $now) (local.get $start)))
      (local.set $at (i32.add (local.get $at) (i32.const 8)))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br $next)))
    (call $create (i64.const 0) (i64.const 0))
    (drop (call $send (local.get $peer)))
    (call $create (i64.const 7) (i64.const 0))
    (drop (call $write (i32.const 1024) (i32.wrap_i64 (i64.mul (local.get $count) (i64.const 8)))))
    (drop (call $send (local.get $report))))

  ;; Answers each ping (tag 1) to its sender; returns at a message with tag 0.
  (func (export "pong") (local $peer i64)
    (loop $next
      (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))
      (if (i64.eq (call $get_tag) (i64.const 1))
        (then
          (local.set $peer (call $sender))
          (call $create (i64.const 2) (i64.const 8))
          (drop (call $send (local.get $peer)))
          (br $next)))))

  ;; Sends `count` 64-byte messages to `peer`.
  (func (export "produce") (param $peer i64) (param $count i64)
    (block $done (loop $next
      (br_if $done (i64.eqz (local.get $count)))
      (call $create (i64.const 1) (i64.const 64))
      (drop (call $write (i32.const 0) (i32.const 64)))
      (drop (call $send (local.get $peer)))
      (local.set $count (i64.sub (local.get $count) (i64.const 1)))
      (br $next))))

  ;; Receives and reads `count` messages; returns how many it got.
  (func (export "consume") (param $count i64) (result i64) (local $got i64)
    (block $done (loop $next
      (br_if $done (i64.ge_u (local.get $got) (local.get $count)))
      (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))
      (drop (call $read (i32.const 0) (i32.const 64)))
      (local.set $got (i64.add (local.get $got) (i64.const 1)))
      (br $next)))
    (local.get $got))

  ;; CPU-bound: an LCG iterated `n` times.
  (func (export "crunch") (param $n i64) (result i64) (local $x i64)
    (local.set $x (i64.const 1))
    (block $done (loop $next
      (br_if $done (i64.eqz (local.get $n)))
      (local.set $x (i64.add (i64.mul (local.get $x) (i64.const 6364136223846793005)) (i64.const 1442695040888963407)))
      (local.set $n (i64.sub (local.get $n) (i64.const 1)))
      (br $next)))
    (local.get $x)))
