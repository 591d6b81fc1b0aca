;; A guest of the Python plugin `greeter` (tests/test_plugins.py): greet(ptr, len) rewrites the
;; name at ptr in place and returns its length; `shout` returns the first 8 bytes afterwards.
(module
  (import "lunatic::greeter" "greet" (func $greet (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "lunatic!")
  (func (export "shout") (result i64)
    (drop (call $greet (i32.const 0) (i32.const 8)))
    (i64.load (i32.const 0)))
  ;; A range past the end of memory: the plugin's read traps this guest.
  (func (export "out_of_bounds") (result i32)
    (call $greet (i32.const 65530) (i32.const 100))))
