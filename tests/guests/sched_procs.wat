;; Processes for scheduler tests: a spinner, a killer, a process blocked forever, a ticker and a
;; sleeper.
(module
  (import "lunatic::process" "sleep_ms" (func $sleep (param i64)))
  (import "lunatic::process" "kill" (func $kill (param i64)))
  (import "lunatic::process" "exists" (func $exists (param i64) (result i32)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "\f9\ff\ff\ff\ff\ff\ff\ff") ;; tag -7, for `block_forever`

  ;; Spin forever without calling the host: only fuel-based preemption can interrupt it.
  (func (export "spin")
    (loop $forever (br $forever)))

  ;; Kill `pid`; return whether it still exists afterwards (0).
  (func (export "kill_and_check") (param $pid i64) (result i32)
    (call $kill (local.get $pid))
    (call $exists (local.get $pid)))

  ;; Wait, without a timeout, for a message tagged -7; return receive's code.
  (func (export "block_forever") (result i32)
    (call $receive (i32.const 0) (i32.const 1) (i64.const -1)))

  ;; Sleep 5 ms, forever: there is always a timer pending.
  (func (export "tick_forever")
    (loop $forever
      (call $sleep (i64.const 5))
      (br $forever)))

  ;; Sleep `ms`, then return 1.
  (func (export "nap") (param $ms i64) (result i32)
    (call $sleep (local.get $ms))
    (i32.const 1)))
