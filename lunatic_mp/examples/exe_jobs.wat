;; Jobs for tests/test_executor.py and the fanout scenario of `lunatic-mp bench` (lunatic_mp.executor.WasmExecutor).
;;
;; Number jobs take i64 parameters and return their results. The bytes jobs follow the
;; executor's convention: the job's input is its first message; the answer is one message sent
;; back to that message's sender with that message's tag.
;; Memory: 0 an outgoing i64, 8 the tag list of a selective receive, 1024+ a bytes job's data.
(module
  (import "lunatic::process" "process_id" (func $self (result i64)))
  (import "lunatic::message" "create_data" (func $create (param i64 i64)))
  (import "lunatic::message" "write_data" (func $write (param i32 i32) (result i32)))
  (import "lunatic::message" "read_data" (func $read (param i32 i32) (result i32)))
  (import "lunatic::message" "data_size" (func $data_size (result i64)))
  (import "lunatic::message" "get_tag" (func $get_tag (result i64)))
  (import "lunatic::message" "get_process_id" (func $get_process_id (result i64)))
  (import "lunatic::message" "send" (func $send (param i64) (result i32)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (memory (export "memory") 2)

  ;; --- number jobs -------------------------------------------------------------------------

  ;; Returns x * x.
  (func (export "square") (param $x i64) (result i64)
    (i64.mul (local.get $x) (local.get $x)))

  ;; Returns (a / b, a % b); traps (division by zero) when b is 0.
  (func (export "divmod") (param $a i64) (param $b i64) (result i64 i64)
    (i64.div_s (local.get $a) (local.get $b))
    (i64.rem_s (local.get $a) (local.get $b)))

  ;; Returns nothing.
  (func (export "nothing"))

  ;; Traps through two nested calls (a guest backtrace with several frames).
  (func $inner unreachable)
  (func $outer (call $inner))
  (func (export "fail") (call $outer))

  ;; Counts down from n (about 4 instructions a turn); returns n. CPU-bound work.
  (func (export "spin") (param $n i64) (result i64)
    (local $i i64)
    (local.set $i (local.get $n))
    (block $done
      (loop $next
        (br_if $done (i64.eqz (local.get $i)))
        (local.set $i (i64.sub (local.get $i) (i64.const 1)))
        (br $next)))
    (local.get $n))

  ;; Tells `host` it runs (tag 42, carrying its own pid), then waits for a message with tag 9
  ;; and returns the i64 it carries: a job that runs until the test lets it end.
  (func (export "checkin_park") (param $host i64) (result i64)
    (call $create (i64.const 42) (i64.const 8))
    (i64.store (i32.const 0) (call $self))
    (drop (call $write (i32.const 0) (i32.const 8)))
    (drop (call $send (local.get $host)))
    (i64.store (i32.const 8) (i64.const 9))
    (if (call $receive (i32.const 8) (i32.const 1) (i64.const -1)) (then unreachable))
    (drop (call $read (i32.const 0) (i32.const 8)))
    (i64.load (i32.const 0)))

  ;; --- bytes jobs --------------------------------------------------------------------------

  ;; Reads its input (at most 64 KiB - 1024 bytes) and answers with the bytes reversed.
  (func (export "reverse") (result i64)
    (local $size i32) (local $i i32) (local $j i32) (local $byte i32) (local $from i64)
    (if (call $receive (i32.const 0) (i32.const 0) (i64.const -1)) (then unreachable))
    (local.set $size (i32.wrap_i64 (call $data_size)))
    (if (i32.gt_u (local.get $size) (i32.const 130048)) (then unreachable))
    (drop (call $read (i32.const 1024) (local.get $size)))
    (local.set $i (i32.const 1024))
    (local.set $j (i32.add (i32.const 1023) (local.get $size)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_s (local.get $i) (local.get $j)))
        (local.set $byte (i32.load8_u (local.get $i)))
        (i32.store8 (local.get $i) (i32.load8_u (local.get $j)))
        (i32.store8 (local.get $j) (local.get $byte))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (local.set $j (i32.sub (local.get $j) (i32.const 1)))
        (br $next)))
    (local.set $from (call $get_process_id))  ;; the sender: before create_data replaces the message
    (call $create (call $get_tag) (i64.extend_i32_u (local.get $size)))
    (drop (call $write (i32.const 1024) (local.get $size)))
    (drop (call $send (local.get $from)))
    (i64.extend_i32_u (local.get $size)))

  ;; Reads its input and ends without answering (a broken bytes job).
  (func (export "no_reply")
    (if (call $receive (i32.const 0) (i32.const 0) (i64.const -1)) (then unreachable)))

  ;; Answers its input with `n` copies of byte 7 (a big reply), n <= 128 KiB - 1024.
  (func (export "fill") (param $n i64)
    (local $from i64)
    (if (call $receive (i32.const 0) (i32.const 0) (i64.const -1)) (then unreachable))
    (memory.fill (i32.const 1024) (i32.const 7) (i32.wrap_i64 (local.get $n)))
    (local.set $from (call $get_process_id))  ;; the sender: before create_data replaces the message
    (call $create (call $get_tag) (local.get $n))
    (drop (call $write (i32.const 1024) (i32.wrap_i64 (local.get $n))))
    (drop (call $send (local.get $from)))))
