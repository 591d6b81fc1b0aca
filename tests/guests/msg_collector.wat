;; A collector that records the order in which values arrive, and reporters that send it values.
;; Every message carries one i64 value in its first 8 bytes.
(module
  (import "lunatic::message" "create_data" (func $create (param i64 i64)))
  (import "lunatic::message" "write_data" (func $write (param i32 i32) (result i32)))
  (import "lunatic::message" "read_data" (func $read (param i32 i32) (result i32)))
  (import "lunatic::message" "send" (func $send (param i64) (result i32)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (memory (export "memory") 1)
  ;; memory: 0 incoming value | 8 outgoing value

  ;; Receive n data messages; return their values packed base 100 in arrival order
  ;; (values 1, 2, 3 give 10203).
  (func (export "collect") (param $n i32) (result i64)
    (local $acc i64)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $n)))
        (if (call $receive (i32.const 0) (i32.const 0) (i64.const -1)) (then unreachable))
        (if (i32.ne (call $read (i32.const 0) (i32.const 8)) (i32.const 8)) (then unreachable))
        (local.set $acc (i64.add (i64.mul (local.get $acc) (i64.const 100)) (i64.load (i32.const 0))))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $next)))
    (local.get $acc))

  ;; Send `value` to `collector` (tag 0).
  (func $report (export "report") (param $collector i64) (param $value i64)
    (call $create (i64.const 0) (i64.const 8))
    (i64.store (i32.const 8) (local.get $value))
    (drop (call $write (i32.const 8) (i32.const 8)))
    (drop (call $send (local.get $collector))))

  ;; Receive with timeout 0 on an empty mailbox (must return 9027 without suspending), then report.
  (func (export "report_after_zero_receive") (param $collector i64) (param $value i64)
    (if (i32.ne (call $receive (i32.const 0) (i32.const 0) (i64.const 0)) (i32.const 9027))
      (then unreachable))
    (call $report (local.get $collector) (local.get $value))))
