;; cli_exit.wat: `_start` ends the program with proc_exit(7).
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  ;; Exit with code 7; never returns.
  (func (export "_start")
    (call $proc_exit (i32.const 7))
    unreachable)
)
