;; Selective receive: a tag-filtered receive takes the oldest matching message and leaves the
;; others in place. Every message carries one i64 value.
(module
  (import "lunatic::process" "process_id" (func $self (result i64)))
  (import "lunatic::message" "create_data" (func $create (param i64 i64)))
  (import "lunatic::message" "write_data" (func $write (param i32 i32) (result i32)))
  (import "lunatic::message" "read_data" (func $read (param i32 i32) (result i32)))
  (import "lunatic::message" "get_tag" (func $get_tag (result i64)))
  (import "lunatic::message" "send" (func $send (param i64) (result i32)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (memory (export "memory") 1)
  ;; memory: 0 outgoing value | 8 incoming value | 16 tag list for `wait_tag`
  ;; 200: tag lists: [2] at 200, [3] at 208, [2, 3] at 200 (count 2), [9] at 216
  (data (i32.const 200) "\02\00\00\00\00\00\00\00\03\00\00\00\00\00\00\00\09\00\00\00\00\00\00\00")

  ;; Send ourselves `value` tagged `tag`.
  (func $put (param $tag i64) (param $value i64)
    (call $create (local.get $tag) (i64.const 8))
    (i64.store (i32.const 0) (local.get $value))
    (drop (call $write (i32.const 0) (i32.const 8)))
    (drop (call $send (call $self))))

  ;; Receive (timeout 0) with a tag list; it must find a data message; return its value.
  (func $take (param $tags i32) (param $count i32) (result i64)
    (if (call $receive (local.get $tags) (local.get $count) (i64.const 0)) (then unreachable))
    (drop (call $read (i32.const 8) (i32.const 8)))
    (i64.load (i32.const 8)))

  ;; Append a value to a base-100 packed list.
  (func $pack (param $acc i64) (param $value i64) (result i64)
    (i64.add (i64.mul (local.get $acc) (i64.const 100)) (local.get $value)))

  ;; Mailbox (tag:value) = 1:1 2:2 1:3 3:4 2:5. Take tag 2, tag 3, tags {2,3}, then any, any:
  ;; values 2 4 5 1 3. Returns (the packed values 204050103, the code of a receive for tag 9
  ;; in between (9027: nothing matched), the code of a final receive on the empty mailbox (9027)).
  (func (export "pick") (result i64 i32 i32)
    (local $acc i64) (local $miss i32)
    (call $put (i64.const 1) (i64.const 1))
    (call $put (i64.const 2) (i64.const 2))
    (call $put (i64.const 1) (i64.const 3))
    (call $put (i64.const 3) (i64.const 4))
    (call $put (i64.const 2) (i64.const 5))
    (local.set $acc (call $take (i32.const 200) (i32.const 1)))
    (local.set $acc (call $pack (local.get $acc) (call $take (i32.const 208) (i32.const 1))))
    (local.set $miss (call $receive (i32.const 216) (i32.const 1) (i64.const 0)))
    (local.set $acc (call $pack (local.get $acc) (call $take (i32.const 200) (i32.const 2))))
    (local.set $acc (call $pack (local.get $acc) (call $take (i32.const 0) (i32.const 0))))
    (local.set $acc (call $pack (local.get $acc) (call $take (i32.const 0) (i32.const 0))))
    (local.get $acc)
    (local.get $miss)
    (call $receive (i32.const 0) (i32.const 0) (i64.const 0)))

  ;; Block until a message tagged `tag` arrives; then take whatever else is there (timeout 0).
  ;; Returns (first tag, first value, second tag); second tag is -1 if nothing else was there.
  (func (export "wait_tag") (param $tag i64) (result i64 i64 i64)
    (local $first i64) (local $value i64)
    (i64.store (i32.const 16) (local.get $tag))
    (if (call $receive (i32.const 16) (i32.const 1) (i64.const -1)) (then unreachable))
    (local.set $first (call $get_tag))
    (drop (call $read (i32.const 8) (i32.const 8)))
    (local.set $value (i64.load (i32.const 8)))
    (local.get $first)
    (local.get $value)
    (if (result i64) (call $receive (i32.const 0) (i32.const 0) (i64.const 0))
      (then (i64.const -1))
      (else (call $get_tag)))))
