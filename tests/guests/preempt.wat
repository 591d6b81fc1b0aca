;; Guests for preemption by epochs (tests/vm/test_preemption.py): none of `spin`'s code ever calls
;; the host, so only the end of its time slice lets anything else on the engine run.
(module
  (import "lunatic::process" "sleep_ms" (func $sleep (param i64)))
  (import "lunatic::process" "kill" (func $kill (param i64)))
  (memory (export "memory") 1)

  ;; Forever, without a host call.
  (func (export "spin")
    (loop $forever (br $forever)))

  ;; Count to n without a host call; return n.
  (func (export "count") (param $n i64) (result i64)
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
    unreachable))
