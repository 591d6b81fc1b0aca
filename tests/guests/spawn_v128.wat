;; Spawn parameters of type v128 (record type byte 0x7B): all 16 bytes reach the child.
(module
  (import "lunatic::process" "spawn" (func $spawn (param i64 i64 i64 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "v128_child")
  ;; 0: out slot (child pid or error id), 300: one v128 record

  ;; Child: returns the sum of the two i64 lanes of its v128 parameter.
  (func (export "v128_child") (param $v v128) (result i64)
    (i64.add (i64x2.extract_lane 0 (local.get $v)) (i64x2.extract_lane 1 (local.get $v))))

  ;; Spawns v128_child with the lanes (lo, hi); returns spawn's status.
  (func (export "main") (param $lo i64) (param $hi i64) (result i32)
    (i32.store8 (i32.const 300) (i32.const 0x7b))
    (i64.store (i32.const 301) (local.get $lo))
    (i64.store (i32.const 309) (local.get $hi))
    (call $spawn (i64.const 0) (i64.const -1) (i64.const -1) (i32.const 100) (i32.const 10)
                 (i32.const 300) (i32.const 17) (i32.const 0))))
