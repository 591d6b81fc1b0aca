;; net_c_waits.wat: TCP calls that wait in C (lunatic_mp/vm/net.c: a stream without a timeout, held
;; by the reactor). Each export connects to 127.0.0.1:port first (5 s to connect).
;; `echo(port, read_timeout_ms)` echoes until the peer closes (returns 0) or a call fails: 1000 + the
;; size of the error's text (ERROR), or the call's code (a timeout: 9027). read_timeout_ms < 0: none.
;; `flood(port, rounds)` writes rounds * 4096 bytes, then returns how many it wrote.
(module
  (import "lunatic::networking" "tcp_connect"
    (func $connect (param i32 i32 i32 i32 i32 i64 i32) (result i32)))
  (import "lunatic::networking" "tcp_read" (func $read (param i64 i32 i32 i32) (result i32)))
  (import "lunatic::networking" "tcp_write_vectored" (func $write (param i64 i32 i32 i32) (result i32)))
  (import "lunatic::networking" "set_read_timeout" (func $set_read_timeout (param i64 i64)))
  (import "lunatic::error" "string_size" (func $err_size (param i64) (result i32)))
  (memory (export "memory") 1)
  ;; 0 address | 16 id out | 48 count or error id out | 64 iovec | 4096 buffer

  (func $stream (param $port i32) (result i64)
    (i32.store (i32.const 0) (i32.const 0x0100007F))
    (if (call $connect (i32.const 4) (i32.const 0) (local.get $port) (i32.const 0) (i32.const 0)
          (i64.const 5000) (i32.const 16))
      (then unreachable))
    (i64.load (i32.const 16)))

  ;; What a failed call returns from the export.
  (func $failed (param $code i32) (result i32)
    (if (result i32) (i32.eq (local.get $code) (i32.const 1))
      (then (i32.add (i32.const 1000) (call $err_size (i64.load (i32.const 48)))))
      (else (local.get $code))))

  (func (export "echo") (param $port i32) (param $read_timeout i64) (result i32)
    (local $stream i64) (local $r i32) (local $n i32)
    (local.set $stream (call $stream (local.get $port)))
    (if (i64.ge_s (local.get $read_timeout) (i64.const 0))
      (then (call $set_read_timeout (local.get $stream) (local.get $read_timeout))))
    (loop $next
      (local.set $r (call $read (local.get $stream) (i32.const 4096) (i32.const 4096) (i32.const 48)))
      (if (local.get $r) (then (return (call $failed (local.get $r)))))
      (local.set $n (i32.wrap_i64 (i64.load (i32.const 48))))
      (if (i32.eqz (local.get $n)) (then (return (i32.const 0))))
      (i32.store (i32.const 64) (i32.const 4096))
      (i32.store (i32.const 68) (local.get $n))
      (local.set $r (call $write (local.get $stream) (i32.const 64) (i32.const 1) (i32.const 48)))
      (if (local.get $r) (then (return (call $failed (local.get $r)))))
      (br $next))
    (i32.const 0))

  (func (export "flood") (param $port i32) (param $rounds i32) (result i32)
    (local $stream i64) (local $r i32) (local $total i32) (local $left i32)
    (local.set $stream (call $stream (local.get $port)))
    (local.set $left (i32.mul (local.get $rounds) (i32.const 4096)))
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $left)))
        (i32.store (i32.const 64) (i32.const 4096))
        (i32.store (i32.const 68) (select (local.get $left) (i32.const 4096) (i32.lt_u (local.get $left) (i32.const 4096))))
        (local.set $r (call $write (local.get $stream) (i32.const 64) (i32.const 1) (i32.const 48)))
        (if (local.get $r) (then (return (call $failed (local.get $r)))))
        (local.set $total (i32.add (local.get $total) (i32.load (i32.const 48))))
        (local.set $left (i32.sub (local.get $left) (i32.load (i32.const 48))))
        (br $next)))
    (local.get $total)))
