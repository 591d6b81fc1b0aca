;; Timers: sleep_ms, send_after and cancel_timer. Every message carries one i64 value.
(module
  (import "lunatic::process" "sleep_ms" (func $sleep (param i64)))
  (import "lunatic::process" "process_id" (func $self (result i64)))
  (import "lunatic::message" "create_data" (func $create (param i64 i64)))
  (import "lunatic::message" "write_data" (func $write (param i32 i32) (result i32)))
  (import "lunatic::message" "read_data" (func $read (param i32 i32) (result i32)))
  (import "lunatic::message" "send" (func $send (param i64) (result i32)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (import "lunatic::timer" "send_after" (func $send_after (param i64 i64) (result i64)))
  (import "lunatic::timer" "cancel_timer" (func $cancel (param i64) (result i32)))
  (memory (export "memory") 1)
  ;; memory: 0 outgoing value | 8 incoming value

  ;; Make the scratch message: tag 0, one i64 `value`.
  (func $message (param $value i64)
    (call $create (i64.const 0) (i64.const 8))
    (i64.store (i32.const 0) (local.get $value))
    (drop (call $write (i32.const 0) (i32.const 8))))

  ;; Receive one data message (no timeout) and return its value.
  (func $next_value (result i64)
    (if (call $receive (i32.const 0) (i32.const 0) (i64.const -1)) (then unreachable))
    (drop (call $read (i32.const 8) (i32.const 8)))
    (i64.load (i32.const 8)))

  ;; Sleep `ms`, then send `ms` to `collector`.
  (func (export "sleep_then_report") (param $ms i64) (param $collector i64)
    (call $sleep (local.get $ms))
    (call $message (local.get $ms))
    (drop (call $send (local.get $collector))))

  ;; Schedule messages to ourselves with delays 30, 10, 20 ms (each carrying its delay), then
  ;; receive three; returns their values packed base 100 in arrival order (102030 when in
  ;; delay order).
  (func (export "send_after_order") (result i64)
    (local $acc i64)
    (call $message (i64.const 30))
    (drop (call $send_after (call $self) (i64.const 30)))
    (call $message (i64.const 10))
    (drop (call $send_after (call $self) (i64.const 10)))
    (call $message (i64.const 20))
    (drop (call $send_after (call $self) (i64.const 20)))
    (local.set $acc (call $next_value))
    (local.set $acc (i64.add (i64.mul (local.get $acc) (i64.const 100)) (call $next_value)))
    (i64.add (i64.mul (local.get $acc) (i64.const 100)) (call $next_value)))

  ;; Send `value` to `pid` after `ms`; returns the timer id.
  (func (export "send_after_to") (param $pid i64) (param $ms i64) (param $value i64) (result i64)
    (call $message (local.get $value))
    (call $send_after (local.get $pid) (local.get $ms)))

  ;; cancel_timer. Returns, in order:
  ;;   cancelling a pending 10 ms timer -> 1,
  ;;   a receive waiting 60 ms afterwards -> 9027 (the cancelled message never comes),
  ;;   cancelling it again -> 0,
  ;;   cancelling an id never handed out -> 0,
  ;;   receiving the message of a 0 ms timer -> 0 (it fired), with its value 5,
  ;;   cancelling that fired timer -> 0.
  (func (export "cancel") (result i32 i32 i32 i32 i32 i64 i32)
    (local $pending i64) (local $fired i64)
    (call $message (i64.const 4))
    (local.set $pending (call $send_after (call $self) (i64.const 10)))
    (call $cancel (local.get $pending))
    (call $receive (i32.const 0) (i32.const 0) (i64.const 60))
    (call $cancel (local.get $pending))
    (call $cancel (i64.const 987654321))
    (call $message (i64.const 5))
    (local.set $fired (call $send_after (call $self) (i64.const 0)))
    (call $receive (i32.const 0) (i32.const 0) (i64.const -1))
    (drop (call $read (i32.const 8) (i32.const 8)))
    (i64.load (i32.const 8))
    (call $cancel (local.get $fired)))
  ;; Send `value` to `pid` after `ms`, then wait for a message for ever (alive until killed, so
  ;; its timer stays pending); the timer id is the first message it sends to `reply_to`.
  (func (export "send_after_and_wait") (param $pid i64) (param $ms i64) (param $value i64) (param $reply_to i64)
    (call $message (local.get $value))
    (call $message (call $send_after (local.get $pid) (local.get $ms)))
    (drop (call $send (local.get $reply_to)))
    (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1))))

  ;; Start `count` timers that send to this process after `ms` (-1: never); returns `count`.
  (func (export "timer_flood") (param $count i64) (param $ms i64) (result i64)
    (local $i i64)
    (block $done
      (loop $next
        (br_if $done (i64.ge_u (local.get $i) (local.get $count)))
        (call $message (local.get $i))
        (drop (call $send_after (call $self) (local.get $ms)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $next)))
    (local.get $count))

  ;; cancel_timer of `id`: 1 if it cancelled a timer.
  (func (export "cancel_id") (param $id i64) (result i32)
    (call $cancel (local.get $id))))
