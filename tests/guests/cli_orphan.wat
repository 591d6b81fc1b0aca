;; cli_orphan.wat: `_start` spawns a child that waits forever for a message, then returns.
;; The program ends with the root process (exit 0), not when every process has ended.
(module
  (import "lunatic::process" "spawn" (func $spawn (param i64 i64 i64 i32 i32 i32 i32 i32) (result i32)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "wait_forever")
  ;; The child: receive(any tag, no timeout), never satisfied.
  (func (export "wait_forever")
    (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1))))
  ;; Spawn the child (not linked, own config and module, no parameters) and return.
  (func (export "_start")
    (if (call $spawn (i64.const 0) (i64.const -1) (i64.const -1) (i32.const 64) (i32.const 12)
                     (i32.const 0) (i32.const 0) (i32.const 0))
      (then unreachable)))
)
