;; cli_deadlock.wat: `_start` waits, without a timeout, for a message nobody can send: no other
;; process exists and no timer is armed, so the runtime must detect that it can never wake.
(module
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (memory (export "memory") 1)
  ;; receive(any tag, no timeout)
  (func (export "_start")
    (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1))))
)
