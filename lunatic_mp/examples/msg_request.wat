;; Request/reply with send_receive_skip_search.
;; A request carries (reply-to pid, x); the server answers with the request's tag and 2*x.
(module
  (import "lunatic::process" "process_id" (func $self (result i64)))
  (import "lunatic::message" "create_data" (func $create (param i64 i64)))
  (import "lunatic::message" "write_data" (func $write (param i32 i32) (result i32)))
  (import "lunatic::message" "read_data" (func $read (param i32 i32) (result i32)))
  (import "lunatic::message" "get_tag" (func $get_tag (result i64)))
  (import "lunatic::message" "send" (func $send (param i64) (result i32)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (import "lunatic::message" "send_receive_skip_search"
    (func $request (param i64 i64 i64) (result i32)))
  (memory (export "memory") 1)
  ;; memory: 0 outgoing (pid, x) | 16 incoming | 32 outgoing reply | 48 tag list for `sink`
  (data (i32.const 48) "\39\30\00\00\00\00\00\00") ;; tag 12345

  ;; Send `to` one i64 `value` tagged `tag`.
  (func $put (param $to i64) (param $tag i64) (param $value i64)
    (call $create (local.get $tag) (i64.const 8))
    (i64.store (i32.const 32) (local.get $value))
    (drop (call $write (i32.const 32) (i32.const 8)))
    (drop (call $send (local.get $to))))

  ;; Receive any message (timeout 0, it must be there) and return its first i64.
  (func $next_value (result i64)
    (if (call $receive (i32.const 0) (i32.const 0) (i64.const 0)) (then unreachable))
    (drop (call $read (i32.const 16) (i32.const 8)))
    (i64.load (i32.const 16)))

  ;; The server: forever, answer a request first with noise (tag 0, value 1), then with the
  ;; request's tag and 2*x. The noise shows that the client's wait ignores other tags.
  (func (export "server")
    (local $tag i64)
    (loop $forever
      (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))
      (local.set $tag (call $get_tag))
      (drop (call $read (i32.const 16) (i32.const 16)))
      (call $put (i64.load (i32.const 16)) (i64.const 0) (i64.const 1))
      (call $put (i64.load (i32.const 16)) (local.get $tag)
                 (i64.mul (i64.load (i32.const 24)) (i64.const 2)))
      (br $forever)))

  ;; The client: leaves a stale message with the same tag (value 99) in its own mailbox, then
  ;; requests 2*x from `server` with `tag`. Returns (the request's code, the reply's tag, the
  ;; reply's value, the values left in the mailbox packed base 100: stale 99 then noise 1 = 9901).
  (func (export "client") (param $server i64) (param $tag i64) (param $x i64) (result i32 i64 i64 i64)
    (local $code i32) (local $reply_tag i64) (local $reply i64)
    (call $put (call $self) (local.get $tag) (i64.const 99))
    (call $create (local.get $tag) (i64.const 16))
    (i64.store (i32.const 0) (call $self))
    (i64.store (i32.const 8) (local.get $x))
    (drop (call $write (i32.const 0) (i32.const 16)))
    (local.set $code (call $request (local.get $server) (local.get $tag) (i64.const -1)))
    (local.set $reply_tag (call $get_tag))
    (drop (call $read (i32.const 16) (i32.const 8)))
    (local.set $reply (i64.load (i32.const 16)))
    (local.get $code)
    (local.get $reply_tag)
    (local.get $reply)
    (i64.add (i64.mul (call $next_value) (i64.const 100)) (call $next_value)))

  ;; A request to `target` (tag 77) that waits at most `ms`; returns the request's code.
  (func (export "request_within") (param $target i64) (param $ms i64) (result i32)
    (call $create (i64.const 77) (i64.const 8))
    (i64.store (i32.const 0) (call $self))
    (drop (call $write (i32.const 0) (i32.const 8)))
    (call $request (local.get $target) (i64.const 77) (local.get $ms)))

  ;; A process that never answers: it waits for tag 12345, which nobody sends.
  (func (export "sink")
    (drop (call $receive (i32.const 48) (i32.const 1) (i64.const -1)))))
