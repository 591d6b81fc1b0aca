;; A Wasm plugin (tests/test_plugins.py): its exports become lunatic::<plugin name>::*.
;; `bump` counts in a global: each process has an instance of its own, so counts are per process.
(module
  (global $count (mut i64) (i64.const 0))
  (func (export "add") (param i64 i64) (result i64)
    (i64.add (local.get 0) (local.get 1)))
  (func (export "bump") (result i64)
    (global.set $count (i64.add (global.get $count) (i64.const 1)))
    (global.get $count))
  (func (export "half") (param f64) (result f64)
    (f64.mul (local.get 0) (f64.const 0.5)))
  (func (export "boom") (result i32) unreachable)
  (func (export "spin") (loop $forever (br $forever)))
  ;; Two results: not a host function signature, left out with a warning.
  (func (export "pair") (result i32 i32) (i32.const 1) (i32.const 2)))
