;; lunatic::networking::udp_peer_addr (lunatic 0.13, which lunatic-rs's UdpSocket::peer_addr
;; calls): an error before the socket is connected, the connected address afterwards.
;;
;; Memory: 0 the address 127.0.0.1 (16 bytes), 16 id slot, 24 iterator slot, 32 addr type,
;; 36 address bytes, 52 port, 56 flow info, 60 scope id.
(module
  (import "lunatic::networking" "udp_bind" (func $udp_bind (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "lunatic::networking" "udp_connect"
    (func $udp_connect (param i64 i32 i32 i32 i32 i32 i64 i32) (result i32)))
  (import "lunatic::networking" "udp_peer_addr" (func $udp_peer_addr (param i64 i32) (result i32)))
  (import "lunatic::networking" "resolve_next"
    (func $resolve_next (param i64 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "\7f\00\00\01")

  ;; Returns (peer_addr's code before connecting, its code after, resolve_next's code, the
  ;; address type, the port, the address's first byte).
  (func (export "peer") (param $port i32) (result i32 i32 i32 i32 i32 i32)
    (local $sock i64) (local $before i32) (local $after i32)
    (if (call $udp_bind (i32.const 4) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
          (i32.const 16))
      (then unreachable))
    (local.set $sock (i64.load (i32.const 16)))
    (local.set $before (call $udp_peer_addr (local.get $sock) (i32.const 24)))
    (if (call $udp_connect (local.get $sock) (i32.const 4) (i32.const 0) (local.get $port)
          (i32.const 0) (i32.const 0) (i64.const -1) (i32.const 16))
      (then unreachable))
    (local.set $after (call $udp_peer_addr (local.get $sock) (i32.const 24)))
    (local.get $before)
    (local.get $after)
    (call $resolve_next (i64.load (i32.const 24)) (i32.const 32) (i32.const 36) (i32.const 52)
      (i32.const 56) (i32.const 60))
    (i32.load (i32.const 32))
    (i32.load16_u (i32.const 52))
    (i32.load8_u (i32.const 36)))

  ;; An unknown socket id traps.
  (func (export "unknown") (result i32)
    (call $udp_peer_addr (i64.const 12345) (i32.const 24))))
