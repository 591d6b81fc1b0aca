;; HTTP handlers for tests/test_http.py, in the guest convention of lunatic_mp.http: each
;; export receives one request message and (mostly) replies to its sender with its tag.
;;
;; The echo reply: status 200, header x-echo: yes, body = this process's pid (u64, little-endian)
;; followed by the whole request message as it arrived.
;;
;; Memory: 0 reply head (25 bytes) | 32 the pid | 64 "bad" | 1024.. the request.
(module
  (import "lunatic::message" "create_data" (func $create (param i64 i64)))
  (import "lunatic::message" "write_data" (func $write (param i32 i32) (result i32)))
  (import "lunatic::message" "read_data" (func $read (param i32 i32) (result i32)))
  (import "lunatic::message" "data_size" (func $data_size (result i64)))
  (import "lunatic::message" "get_tag" (func $get_tag (result i64)))
  (import "lunatic::message" "get_process_id" (func $get_process_id (result i64)))
  (import "lunatic::message" "send" (func $send (param i64) (result i32)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (import "lunatic::process" "process_id" (func $process_id (result i64)))
  (import "lunatic::process" "sleep_ms" (func $sleep (param i64)))
  (memory (export "memory") 2)
  ;; status 200, one header, "x-echo" (6), "yes" (3)
  (data (i32.const 0) "\c8\00\00\00\01\00\00\00\06\00\00\00x-echo\03\00\00\00yes")
  (data (i32.const 64) "bad")

  ;; Echo the received request back to its sender.
  (func $answer
    (local $size i32) (local $sender i64) (local $tag i64)
    (local.set $size (i32.wrap_i64 (call $data_size)))
    (drop (call $read (i32.const 1024) (local.get $size)))
    (local.set $sender (call $get_process_id))
    (local.set $tag (call $get_tag))
    (i64.store (i32.const 32) (call $process_id))
    (call $create (local.get $tag) (i64.extend_i32_u (i32.add (local.get $size) (i32.const 33))))
    (drop (call $write (i32.const 0) (i32.const 25)))
    (drop (call $write (i32.const 32) (i32.const 8)))
    (drop (call $write (i32.const 1024) (local.get $size)))
    (drop (call $send (local.get $sender))))

  (func $wait (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1))))

  (func (export "echo") (call $wait) (call $answer))

  ;; A long-lived process (a named route's): echo every data message, forever.
  (func (export "serve")
    (loop $next
      (if (i32.eqz (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))
        (then (call $answer)))
      (br $next)))

  (func (export "trap") (call $wait) (unreachable))

  ;; Never replies: waits for a message with tag 7, which never comes.
  (func (export "hang")
    (call $wait)
    (i64.store (i32.const 48) (i64.const 7))
    (drop (call $receive (i32.const 48) (i32.const 1) (i64.const -1))))

  ;; Replies, then goes on waiting (for a tag 7 that never comes).
  (func (export "linger")
    (call $wait)
    (call $answer)
    (i64.store (i32.const 48) (i64.const 7))
    (drop (call $receive (i32.const 48) (i32.const 1) (i64.const -1))))

  (func (export "slow") (call $wait) (call $sleep (i64.const 1000)) (call $answer))

  ;; A reply that is no reply: 3 bytes.
  (func (export "garbage")
    (local $sender i64)
    (call $wait)
    (local.set $sender (call $get_process_id))
    (call $create (call $get_tag) (i64.const 3))
    (drop (call $write (i32.const 64) (i32.const 3)))
    (drop (call $send (local.get $sender))))

  ;; Ends without a reply.
  (func (export "quiet") (call $wait))
)
