;; Message data: writing, reading, seeking, size and tag; messages from the host; a send to a
;; dead process; a received message extended with more data or with a module, and sent on.
(module
  (import "lunatic::process" "process_id" (func $self (result i64)))
  (import "lunatic::process" "compile_module" (func $compile (param i32 i32 i32) (result i32)))
  (import "lunatic::message" "push_module" (func $push_module (param i64) (result i64)))
  (import "lunatic::message" "take_module" (func $take_module (param i64) (result i64)))
  (import "lunatic::message" "create_data" (func $create (param i64 i64)))
  (import "lunatic::message" "write_data" (func $write (param i32 i32) (result i32)))
  (import "lunatic::message" "read_data" (func $read (param i32 i32) (result i32)))
  (import "lunatic::message" "seek_data" (func $seek (param i64)))
  (import "lunatic::message" "get_tag" (func $get_tag (result i64)))
  (import "lunatic::message" "data_size" (func $data_size (result i64)))
  (import "lunatic::message" "send" (func $send (param i64) (result i32)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "hello world")
  (data (i32.const 200) "\00asm\01\00\00\00\05\03\01\00\01\07\0a\01\06memory\02\00")
  ;; memory: 0 outgoing i64 | 8 incoming i64 | 16 a module id | 100 "hello world" | 200 a
  ;; module that only exports its memory (25 bytes) | 300.. zeroed read buffers

  ;; Build a message tagged 42 from two writes ("hello", " world"), send it to ourselves, receive
  ;; it and read it back. Returns, in order:
  ;;   write counts (5, 6), tag (42), data size (11),
  ;;   read 5 -> (count 5, bytes at 300 as an i64 = "hello"),
  ;;   read 100 -> (count 6: only what is left, bytes at 308 = " world"),
  ;;   read 8 at the end -> count 0,
  ;;   seek 6, read 5 -> (count 5, bytes at 324 = "world"),
  ;;   seek 1000 (past the end), read 8 -> count 0.
  (func (export "roundtrip")
    (result i32 i32 i64 i64 i32 i64 i32 i64 i32 i32 i64 i32)
    (call $create (i64.const 42) (i64.const 0))
    (call $write (i32.const 100) (i32.const 5))
    (call $write (i32.const 105) (i32.const 6))
    (drop (call $send (call $self)))
    (if (call $receive (i32.const 0) (i32.const 0) (i64.const -1)) (then unreachable))
    (call $get_tag)
    (call $data_size)
    (call $read (i32.const 300) (i32.const 5))
    (i64.load (i32.const 300))
    (call $read (i32.const 308) (i32.const 100))
    (i64.load (i32.const 308))
    (call $read (i32.const 316) (i32.const 8))
    (call $seek (i64.const 6))
    (call $read (i32.const 324) (i32.const 5))
    (i64.load (i32.const 324))
    (call $seek (i64.const 1000))
    (call $read (i32.const 332) (i32.const 8)))

  ;; Wait for one message (from the host); return (its tag, its size, its first 8 bytes as an i64).
  (func (export "from_host") (result i64 i64 i64)
    (if (call $receive (i32.const 0) (i32.const 0) (i64.const -1)) (then unreachable))
    (call $get_tag)
    (call $data_size)
    (drop (call $read (i32.const 8) (i32.const 8)))
    (i64.load (i32.const 8)))

  ;; Send a message to `pid` (a dead process), then one to ourselves. Returns (the first send's
  ;; code (0), the receive's code (0), the value received (123)).
  (func (export "send_to_dead") (param $pid i64) (result i32 i32 i64)
    (call $create (i64.const 5) (i64.const 8))
    (i64.store (i32.const 0) (i64.const 321))
    (drop (call $write (i32.const 0) (i32.const 8)))
    (call $send (local.get $pid))
    (call $create (i64.const 6) (i64.const 8))
    (i64.store (i32.const 0) (i64.const 123))
    (drop (call $write (i32.const 0) (i32.const 8)))
    (drop (call $send (call $self)))
    (call $receive (i32.const 0) (i32.const 0) (i64.const -1))
    (drop (call $read (i32.const 8) (i32.const 8)))
    (i64.load (i32.const 8)))

  ;; "hello" to ourselves; the received message (held inline by the host) gets " world" written
  ;; onto it and is sent on, received again and read whole. Returns (its tag (7), its size (11),
  ;; the count read (11), its first 8 bytes as an i64 = "hello wo").
  (func $hello_received
    (call $create (i64.const 7) (i64.const 0))
    (drop (call $write (i32.const 100) (i32.const 5)))
    (drop (call $send (call $self)))
    (if (call $receive (i32.const 0) (i32.const 0) (i64.const -1)) (then unreachable)))
  (func (export "extend_received") (result i64 i64 i32 i64)
    (call $hello_received)
    (drop (call $write (i32.const 105) (i32.const 6)))
    (drop (call $send (call $self)))
    (if (call $receive (i32.const 0) (i32.const 0) (i64.const -1)) (then unreachable))
    (call $get_tag)
    (call $data_size)
    (call $read (i32.const 300) (i32.const 11))
    (i64.load (i32.const 300)))

  ;; The same "hello", with a module pushed onto the received message before it is sent on.
  ;; Returns (push_module's index (0), the size after the round trip (5), take_module(0) >= 0).
  (func (export "attach_to_received") (result i64 i64 i32)
    (call $hello_received)
    (if (call $compile (i32.const 200) (i32.const 25) (i32.const 16)) (then unreachable))
    (call $push_module (i64.load (i32.const 16)))
    (drop (call $send (call $self)))
    (if (call $receive (i32.const 0) (i32.const 0) (i64.const -1)) (then unreachable))
    (call $data_size)
    (i64.ge_s (call $take_module (i64.const 0)) (i64.const 0))))
