;; Building blocks for tests/test_runtime.py, spread over the workers of a Runtime: processes
;; that compute, trap, park, echo, play ping-pong across workers and check message order.
;;
;; Every message these processes exchange carries one i64 in its first 8 bytes, unless said
;; otherwise. Memory: 0 the i64 read from or written to a message, 16 the tag list of a
;; selective receive, 64+ a message body copied by `echo`.
(module
  (import "lunatic::process" "process_id" (func $self (result i64)))
  (import "lunatic::process" "exists" (func $exists (param i64) (result i32)))
  (import "lunatic::message" "create_data" (func $create (param i64 i64)))
  (import "lunatic::message" "write_data" (func $write (param i32 i32) (result i32)))
  (import "lunatic::message" "read_data" (func $read (param i32 i32) (result i32)))
  (import "lunatic::message" "data_size" (func $data_size (result i64)))
  (import "lunatic::message" "get_tag" (func $get_tag (result i64)))
  (import "lunatic::message" "get_process_id" (func $get_process_id (result i64)))
  (import "lunatic::message" "send" (func $send (param i64) (result i32)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (memory (export "memory") 1)

  ;; --- helpers -----------------------------------------------------------------------------

  ;; Send the i64 `value` to `to` with `tag`.
  (func $send_i64 (param $to i64) (param $tag i64) (param $value i64)
    (call $create (local.get $tag) (i64.const 8))
    (i64.store (i32.const 0) (local.get $value))
    (drop (call $write (i32.const 0) (i32.const 8)))
    (drop (call $send (local.get $to))))

  ;; Wait (forever) for the oldest data message with `tag`; trap unless it carries an i64.
  ;; Returns the i64; the message stays in the scratch area (get_process_id names its sender).
  (func $receive_i64 (param $tag i64) (result i64)
    (i64.store (i32.const 16) (local.get $tag))
    (if (call $receive (i32.const 16) (i32.const 1) (i64.const -1)) (then unreachable))
    (if (i32.ne (call $read (i32.const 0) (i32.const 8)) (i32.const 8)) (then unreachable))
    (i64.load (i32.const 0)))

  ;; --- processes ---------------------------------------------------------------------------

  ;; Returns a + b.
  (func (export "add") (param $a i64) (param $b i64) (result i64)
    (i64.add (local.get $a) (local.get $b)))

  ;; Returns its own pid.
  (func (export "self") (result i64)
    (call $self))

  ;; Traps at once.
  (func (export "fail")
    unreachable)

  ;; Waits for a message with tag 9 and returns the i64 it carries (a process that stays alive
  ;; until the test stops it).
  (func (export "park") (result i64)
    (call $receive_i64 (i64.const 9)))

  ;; Answers `n` messages of any tag: each reply goes to the message's sender, with the tag
  ;; plus one, the message's data and then this process's pid (8 bytes). Returns n.
  (func (export "echo") (param $n i32) (result i32)
    (local $i i32) (local $size i32) (local $tag i64) (local $from i64)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (if (call $receive (i32.const 0) (i32.const 0) (i64.const -1)) (then unreachable))
        (local.set $tag (call $get_tag))
        (local.set $from (call $get_process_id))
        (local.set $size (i32.wrap_i64 (call $data_size)))
        (if (i32.gt_u (local.get $size) (i32.const 60000)) (then unreachable))
        (drop (call $read (i32.const 64) (local.get $size)))
        (call $create (i64.add (local.get $tag) (i64.const 1)) (i64.const 0))
        (drop (call $write (i32.const 64) (local.get $size)))
        (i64.store (i32.const 0) (call $self))
        (drop (call $write (i32.const 0) (i32.const 8)))
        (drop (call $send (local.get $from)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $n))

  ;; The ponger: answers `n` pings (tag 1, carrying v) with v + 1 (tag 2) to whoever sent each
  ;; ping. Returns n.
  (func (export "pong") (param $n i64) (result i64)
    (local $i i64) (local $v i64)
    (block $done
      (loop $next
        (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
        (local.set $v (call $receive_i64 (i64.const 1)))
        (call $send_i64 (call $get_process_id) (i64.const 2) (i64.add (local.get $v) (i64.const 1)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $next)))
    (local.get $n))

  ;; The pinger: `n` round trips with `ponger`, ping i expecting i + 1 back from the ponger
  ;; itself (traps otherwise). Returns the number of round trips completed.
  (func (export "ping") (param $ponger i64) (param $n i64) (result i64)
    (local $i i64)
    (block $done
      (loop $next
        (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
        (call $send_i64 (local.get $ponger) (i64.const 1) (local.get $i))
        (if (i64.ne (call $receive_i64 (i64.const 2)) (i64.add (local.get $i) (i64.const 1)))
          (then unreachable))
        (if (i64.ne (call $get_process_id) (local.get $ponger)) (then unreachable))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $next)))
    (local.get $i))

  ;; Sends 1, 2, ..., n to `to`, one message each (tag 5).
  (func (export "send_seq") (param $to i64) (param $n i64)
    (local $i i64)
    (block $done
      (loop $next
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br_if $done (i64.gt_u (local.get $i) (local.get $n)))
        (call $send_i64 (local.get $to) (i64.const 5) (local.get $i))
        (br $next))))

  ;; Receives `n` messages with tag 5 and checks that the k-th carries k. Returns how many
  ;; arrived in order before the first one out of order (n when all did), and the sender of the
  ;; last one received.
  (func (export "check_seq") (param $n i64) (result i64 i64)
    (local $i i64)
    (block $done
      (loop $next
        (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
        (br_if $done (i64.ne (call $receive_i64 (i64.const 5)) (i64.add (local.get $i) (i64.const 1))))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $next)))
    (local.get $i)
    (call $get_process_id))

  ;; Returns exists(pid): 1 if that process (on any worker) is alive, 0 if not.
  (func (export "exists_of") (param $pid i64) (result i32)
    (call $exists (local.get $pid))))
