;; trap::catch in a module that lacks `_lunatic_catch_trap`: catch itself traps.
(module
  (import "lunatic::trap" "catch" (func $catch (param i32 i32) (result i32)))
  (memory (export "memory") 1)

  ;; catch(0, 0): traps, since there is nothing to call.
  (func (export "main") (result i32)
    (call $catch (i32.const 0) (i32.const 0))))
