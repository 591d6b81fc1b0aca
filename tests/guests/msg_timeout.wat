;; Receive with a timeout.
(module
  (import "lunatic::process" "sleep_ms" (func $sleep (param i64)))
  (import "lunatic::message" "create_data" (func $create (param i64 i64)))
  (import "lunatic::message" "write_data" (func $write (param i32 i32) (result i32)))
  (import "lunatic::message" "send" (func $send (param i64) (result i32)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (memory (export "memory") 1)
  ;; memory: 0 outgoing value

  ;; Receive any message with a timeout of `ms`; return receive's code (0 data, 9027 timeout).
  (func (export "receive_within") (param $ms i64) (result i32)
    (call $receive (i32.const 0) (i32.const 0) (local.get $ms)))

  ;; Receive with a timeout of `ms`, then again without a timeout: a message that comes after the
  ;; first receive timed out must still reach the second one. Returns both codes.
  (func (export "receive_twice") (param $ms i64) (result i32 i32)
    (call $receive (i32.const 0) (i32.const 0) (local.get $ms))
    (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))

  ;; Sleep `ms`, then send `target` a message (tag 0, value 7).
  (func (export "send_later") (param $target i64) (param $ms i64)
    (call $sleep (local.get $ms))
    (call $create (i64.const 0) (i64.const 8))
    (i64.store (i32.const 0) (i64.const 7))
    (drop (call $write (i32.const 0) (i32.const 8)))
    (drop (call $send (local.get $target)))))
