;; Registry and metric names of any length (tests/vm/test_default_bounds.py, tests/api/test_bounds.py).
(module
  (import "lunatic::registry" "put" (func $put (param i32 i32 i64 i64)))
  (import "lunatic::metrics" "increment_counter" (func $count (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "0123456789")
  ;; a name of $len bytes at 0 (past the memory's end when that is large: it is never read)
  (func (export "register") (param $len i32)
    (call $put (i32.const 0) (local.get $len) (i64.const 0) (i64.const 1)))
  (func (export "count") (param $len i32) (call $count (i32.const 0) (local.get $len)))
  ;; $n counters named by the decimal digits of 0..$n-1, written before byte 120
  (func (export "count_many") (param $n i32)
    (local $i i32) (local $v i32) (local $at i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $v (local.get $i)) (local.set $at (i32.const 120))
      (loop $digit
        (local.set $at (i32.sub (local.get $at) (i32.const 1)))
        (i32.store8 (local.get $at) (i32.add (i32.const 48) (i32.rem_u (local.get $v) (i32.const 10))))
        (local.set $v (i32.div_u (local.get $v) (i32.const 10)))
        (br_if $digit (local.get $v)))
      (call $count (local.get $at) (i32.sub (i32.const 120) (local.get $at)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next))))
)
