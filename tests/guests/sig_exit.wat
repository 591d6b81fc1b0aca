;; How processes end: normally with a result, trapping, exiting through WASI, or parked until
;; someone kills them.
(module $sig_exit
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (import "lunatic::message" "data_size" (func $data_size (result i64)))
  (import "lunatic::message" "get_tag" (func $get_tag (result i64)))
  (memory (export "memory") 1)

  ;; Returns 42 and 7 (a normal end with a two-value result).
  (func (export "answer") (result i64 i32) (i64.const 42) (i32.const 7))

  ;; Returns nothing (a normal end with an empty result).
  (func (export "nothing"))

  ;; Traps with `unreachable`.
  (func $trap (export "trap") unreachable)

  ;; Traps with an integer division by zero.
  (func (export "divide_by_zero") (result i32)
    (i32.div_s (i32.const 1) (i32.const 0)))

  ;; Exits through WASI with `code`; never returns.
  (func (export "exit") (param $code i32)
    (call $proc_exit (local.get $code))
    unreachable)

  ;; Waits forever for a message with tag -999, which nobody sends.
  (func (export "park")
    (i64.store (i32.const 0) (i64.const -999))
    (drop (call $receive (i32.const 0) (i32.const 1) (i64.const -1)))
    unreachable)

  ;; Receives one message (any tag) and returns its receive code, tag and data size.
  (func (export "receive_one") (result i32 i64 i64)
    (call $receive (i32.const 0) (i32.const 0) (i64.const -1))
    (call $get_tag)
    (call $data_size))

  ;; Takes an i64 and an i32 and returns them swapped (for signature checks).
  (func (export "pair") (param $a i64) (param $b i32) (result i32 i64)
    (local.get $b) (local.get $a)))
