;; The example application of `lunatic-mp serve` (what it serves when given no config): a counter
;; actor, registered as `counter` version 1.0.0, and `add` to spawn and join.
;;
;;   lunatic-mp request counter 5     -> 5    (adds 5, replies with the new value)
;;   lunatic-mp send counter -- -2    (adds -2; a message with tag 0 gets no reply)
;;   lunatic-mp request counter       -> 3    (empty data adds nothing: reads the value)
;;
;; A message's data is a whole number in ASCII (at most 18 digits, an optional sign, spaces
;; around it are ignored); empty data counts as 0. A message with a non-zero tag is a request:
;; the counter replies to its sender with the same tag (the convention of lunatic_mp.handles),
;; with the new value in ASCII, or with an error text when the data is no number. It reports
;; the lunatic::metrics counters `counter.requests` and `counter.errors` and the gauge
;; `counter.value`, which the server's /metrics shows.
;;
;; Memory: 0 metric names | 64 the error text | 256 a received message | 512..544 digits.
(module
  (import "lunatic::message" "create_data" (func $create (param i64 i64)))
  (import "lunatic::message" "write_data" (func $write (param i32 i32) (result i32)))
  (import "lunatic::message" "read_data" (func $read (param i32 i32) (result i32)))
  (import "lunatic::message" "data_size" (func $data_size (result i64)))
  (import "lunatic::message" "get_tag" (func $get_tag (result i64)))
  (import "lunatic::message" "get_process_id" (func $get_process_id (result i64)))
  (import "lunatic::message" "send" (func $send (param i64) (result i32)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (import "lunatic::metrics" "increment_counter" (func $count (param i32 i32)))
  (import "lunatic::metrics" "gauge" (func $gauge (param i32 i32 f64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "counter.requests")
  (data (i32.const 32) "counter.value")
  (data (i32.const 48) "counter.errors")
  (data (i32.const 64) "error: send a whole number, like 5 or -2")
  (global $value (mut i64) (i64.const 0))
  (global $delta (mut i64) (i64.const 0))

  ;; Parse the `len` bytes at 256 into $delta; 1 if they are a number (or blank), else 0.
  (func $parse (param $len i32) (result i32)
    (local $i i32) (local $end i32) (local $negative i32) (local $c i32) (local $n i64)
    (local.set $i (i32.const 256))
    (local.set $end (i32.add (i32.const 256) (local.get $len)))
    (block $done (loop $next  ;; skip leading whitespace (any byte <= 0x20)
      (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
      (br_if $done (i32.gt_u (i32.load8_u (local.get $i)) (i32.const 32)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (block $done (loop $next  ;; and trailing whitespace
      (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
      (br_if $done (i32.gt_u (i32.load8_u (i32.sub (local.get $end) (i32.const 1))) (i32.const 32)))
      (local.set $end (i32.sub (local.get $end) (i32.const 1)))
      (br $next)))
    (global.set $delta (i64.const 0))
    (if (i32.eq (local.get $i) (local.get $end)) (then (return (i32.const 1))))
    (local.set $c (i32.load8_u (local.get $i)))
    (if (i32.or (i32.eq (local.get $c) (i32.const 45)) (i32.eq (local.get $c) (i32.const 43)))
      (then
        (local.set $negative (i32.eq (local.get $c) (i32.const 45)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))))
    (if (i32.eq (local.get $i) (local.get $end)) (then (return (i32.const 0))))
    (if (i32.gt_u (i32.sub (local.get $end) (local.get $i)) (i32.const 18)) (then (return (i32.const 0))))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
      (local.set $c (i32.sub (i32.load8_u (local.get $i)) (i32.const 48)))
      (if (i32.gt_u (local.get $c) (i32.const 9)) (then (return (i32.const 0))))
      (local.set $n (i64.add (i64.mul (local.get $n) (i64.const 10)) (i64.extend_i32_u (local.get $c))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (global.set $delta
      (select (i64.sub (i64.const 0) (local.get $n)) (local.get $n) (local.get $negative)))
    (i32.const 1))

  ;; Write `v` in decimal so that it ends at 544; where it starts.
  (func $format (param $v i64) (result i32)
    (local $p i32) (local $u i64)
    (local.set $p (i32.const 544))
    (local.set $u
      (select (i64.sub (i64.const 0) (local.get $v)) (local.get $v) (i64.lt_s (local.get $v) (i64.const 0))))
    (loop $next  ;; i64.min negated is itself, and as unsigned its magnitude: div_u gets it right
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i32.store8 (local.get $p)
        (i32.add (i32.const 48) (i32.wrap_i64 (i64.rem_u (local.get $u) (i64.const 10)))))
      (local.set $u (i64.div_u (local.get $u) (i64.const 10)))
      (br_if $next (i64.ne (local.get $u) (i64.const 0))))
    (if (i64.lt_s (local.get $v) (i64.const 0))
      (then
        (local.set $p (i32.sub (local.get $p) (i32.const 1)))
        (i32.store8 (local.get $p) (i32.const 45))))
    (local.get $p))

  ;; Answer a request (tag != 0) with the `len` bytes at `ptr`; a tag-0 message gets nothing.
  (func $reply (param $tag i64) (param $to i64) (param $ptr i32) (param $len i32)
    (if (i64.ne (local.get $tag) (i64.const 0))
      (then
        (call $create (local.get $tag) (i64.extend_i32_u (local.get $len)))
        (drop (call $write (local.get $ptr) (local.get $len)))
        (drop (call $send (local.get $to))))))

  ;; The counter, starting at `start`; it runs until killed.
  (func (export "counter") (param $start i64)
    (local $tag i64) (local $from i64) (local $p i32)
    (global.set $value (local.get $start))
    (call $gauge (i32.const 32) (i32.const 13) (f64.convert_i64_s (global.get $value)))
    (loop $forever
      (if (i32.eqz (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))  ;; data, not a signal
        (then
          (local.set $tag (call $get_tag))
          (local.set $from (call $get_process_id))
          (call $count (i32.const 0) (i32.const 16))
          (if (i32.and
                (i64.le_u (call $data_size) (i64.const 64))
                (call $parse (call $read (i32.const 256) (i32.const 64))))
            (then
              (global.set $value (i64.add (global.get $value) (global.get $delta)))
              (call $gauge (i32.const 32) (i32.const 13) (f64.convert_i64_s (global.get $value)))
              (local.set $p (call $format (global.get $value)))
              (call $reply (local.get $tag) (local.get $from)
                           (local.get $p) (i32.sub (i32.const 544) (local.get $p))))
            (else
              (call $count (i32.const 48) (i32.const 14))
              (call $reply (local.get $tag) (local.get $from) (i32.const 64) (i32.const 40))))))
      (br $forever)))

  ;; a + b: a function to spawn and join (`client.spawn("counter", "add", [2, 3])`).
  (func (export "add") (param $a i64) (param $b i64) (result i64)
    (i64.add (local.get $a) (local.get $b))))
