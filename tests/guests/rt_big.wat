;; Messages far larger than a Runtime's rings (the tests use 64 KiB rings and 1 MiB messages).
;;
;; The checksum of a message is (size, a, b) with a the sum of its bytes and b the sum of the
;; running values of a (Fletcher's, without modulus): b depends on the order of the bytes.
;; Memory: 0 the tag list of a selective receive, 65536+ the message body (up to 2 MiB).
(module
  (import "lunatic::message" "create_data" (func $create (param i64 i64)))
  (import "lunatic::message" "write_data" (func $write (param i32 i32) (result i32)))
  (import "lunatic::message" "read_data" (func $read (param i32 i32) (result i32)))
  (import "lunatic::message" "data_size" (func $data_size (result i64)))
  (import "lunatic::message" "get_process_id" (func $get_process_id (result i64)))
  (import "lunatic::message" "send" (func $send (param i64) (result i32)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (memory (export "memory") 40)

  ;; The checksum (a, b) of the `size` bytes at 65536.
  (func $checksum (param $size i32) (result i64 i64)
    (local $i i32) (local $a i64) (local $b i64)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $size)))
        (local.set $a (i64.add (local.get $a)
          (i64.load8_u (i32.add (i32.const 65536) (local.get $i)))))
        (local.set $b (i64.add (local.get $b) (local.get $a)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $a) (local.get $b))

  ;; Wait (forever) for a data message with tag 3 and copy its body to 65536; its size.
  (func $receive_body (result i32)
    (local $size i32)
    (i64.store (i32.const 0) (i64.const 3))
    (if (call $receive (i32.const 0) (i32.const 1) (i64.const -1)) (then unreachable))
    (local.set $size (i32.wrap_i64 (call $data_size)))
    (if (i32.gt_u (local.get $size) (i32.const 0x200000)) (then unreachable))
    (if (i32.ne (call $read (i32.const 65536) (local.get $size)) (local.get $size)) (then unreachable))
    (local.get $size))

  ;; Fills `size` bytes with byte i = (i * 31 + i / 256 + 7) mod 256 and sends them to `to`
  ;; (tag 3). Returns their checksum (size, a, b).
  (func (export "fill_and_send") (param $to i64) (param $size i32) (result i64 i64 i64)
    (local $i i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $size)))
        (i32.store8 (i32.add (i32.const 65536) (local.get $i))
          (i32.add (i32.add (i32.mul (local.get $i) (i32.const 31))
                            (i32.shr_u (local.get $i) (i32.const 8)))
                   (i32.const 7)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (call $create (i64.const 3) (i64.extend_i32_u (local.get $size)))
    (drop (call $write (i32.const 65536) (local.get $size)))
    (drop (call $send (local.get $to)))
    (i64.extend_i32_u (local.get $size))
    (call $checksum (local.get $size)))

  ;; Receives one message with tag 3. Returns its checksum (size, a, b).
  (func (export "receive_sum") (result i64 i64 i64)
    (local $size i32)
    (local.set $size (call $receive_body))
    (i64.extend_i32_u (local.get $size))
    (call $checksum (local.get $size)))

  ;; Receives one message with tag 3 and sends its body back to its sender (tag 4). Returns its
  ;; checksum (size, a, b).
  (func (export "echo_big") (result i64 i64 i64)
    (local $size i32) (local $from i64)
    (local.set $size (call $receive_body))
    (local.set $from (call $get_process_id))  ;; before create_data replaces the message
    (call $create (i64.const 4) (i64.extend_i32_u (local.get $size)))
    (drop (call $write (i32.const 65536) (local.get $size)))
    (drop (call $send (local.get $from)))
    (i64.extend_i32_u (local.get $size))
    (call $checksum (local.get $size))))
