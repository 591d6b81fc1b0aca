;; hello.wat: the built-in example. The root process spawns four children, each sums the
;; squares of 1..n for its own n, and sends the sum back; the root prints what it receives.
;;
;;   lunatic-mp run lunatic_mp/examples/hello.wat
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "lunatic::process" "spawn" (func $spawn (param i64 i64 i64 i32 i32 i32 i32 i32) (result i32)))
  (import "lunatic::process" "process_id" (func $self (result i64)))
  (import "lunatic::message" "create_data" (func $create (param i64 i64)))
  (import "lunatic::message" "write_data" (func $write (param i32 i32) (result i32)))
  (import "lunatic::message" "read_data" (func $read (param i32 i32) (result i32)))
  (import "lunatic::message" "send" (func $send (param i64) (result i32)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (memory (export "memory") 1)
  ;; 0..8: out pid, 16..40: message buffer, 64..: text, 256..: output line, 512: iovec
  (data (i32.const 64) "sum_squares")
  (data (i32.const 80) "hello from lunatic_mp: n = ")
  (data (i32.const 192) ", sum of squares 1..n = ")

  ;; Append the text at [ptr, ptr+len) to the line at 256; return the new line length.
  (func $append (param $at i32) (param $ptr i32) (param $len i32) (result i32)
    (memory.copy (i32.add (i32.const 256) (local.get $at)) (local.get $ptr) (local.get $len))
    (i32.add (local.get $at) (local.get $len)))

  ;; Append the decimal digits of $value; return the new line length.
  (func $append_u64 (param $at i32) (param $value i64) (result i32)
    (local $digits i32) (local $i i32)
    ;; count digits
    (block $done (loop $more
      (local.set $digits (i32.add (local.get $digits) (i32.const 1)))
      (br_if $done (i64.lt_u (call $pow10 (local.get $digits)) (i64.const 1)))
      (br_if $more (i64.ge_u (local.get $value) (call $pow10 (local.get $digits))))))
    ;; write digits right to left
    (local.set $i (local.get $digits))
    (block $written (loop $digit
      (br_if $written (i32.eqz (local.get $i)))
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (i32.store8 (i32.add (i32.add (i32.const 256) (local.get $at)) (local.get $i))
        (i32.add (i32.const 48) (i32.wrap_i64 (i64.rem_u (local.get $value) (i64.const 10)))))
      (local.set $value (i64.div_u (local.get $value) (i64.const 10)))
      (br $digit)))
    (i32.add (local.get $at) (local.get $digits)))

  (func $pow10 (param $n i32) (result i64) (local $r i64)
    (local.set $r (i64.const 1))
    (block $done (loop $mul
      (br_if $done (i32.eqz (local.get $n)))
      (local.set $r (i64.mul (local.get $r) (i64.const 10)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $mul)))
    (local.get $r))

  (func $print_line (param $len i32)
    (i32.store8 (i32.add (i32.const 256) (local.get $len)) (i32.const 10))
    (i32.store (i32.const 512) (i32.const 256))
    (i32.store (i32.const 516) (i32.add (local.get $len) (i32.const 1)))
    (drop (call $fd_write (i32.const 1) (i32.const 512) (i32.const 1) (i32.const 520))))

  ;; A child: sum the squares of 1..n and send (n, sum) to the parent.
  (func (export "sum_squares") (param $parent i64) (param $n i64)
    (local $i i64) (local $sum i64)
    (block $done (loop $add
      (br_if $done (i64.gt_u (local.get $i) (local.get $n)))
      (local.set $sum (i64.add (local.get $sum) (i64.mul (local.get $i) (local.get $i))))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br $add)))
    (call $create (i64.const 0) (i64.const 16))
    (i64.store (i32.const 16) (local.get $n))
    (i64.store (i32.const 24) (local.get $sum))
    (drop (call $write (i32.const 16) (i32.const 16)))
    (drop (call $send (local.get $parent))))

  ;; Write a 17-byte i64 spawn parameter record at $at.
  (func $param_i64 (param $at i32) (param $value i64)
    (i32.store8 (local.get $at) (i32.const 0x7E))
    (i64.store (i32.add (local.get $at) (i32.const 1)) (local.get $value))
    (i64.store (i32.add (local.get $at) (i32.const 9)) (i64.const 0)))

  (func (export "_start")
    (local $child i32) (local $len i32)
    (block $spawned (loop $spawn_next
      (br_if $spawned (i32.ge_u (local.get $child) (i32.const 4)))
      (call $param_i64 (i32.const 128) (call $self))
      (call $param_i64 (i32.const 145) (i64.mul (i64.const 1000)
        (i64.extend_i32_u (i32.add (local.get $child) (i32.const 1)))))
      (if (call $spawn (i64.const 0) (i64.const -1) (i64.const -1) (i32.const 64) (i32.const 11)
                       (i32.const 128) (i32.const 34) (i32.const 0))
        (then unreachable))
      (local.set $child (i32.add (local.get $child) (i32.const 1)))
      (br $spawn_next)))
    (local.set $child (i32.const 0))
    (block $all (loop $receive_next
      (br_if $all (i32.ge_u (local.get $child) (i32.const 4)))
      (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))
      (drop (call $read (i32.const 16) (i32.const 16)))
      (local.set $len (call $append (i32.const 0) (i32.const 80) (i32.const 27)))
      (local.set $len (call $append_u64 (local.get $len) (i64.load (i32.const 16))))
      (local.set $len (call $append (local.get $len) (i32.const 192) (i32.const 24)))
      (local.set $len (call $append_u64 (local.get $len) (i64.load (i32.const 24))))
      (call $print_line (local.get $len))
      (local.set $child (i32.add (local.get $child) (i32.const 1)))
      (br $receive_next))))
)
