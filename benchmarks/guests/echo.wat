;; echo.wat: the echo scenario's TCP server. `serve` listens on 127.0.0.1 (any port), sends the
;; port to `reply_to` (tag 2, an i64), and hands each of `count` connections to a new `conn`
;; process in a message (push_tcp_stream); the runtime places the children on every worker.
;; `conn` echoes until the peer closes.
(module
  (import "lunatic::message" "create_data" (func $create (param i64 i64)))
  (import "lunatic::message" "write_data" (func $write (param i32 i32) (result i32)))
  (import "lunatic::message" "send" (func $send (param i64) (result i32)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (import "lunatic::message" "push_tcp_stream" (func $push_stream (param i64) (result i64)))
  (import "lunatic::message" "take_tcp_stream" (func $take_stream (param i64) (result i64)))
  (import "lunatic::process" "spawn"
    (func $spawn (param i64 i64 i64 i32 i32 i32 i32 i32) (result i32)))
  (import "lunatic::networking" "resolve_next"
    (func $resolve_next (param i64 i32 i32 i32 i32 i32) (result i32)))
  (import "lunatic::networking" "tcp_bind" (func $tcp_bind (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "lunatic::networking" "tcp_local_addr" (func $tcp_local_addr (param i64 i32) (result i32)))
  (import "lunatic::networking" "tcp_accept" (func $tcp_accept (param i64 i32 i32) (result i32)))
  (import "lunatic::networking" "drop_dns_iterator" (func $drop_iter (param i64)))
  (import "lunatic::networking" "drop_tcp_listener" (func $drop_listener (param i64)))
  (import "lunatic::networking" "drop_tcp_stream" (func $drop_stream (param i64)))
  (import "lunatic::networking" "tcp_write_vectored"
    (func $tcp_write (param i64 i32 i32 i32) (result i32)))
  (import "lunatic::networking" "tcp_read" (func $tcp_read (param i64 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; 0 address | 16 id out | 24 second id out | 32 addr type | 36 port | 48 count | 56 i64 out
  ;; 64 iovec | 280 "conn" | 4096 buffer
  (data (i32.const 280) "conn")

  (func (export "serve") (param $to i64) (param $count i32) (result i32)
    (local $listener i64) (local $stream i64)
    (i32.store (i32.const 0) (i32.const 0x0100007F))
    (if (call $tcp_bind (i32.const 4) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 16))
      (then (return (i32.const 1))))
    (local.set $listener (i64.load (i32.const 16)))
    (if (call $tcp_local_addr (local.get $listener) (i32.const 16)) (then unreachable))
    (if (call $resolve_next (i64.load (i32.const 16)) (i32.const 32) (i32.const 0) (i32.const 36)
          (i32.const 40) (i32.const 44))
      (then unreachable))
    (call $drop_iter (i64.load (i32.const 16)))
    (i64.store (i32.const 56) (i64.load16_u (i32.const 36)))
    (call $create (i64.const 2) (i64.const 8))
    (drop (call $write (i32.const 56) (i32.const 8)))
    (drop (call $send (local.get $to)))
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $count)))
        (if (call $tcp_accept (local.get $listener) (i32.const 16) (i32.const 24)) (then (return (i32.const 1))))
        (local.set $stream (i64.load (i32.const 16)))
        (call $drop_iter (i64.load (i32.const 24)))
        (if (call $spawn (i64.const 0) (i64.const -1) (i64.const -1) (i32.const 280) (i32.const 4)
              (i32.const 0) (i32.const 0) (i32.const 48))
          (then unreachable))
        (call $create (i64.const 0) (i64.const 0))
        (drop (call $push_stream (local.get $stream)))
        (drop (call $send (i64.load (i32.const 48))))
        (local.set $count (i32.sub (local.get $count) (i32.const 1)))
        (br $next)))
    (call $drop_listener (local.get $listener))
    (i32.const 0))

  (func (export "conn")
    (local $stream i64) (local $n i32)
    (if (call $receive (i32.const 0) (i32.const 0) (i64.const -1)) (then unreachable))
    (local.set $stream (call $take_stream (i64.const 0)))
    (block $done
      (loop $next
        (br_if $done (call $tcp_read (local.get $stream) (i32.const 4096) (i32.const 4096) (i32.const 48)))
        (local.set $n (i32.wrap_i64 (i64.load (i32.const 48))))
        (br_if $done (i32.eqz (local.get $n)))
        ;; the client sends small requests: one write takes them whole (a short write ends it)
        (i32.store (i32.const 64) (i32.const 4096))
        (i32.store (i32.const 68) (local.get $n))
        (br_if $done (call $tcp_write (local.get $stream) (i32.const 64) (i32.const 1) (i32.const 48)))
        (br_if $done (i32.ne (i32.wrap_i64 (i64.load (i32.const 48))) (local.get $n)))
        (br $next)))
    (call $drop_stream (local.get $stream)))
)
