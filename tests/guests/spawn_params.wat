;; Spawn parameters: 17-byte records (type byte, 16-byte little-endian value) reach the child's
;; export as typed arguments; malformed records trap the spawner.
(module
  (import "lunatic::process" "spawn" (func $spawn (param i64 i64 i64 i32 i32 i32 i32 i32) (result i32)))
  (import "lunatic::process" "process_id" (func $self (result i64)))
  (import "lunatic::message" "create_data" (func $create (param i64 i64)))
  (import "lunatic::message" "write_data" (func $write (param i32 i32) (result i32)))
  (import "lunatic::message" "read_data" (func $read (param i32 i32) (result i32)))
  (import "lunatic::message" "send" (func $send (param i64) (result i32)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (import "lunatic::error" "string_size" (func $error_size (param i64) (result i32)))
  (import "lunatic::error" "to_string" (func $error_text (param i64 i32)))
  (import "lunatic::metrics" "increment_counter" (func $counter (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "sum_child")
  (data (i32.const 110) "no_such_export")
  ;; one record of an unknown type byte (0x7D is f32, which spawn does not take)
  (data (i32.const 400) "\7d\01\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00")
  ;; 0: out slot (child pid or error id), 8: received sum, 200..251: three records,
  ;; 1024: error text

  ;; Child: sends a + b (as i64) to `parent` and returns it too.
  (func (export "sum_child") (param $a i32) (param $b i64) (param $parent i64) (result i64)
    (local $sum i64)
    (local.set $sum (i64.add (i64.extend_i32_s (local.get $a)) (local.get $b)))
    (call $create (i64.const 0) (i64.const 8))
    (i64.store (i32.const 16) (local.get $sum))
    (drop (call $write (i32.const 16) (i32.const 8)))
    (drop (call $send (local.get $parent)))
    (local.get $sum))

  ;; Reports the text of error id `id` as the name of a metrics counter.
  (func $report (param $id i64)
    (call $error_text (local.get $id) (i32.const 1024))
    (call $counter (i32.const 1024) (call $error_size (local.get $id))))

  ;; Spawns `name` with `params_len` bytes of records at `params`; returns spawn's status and
  ;; reports the error text when it fails.
  (func $spawn_named (param $name i32) (param $name_len i32) (param $params i32) (param $params_len i32)
                     (result i32)
    (local $status i32)
    (local.set $status
      (call $spawn (i64.const 0) (i64.const -1) (i64.const -1) (local.get $name) (local.get $name_len)
                   (local.get $params) (local.get $params_len) (i32.const 0)))
    (if (local.get $status) (then (call $report (i64.load (i32.const 0)))))
    (local.get $status))

  ;; Writes records (i32 a, i64 b, i64 own pid), spawns sum_child with them and waits for the sum.
  ;; Returns (spawn status, the sum the child sent).
  (func (export "main") (param $a i32) (param $b i64) (result i32 i64)
    (local $status i32)
    (i32.store8 (i32.const 200) (i32.const 0x7f))
    (i32.store (i32.const 201) (local.get $a))
    (i32.store8 (i32.const 217) (i32.const 0x7e))
    (i64.store (i32.const 218) (local.get $b))
    (i32.store8 (i32.const 234) (i32.const 0x7e))
    (i64.store (i32.const 235) (call $self))
    (local.set $status (call $spawn_named (i32.const 100) (i32.const 9) (i32.const 200) (i32.const 51)))
    (if (i32.eqz (local.get $status))
      (then
        (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))
        (drop (call $read (i32.const 8) (i32.const 8)))))
    (local.get $status)
    (i64.load (i32.const 8)))

  ;; A record with an unknown type byte: traps.
  (func (export "bad_type") (result i32)
    (call $spawn_named (i32.const 100) (i32.const 9) (i32.const 400) (i32.const 17)))

  ;; 16 bytes of parameters, not a multiple of 17: traps.
  (func (export "bad_length") (result i32)
    (call $spawn_named (i32.const 100) (i32.const 9) (i32.const 400) (i32.const 16)))

  ;; Spawns an export the module does not have: returns 1 (error reported).
  (func (export "missing_export") (result i32)
    (call $spawn_named (i32.const 110) (i32.const 14) (i32.const 0) (i32.const 0)))

  ;; Spawns sum_child with no parameters (it takes 3): returns 1 (error reported).
  (func (export "wrong_arity") (result i32)
    (call $spawn_named (i32.const 100) (i32.const 9) (i32.const 0) (i32.const 0))))
