;; Message size limit: builds a scratch message of `chunks` writes of `size` bytes each.
;; Past the engine's max_message_size the write_data call traps.
(module
  (import "lunatic::message" "create_data" (func $create (param i64 i64)))
  (import "lunatic::message" "write_data" (func $write (param i32 i32) (result i32)))
  (import "lunatic::message" "data_size" (func $data_size (result i64)))
  (memory (export "memory") 1)

  ;; Writes `chunks` times `size` bytes (from address 0) into a new message; returns its size.
  (func (export "build") (param $size i32) (param $chunks i32) (result i64)
    (local $i i32)
    (call $create (i64.const 0) (i64.const 0))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $chunks)))
        (drop (call $write (i32.const 0) (local.get $size)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (call $data_size)))
