;; Producer/consumer pairs that check message order, for tests that kill workers under load,
;; and the idle or busy processes of a runtime being shut down.
;;
;; A producer first sends its own pid (tag 3) so that its consumer can monitor it, then the values
;; 1..n (tag 0, 8 bytes each). A consumer checks that the values come exactly in order and stops at
;; n, at the first value out of order, or when its producer has died and everything it sent has
;; arrived (the producer's ProcessDied comes after its messages).
;;
;; Memory: 0 outgoing value, 8 incoming value, 16 report buffer, 24 tag filters.
(module
  (import "lunatic::process" "process_id" (func $self (result i64)))
  (import "lunatic::process" "monitor" (func $monitor (param i64)))
  (import "lunatic::process" "sleep_ms" (func $sleep (param i64)))
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

  ;; Sends its pid (tag 3), then 1..n (tag 0) to `consumer`, sleeping 1 ms after every `every`
  ;; values. Returns n.
  (func (export "produce") (param $consumer i64) (param $n i64) (param $every i64) (result i64)
    (local $i i64)
    (call $send_value (local.get $consumer) (i64.const 3) (call $self))
    (block $done
      (loop $next
        (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (call $send_value (local.get $consumer) (i64.const 0) (local.get $i))
        (if (i64.eqz (i64.rem_u (local.get $i) (local.get $every)))
          (then (call $sleep (i64.const 1))))
        (br $next)))
    (local.get $i))

  ;; Waits for its producer's pid and monitors it, then takes tag-0 messages (values, or the
  ;; producer's ProcessDied) until n values have come, one is out of order, or the producer is
  ;; dead. Reports its own pid to `probe` (tag 5) once the first value has arrived.
  ;; Returns (values received in order, the first value out of order or 0).
  (func (export "consume") (param $n i64) (param $probe i64) (result i64 i64)
    (local $count i64) (local $value i64)
    (i64.store (i32.const 24) (i64.const 3))
    (if (call $receive (i32.const 24) (i32.const 1) (i64.const -1)) (then unreachable))
    (drop (call $read (i32.const 8) (i32.const 8)))
    (call $monitor (i64.load (i32.const 8)))
    (i64.store (i32.const 24) (i64.const 0))
    (block $done
      (loop $next
        (br_if $done (i64.ge_u (local.get $count) (local.get $n)))
        ;; 0: a value; 2: the producer died and everything it sent has been taken
        (br_if $done (call $receive (i32.const 24) (i32.const 1) (i64.const -1)))
        (if (i32.ne (call $read (i32.const 8) (i32.const 8)) (i32.const 8)) (then unreachable))
        (local.set $value (i64.load (i32.const 8)))
        (if (i64.ne (local.get $value) (i64.add (local.get $count) (i64.const 1)))
          (then (return (local.get $count) (local.get $value))))
        (local.set $count (local.get $value))
        (if (i64.eq (local.get $count) (i64.const 1))
          (then (call $send_value (local.get $probe) (i64.const 5) (call $self))))
        (br $next)))
    (local.get $count) (i64.const 0))

  ;; Runs forever without a host call.
  (func (export "spin")
    (loop $forever (br $forever)))

  ;; Receives forever.
  (func (export "receive_forever")
    (loop $forever
      (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))
      (br $forever)))

  ;; Sends `pid` an 8-byte message forever (tag 0), sleeping 1 ms every 100 messages.
  (func (export "send_forever") (param $pid i64)
    (local $i i64)
    (loop $forever
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (call $send_value (local.get $pid) (i64.const 0) (local.get $i))
      (if (i64.eqz (i64.rem_u (local.get $i) (i64.const 100)))
        (then (call $sleep (i64.const 1))))
      (br $forever))))
