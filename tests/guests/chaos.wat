;; Streams of sequence numbers between processes, for the chaos test that kills workers again and
;; again while they run (tests/test_chaos.py).
;;
;; A producer sends its own pid (tag 3) so that its consumer can monitor it, then 1, 2, 3, ...
;; (tag 0, 8 bytes each) until it is told to stop (any message with tag 9), pausing up to 1 ms
;; for that message after every `every` values. It returns how many values it sent.
;; A consumer checks that the values come exactly once and in order, and stops when its producer
;; is dead and everything the producer sent has arrived (ProcessDied comes after the messages).
;;
;; A watched process parks forever and outlives the processes linked to it.
;;
;; Memory: 0 outgoing value, 8 incoming value, 16 report buffer, 24 tag filter.
(module
  (import "lunatic::process" "process_id" (func $self (result i64)))
  (import "lunatic::process" "monitor" (func $monitor (param i64)))
  (import "lunatic::process" "die_when_link_dies" (func $die_when_link_dies (param i32)))
  (import "lunatic::message" "create_data" (func $create (param i64 i64)))
  (import "lunatic::message" "write_data" (func $write (param i32 i32) (result i32)))
  (import "lunatic::message" "read_data" (func $read (param i32 i32) (result i32)))
  (import "lunatic::message" "send" (func $send (param i64) (result i32)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (memory (export "memory") 1)

  ;; Send `value` as an 8-byte message with `tag` to `pid`.
  (func $send_value (param $pid i64) (param $tag i64) (param $value i64)
    (call $create (local.get $tag) (i64.const 8))
    (i64.store (i32.const 0) (local.get $value))
    (drop (call $write (i32.const 0) (i32.const 8)))
    (drop (call $send (local.get $pid))))

  ;; Sends its pid (tag 3), then 1, 2, ... (tag 0) to `consumer` until a tag-9 message comes.
  ;; Returns how many values it sent.
  (func (export "produce") (param $consumer i64) (param $every i64) (result i64)
    (local $i i64)
    (call $send_value (local.get $consumer) (i64.const 3) (call $self))
    (i64.store (i32.const 24) (i64.const 9))
    (block $stopped
      (loop $next
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (call $send_value (local.get $consumer) (i64.const 0) (local.get $i))
        (if (i64.eqz (i64.rem_u (local.get $i) (local.get $every)))
          (then
            (br_if $stopped
              (i32.eqz (call $receive (i32.const 24) (i32.const 1) (i64.const 1))))))
        (br $next)))
    (local.get $i))

  ;; Waits for its producer's pid and monitors it, then takes tag-0 messages (values, or the
  ;; producer's ProcessDied) until the producer is dead or a value is not the next one. Reports
  ;; its own pid to `probe` (tag 5) once the first value has arrived.
  ;; Returns (values received in order, the first value out of order or 0).
  (func (export "consume") (param $probe i64) (result i64 i64)
    (local $count i64) (local $value i64)
    (i64.store (i32.const 24) (i64.const 3))
    (if (call $receive (i32.const 24) (i32.const 1) (i64.const -1)) (then unreachable))
    (drop (call $read (i32.const 8) (i32.const 8)))
    (call $monitor (i64.load (i32.const 8)))
    (i64.store (i32.const 24) (i64.const 0))
    (block $done
      (loop $next
        ;; 0: a value; 2: the producer died and everything it sent has been taken
        (br_if $done (call $receive (i32.const 24) (i32.const 1) (i64.const -1)))
        (if (i32.ne (call $read (i32.const 8) (i32.const 8)) (i32.const 8)) (then unreachable))
        (local.set $value (i64.load (i32.const 8)))
        (if (i64.ne (local.get $value) (i64.add (local.get $count) (i64.const 1)))
          (then (return (local.get $count) (local.get $value))))
        (local.set $count (local.get $value))
        (if (i64.eq (local.get $count) (i64.const 1))
          (then
            (call $create (i64.const 5) (i64.const 8))
            (i64.store (i32.const 16) (call $self))
            (drop (call $write (i32.const 16) (i32.const 8)))
            (drop (call $send (local.get $probe)))))
        (br $next)))
    (local.get $count) (i64.const 0))

  ;; Parks forever, surviving the failures of the processes linked to it (their LinkDied
  ;; messages wait unread in its mailbox).
  (func (export "park")
    (call $die_when_link_dies (i32.const 0))
    (i64.store (i32.const 24) (i64.const -999))
    (drop (call $receive (i32.const 24) (i32.const 1) (i64.const -1)))
    unreachable))
