;; cli_trap.wat: `_start` calls a function that executes `unreachable`: the root process traps.
(module
  (memory (export "memory") 1)
  ;; The trap, one frame below `_start` (so the failure has a backtrace).
  (func $fail
    unreachable)
  (func (export "_start")
    (call $fail))
)
