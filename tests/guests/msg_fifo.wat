;; FIFO order per sender.
;; `send_seq(target, tag, n, pause)` sends n messages tagged `tag` carrying 0..n-1; with pause != 0
;; it yields (sleep_ms 0) after each send so that several senders interleave.
;; `check_seq(total)` receives `total` messages and checks that each sender's (tag's) values come
;; as 0, 1, 2...; returns how many arrived in order (it stops at the first one out of order).
(module
  (import "lunatic::process" "sleep_ms" (func $sleep (param i64)))
  (import "lunatic::message" "create_data" (func $create (param i64 i64)))
  (import "lunatic::message" "write_data" (func $write (param i32 i32) (result i32)))
  (import "lunatic::message" "read_data" (func $read (param i32 i32) (result i32)))
  (import "lunatic::message" "get_tag" (func $get_tag (result i64)))
  (import "lunatic::message" "send" (func $send (param i64) (result i32)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (memory (export "memory") 1)
  ;; memory: 0 outgoing value | 8 incoming value | 1024 + tag*8: next value expected from `tag`

  ;; The sender.
  (func (export "send_seq") (param $target i64) (param $tag i64) (param $n i64) (param $pause i32)
    (local $i i64)
    (block $done
      (loop $next
        (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
        (call $create (local.get $tag) (i64.const 8))
        (i64.store (i32.const 0) (local.get $i))
        (drop (call $write (i32.const 0) (i32.const 8)))
        (drop (call $send (local.get $target)))
        (if (local.get $pause) (then (call $sleep (i64.const 0))))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $next))))

  ;; The receiver (tags must be small: 0..100).
  (func (export "check_seq") (param $total i64) (result i64)
    (local $count i64) (local $slot i32)
    (block $done
      (loop $next
        (br_if $done (i64.ge_u (local.get $count) (local.get $total)))
        (if (call $receive (i32.const 0) (i32.const 0) (i64.const -1)) (then unreachable))
        (drop (call $read (i32.const 8) (i32.const 8)))
        (local.set $slot (i32.add (i32.const 1024)
                                  (i32.mul (i32.wrap_i64 (call $get_tag)) (i32.const 8))))
        ;; out of order: stop counting
        (br_if $done (i64.ne (i64.load (i32.const 8)) (i64.load (local.get $slot))))
        (i64.store (local.get $slot) (i64.add (i64.load (local.get $slot)) (i64.const 1)))
        (local.set $count (i64.add (local.get $count) (i64.const 1)))
        (br $next)))
    (local.get $count)))
