;; socket_relay.wat: a process that a socket wakes, and that then has more to do than the socket.
;; `relay(port, to, pause_ms)` connects to 127.0.0.1:port (5 s to connect), then for each read:
;; sleeps pause_ms (none when negative: a timer set by a process a socket woke), sends what it
;; read to `to` with tag 5 (a frame for another worker), and writes it back on the socket. Returns
;; 0 when the peer closes, or the failed call's code.
(module
  (import "lunatic::networking" "tcp_connect"
    (func $connect (param i32 i32 i32 i32 i32 i64 i32) (result i32)))
  (import "lunatic::networking" "tcp_read" (func $read (param i64 i32 i32 i32) (result i32)))
  (import "lunatic::networking" "tcp_write_vectored" (func $write (param i64 i32 i32 i32) (result i32)))
  (import "lunatic::message" "create_data" (func $create (param i64 i64)))
  (import "lunatic::message" "write_data" (func $write_data (param i32 i32) (result i32)))
  (import "lunatic::message" "send" (func $send (param i64) (result i32)))
  (import "lunatic::process" "sleep_ms" (func $sleep (param i64)))
  (memory (export "memory") 1)
  ;; 0 address | 16 stream id out | 48 count out | 64 iovec | 4096 buffer

  (func (export "relay") (param $port i32) (param $to i64) (param $pause i64) (result i32)
    (local $stream i64) (local $r i32) (local $n i32)
    (i32.store (i32.const 0) (i32.const 0x0100007F))
    (local.set $r (call $connect (i32.const 4) (i32.const 0) (local.get $port) (i32.const 0)
      (i32.const 0) (i64.const 5000) (i32.const 16)))
    (if (local.get $r) (then (return (local.get $r))))
    (local.set $stream (i64.load (i32.const 16)))
    (loop $next
      (local.set $r (call $read (local.get $stream) (i32.const 4096) (i32.const 4096) (i32.const 48)))
      (if (local.get $r) (then (return (local.get $r))))
      (local.set $n (i32.wrap_i64 (i64.load (i32.const 48))))
      (if (i32.eqz (local.get $n)) (then (return (i32.const 0))))
      (if (i64.ge_s (local.get $pause) (i64.const 0)) (then (call $sleep (local.get $pause))))
      (call $create (i64.const 5) (i64.extend_i32_u (local.get $n)))
      (drop (call $write_data (i32.const 4096) (local.get $n)))
      (drop (call $send (local.get $to)))
      (i32.store (i32.const 64) (i32.const 4096))
      (i32.store (i32.const 68) (local.get $n))
      (local.set $r (call $write (local.get $stream) (i32.const 64) (i32.const 1) (i32.const 48)))
      (if (local.get $r) (then (return (local.get $r))))
      (br $next))
    (i32.const 0)))
