;; A registry lookup made right after a death notice must not find the dead process
;; (tests/test_reliability.py). Each target registers itself as "race-NNNN" and waits for a
;; message; each watcher monitors a target and, as soon as the target's ProcessDied arrives,
;; looks the name up.
;;
;; Memory: 0 node slot, 8 pid slot, 16 report buffer, 24 tag filter, 64 the name (9 bytes).
(module
  (import "lunatic::registry" "put" (func $put (param i32 i32 i64 i64)))
  (import "lunatic::registry" "get" (func $get (param i32 i32 i32 i32) (result i32)))
  (import "lunatic::process" "process_id" (func $self (result i64)))
  (import "lunatic::process" "monitor" (func $monitor (param i64)))
  (import "lunatic::message" "create_data" (func $create (param i64 i64)))
  (import "lunatic::message" "write_data" (func $write (param i32 i32) (result i32)))
  (import "lunatic::message" "send" (func $send (param i64) (result i32)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "race-0000")

  ;; The name "race-NNNN" for `i` (its last four decimal digits) at 64.
  (func $name (param $i i64)
    (local $at i32)
    (local.set $at (i32.const 72))
    (loop $digit
      (i32.store8 (local.get $at)
        (i32.add (i32.const 48) (i32.wrap_i64 (i64.rem_u (local.get $i) (i64.const 10)))))
      (local.set $i (i64.div_u (local.get $i) (i64.const 10)))
      (local.set $at (i32.sub (local.get $at) (i32.const 1)))
      (br_if $digit (i32.ge_u (local.get $at) (i32.const 69)))))

  ;; Send this process's pid to `probe` with tag 4.
  (func $ready (param $probe i64)
    (call $create (i64.const 4) (i64.const 8))
    (i64.store (i32.const 16) (call $self))
    (drop (call $write (i32.const 16) (i32.const 8)))
    (drop (call $send (local.get $probe))))

  ;; Registers itself as race-`i`, says so, and returns when any message comes.
  (func (export "target") (param $i i64) (param $probe i64)
    (call $name (local.get $i))
    (call $put (i32.const 64) (i32.const 9) (i64.const 0) (call $self))
    (call $ready (local.get $probe))
    (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1))))

  ;; Monitors `pid`, says so, waits for its ProcessDied and looks race-`i` up at once.
  ;; Returns (receive code, get's result: 0 found / 1 not found, the pid found or 0).
  (func (export "watch") (param $i i64) (param $pid i64) (param $probe i64) (result i32 i32 i64)
    (local $code i32) (local $found i32)
    (call $name (local.get $i))
    (call $monitor (local.get $pid))
    (call $ready (local.get $probe))
    (local.set $code (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))
    (i64.store (i32.const 8) (i64.const 0))
    (local.set $found (call $get (i32.const 64) (i32.const 9) (i32.const 0) (i32.const 8)))
    (local.get $code) (local.get $found) (i64.load (i32.const 8))))
