;; Large messages through a small ring to a slow consumer: backpressure on the producer.
;;
;; Message i (1-based) is `size` bytes with i in its first and last 8 bytes. The producer reports
;; its progress to a probe (the host program's mailbox) every 100 messages, and measures (with
;; WASI's monotonic clock) the longest time between two of its sends.
;;
;; Memory: 0 clock slot, 16 report buffer, 1024+ the message buffer (up to 60 KiB).
(module
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "lunatic::process" "sleep_ms" (func $sleep (param i64)))
  (import "lunatic::message" "create_data" (func $create (param i64 i64)))
  (import "lunatic::message" "write_data" (func $write (param i32 i32) (result i32)))
  (import "lunatic::message" "read_data" (func $read (param i32 i32) (result i32)))
  (import "lunatic::message" "data_size" (func $data_size (result i64)))
  (import "lunatic::message" "send" (func $send (param i64) (result i32)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (memory (export "memory") 1)

  ;; Nanoseconds on the monotonic clock.
  (func $now (result i64)
    (if (call $clock (i32.const 1) (i64.const 1) (i32.const 0)) (then unreachable))
    (i64.load (i32.const 0)))

  ;; Sends n messages of `size` bytes (16 <= size <= 60 KiB) to `consumer`, and after every 100th
  ;; the number sent so far to `probe` (tag 6, 8 bytes).
  ;; Returns (n, the longest gap between two sends in nanoseconds).
  (func (export "produce_big") (param $consumer i64) (param $n i64) (param $size i32) (param $probe i64)
                               (result i64 i64)
    (local $i i64) (local $last i64) (local $now i64) (local $gap i64)
    (local.set $last (call $now))
    (block $done
      (loop $next
        (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (i64.store (i32.const 1024) (local.get $i))
        (i64.store (i32.add (i32.const 1016) (local.get $size)) (local.get $i))
        (call $create (i64.const 0) (i64.extend_i32_u (local.get $size)))
        (if (i32.ne (call $write (i32.const 1024) (local.get $size)) (local.get $size))
          (then unreachable))
        (drop (call $send (local.get $consumer)))
        (if (i64.eqz (i64.rem_u (local.get $i) (i64.const 100)))
          (then
            (call $create (i64.const 6) (i64.const 8))
            (i64.store (i32.const 16) (local.get $i))
            (drop (call $write (i32.const 16) (i32.const 8)))
            (drop (call $send (local.get $probe)))))
        (local.set $now (call $now))
        (if (i64.gt_u (i64.sub (local.get $now) (local.get $last)) (local.get $gap))
          (then (local.set $gap (i64.sub (local.get $now) (local.get $last)))))
        (local.set $last (local.get $now))
        (br $next)))
    (local.get $i) (local.get $gap))

  ;; Sleeps `start_ms`, then receives n messages, checking that each is `size` bytes and carries
  ;; the next value at both ends; sleeps `delay_ms` after each. Returns (messages received in
  ;; order, the first bad value or -1 for a message of the wrong size, else 0).
  (func (export "consume_big") (param $n i64) (param $size i32) (param $start_ms i64) (param $delay_ms i64)
                               (result i64 i64)
    (local $count i64)
    (call $sleep (local.get $start_ms))
    (block $done
      (loop $next
        (br_if $done (i64.ge_u (local.get $count) (local.get $n)))
        (if (call $receive (i32.const 0) (i32.const 0) (i64.const -1)) (then unreachable))
        (if (i64.ne (call $data_size) (i64.extend_i32_u (local.get $size)))
          (then (return (local.get $count) (i64.const -1))))
        (if (i32.ne (call $read (i32.const 1024) (local.get $size)) (local.get $size))
          (then (return (local.get $count) (i64.const -1))))
        (if (i64.ne (i64.load (i32.const 1024)) (i64.add (local.get $count) (i64.const 1)))
          (then (return (local.get $count) (i64.load (i32.const 1024)))))
        (if (i64.ne (i64.load (i32.add (i32.const 1016) (local.get $size))) (i64.add (local.get $count) (i64.const 1)))
          (then (return (local.get $count) (i64.load (i32.add (i32.const 1016) (local.get $size))))))
        (local.set $count (i64.add (local.get $count) (i64.const 1)))
        (if (i64.gt_s (local.get $delay_ms) (i64.const 0))
          (then (call $sleep (local.get $delay_ms))))
        (br $next)))
    (local.get $count) (i64.const 0)))
