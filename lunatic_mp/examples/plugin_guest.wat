;; A guest of the plugins in tests/test_plugins.py: lunatic::calc (plugin_calc.wat) and
;; lunatic::greeter (a Python plugin that uppercases a name in place).
(module
  (import "lunatic::calc" "add" (func $add (param i64 i64) (result i64)))
  (import "lunatic::calc" "bump" (func $bump (result i64)))
  (import "lunatic::calc" "half" (func $half (param f64) (result f64)))
  (import "lunatic::calc" "boom" (func $boom (result i32)))
  (import "lunatic::calc" "spin" (func $spin))
  (memory (export "memory") 1)
  (func (export "sum") (param i64 i64) (result i64)
    (call $add (local.get 0) (local.get 1)))
  ;; Bumps the counter three times: 3 in every process, however many ran before.
  (func (export "bumps") (result i64)
    (drop (call $bump)) (drop (call $bump)) (call $bump))
  (func (export "half") (param f64) (result f64)
    (call $half (local.get 0)))
  (func (export "boom") (result i32) (call $boom))
  (func (export "spin") (call $spin)))
