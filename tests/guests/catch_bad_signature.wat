;; trap::catch with a `_lunatic_catch_trap` of the wrong type ((i32) -> i32 instead of
;; (i32, i32) -> i32): the call fails, which catch reports as 0, as lunatic 0.13 does.
(module
  (import "lunatic::trap" "catch" (func $catch (param i32 i32) (result i32)))
  (memory (export "memory") 1)

  ;; Wrong signature: one parameter. Would return 9.
  (func (export "_lunatic_catch_trap") (param $fn i32) (result i32)
    (i32.const 9))

  ;; catch(0, 0), returned as is.
  (func (export "main") (result i32)
    (call $catch (i32.const 0) (i32.const 0))))
