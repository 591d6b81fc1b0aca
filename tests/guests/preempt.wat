;; Guests for preemption by epochs (tests/vm/test_preemption.py): none of `spin`'s code ever calls
;; the host, so only the end of its time slice lets anything else on the engine run.
(module
  (import "lunatic::process" "sleep_ms" (func $sleep (param i64)))
  (import "lunatic::process" "kill" (func $kill (param i64)))
  (import "lunatic::process" "process_id" (func $self (result i64)))
  (import "lunatic::message" "create_data" (func $create (param i64 i64)))
  (import "lunatic::message" "write_data" (func $write (param i32 i32) (result i32)))
  (import "lunatic::message" "read_data" (func $read (param i32 i32) (result i32)))
  (import "lunatic::message" "send" (func $send (param i64) (result i32)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (import "lunatic::timer" "send_after" (func $send_after (param i64 i64) (result i64)))
  (memory (export "memory") 1)

  ;; Forever, without a host call.
  (func (export "spin")
    (loop $forever (br $forever)))

  ;; Count to n without a host call; return n.
  (func $count (export "count") (param $n i64) (result i64)
    (local $i i64)
    (block $done
      (loop $next
        (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $next)))
    (local.get $i))

  ;; Sleep, then kill `target`.
  (func (export "killer") (param $target i64) (param $delay_ms i64)
    (call $sleep (local.get $delay_ms))
    (call $kill (local.get $target)))

  ;; Sleep, then trap: whatever is linked to it dies with it.
  (func (export "doomed") (param $delay_ms i64)
    (call $sleep (local.get $delay_ms))
    unreachable)

  ;; `rounds` times: count to `work` without a host call (past the slice's first tick, when the
  ;; poll lets go of the GIL), then send the round's number to itself, receive it and read it
  ;; back. Returns the sum of the numbers read (rounds * (rounds - 1) / 2), or -1 on a mismatch.
  (func (export "chatter") (param $rounds i64) (param $work i64) (result i64)
    (local $round i64) (local $i i64) (local $sum i64)
    (block $done
      (loop $next
        (br_if $done (i64.ge_u (local.get $round) (local.get $rounds)))
        (local.set $i (i64.const 0))
        (block $counted
          (loop $count
            (br_if $counted (i64.ge_u (local.get $i) (local.get $work)))
            (local.set $i (i64.add (local.get $i) (i64.const 1)))
            (br $count)))
        (i64.store (i32.const 0) (local.get $round))
        (call $create (i64.const 1) (i64.const 8))
        (drop (call $write (i32.const 0) (i32.const 8)))
        (drop (call $send (call $self)))
        (i64.store (i32.const 0) (i64.const -1))
        (if (call $receive (i32.const 0) (i32.const 0) (i64.const -1)) (then (return (i64.const -1))))
        (if (i32.ne (call $read (i32.const 8) (i32.const 8)) (i32.const 8)) (then (return (i64.const -1))))
        (if (i64.ne (i64.load (i32.const 8)) (local.get $round)) (then (return (i64.const -1))))
        (local.set $sum (i64.add (local.get $sum) (i64.load (i32.const 8))))
        (local.set $round (i64.add (local.get $round) (i64.const 1)))
        (br $next)))
    (local.get $sum))

  ;; Count to `work` without a host call (its slices run out: the next ones may be long), have an
  ;; empty message sent to `target` after `delay_ms` (a timer set by a host call), then spin.
  (func (export "late_timer") (param $target i64) (param $work i64) (param $delay_ms i64)
    (drop (call $count (local.get $work)))
    (call $create (i64.const 1) (i64.const 0))
    (drop (call $send_after (local.get $target) (local.get $delay_ms)))
    (loop $forever (br $forever)))

  ;; Wait for any message.
  (func (export "wait_any")
    (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))))
