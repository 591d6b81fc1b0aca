;; Spawning from a start function: the module is still initializing, so spawn traps.
(module
  (import "lunatic::process" "spawn" (func $spawn (param i64 i64 i64 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "child")

  ;; Start function: tries to spawn `child` (traps before `main` can run).
  (func $init
    (drop (call $spawn (i64.const 0) (i64.const -1) (i64.const -1)
                       (i32.const 100) (i32.const 5) (i32.const 0) (i32.const 0) (i32.const 0))))
  (start $init)

  ;; Never reached.
  (func (export "main") (result i32)
    (i32.const 1))

  ;; Would be the spawned child.
  (func (export "child")))
