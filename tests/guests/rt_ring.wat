;; A ring of processes spanning the workers of a Runtime, passing one token around.
;;
;; Each `node` first waits for its successor's pid (tag 1, from the host). The token (tag 2)
;; carries (hops left, hops done) as two i64s; each node that gets it counts a visit and passes
;; it on with one hop fewer and one more done. The node that makes the last hop reports the hops
;; done to the host (tag 4) and sends a stop (tag 3) around the ring; a node that gets the stop
;; passes it on and returns.
;;
;; Memory: 0 hops left, 8 hops done, 16 the i64 read from a message, 32 the tag list [2, 3],
;; 48 the tag list [1].
(module
  (import "lunatic::message" "create_data" (func $create (param i64 i64)))
  (import "lunatic::message" "write_data" (func $write (param i32 i32) (result i32)))
  (import "lunatic::message" "read_data" (func $read (param i32 i32) (result i32)))
  (import "lunatic::message" "get_tag" (func $get_tag (result i64)))
  (import "lunatic::message" "send" (func $send (param i64) (result i32)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (memory (export "memory") 1)

  ;; Send the `len` bytes at 0 to `to` with `tag`.
  (func $send_head (param $to i64) (param $tag i64) (param $len i32)
    (call $create (local.get $tag) (i64.const 16))
    (drop (call $write (i32.const 0) (local.get $len)))
    (drop (call $send (local.get $to))))

  ;; One process of the ring; `host` is the pid the last hop is reported to. Returns the number
  ;; of times the token visited it.
  (func (export "node") (param $host i64) (result i64)
    (local $next i64) (local $visits i64)
    ;; the successor, selectively: a token may arrive before it
    (i64.store (i32.const 48) (i64.const 1))
    (if (call $receive (i32.const 48) (i32.const 1) (i64.const -1)) (then unreachable))
    (if (i32.ne (call $read (i32.const 16) (i32.const 8)) (i32.const 8)) (then unreachable))
    (local.set $next (i64.load (i32.const 16)))
    (i64.store (i32.const 32) (i64.const 2))
    (i64.store (i32.const 40) (i64.const 3))
    (loop $more
      (if (call $receive (i32.const 32) (i32.const 2) (i64.const -1)) (then unreachable))
      (if (i64.eq (call $get_tag) (i64.const 3))
        (then
          (call $send_head (local.get $next) (i64.const 3) (i32.const 0))
          (return (local.get $visits))))
      (if (i32.ne (call $read (i32.const 0) (i32.const 16)) (i32.const 16)) (then unreachable))
      (local.set $visits (i64.add (local.get $visits) (i64.const 1)))
      (i64.store (i32.const 0) (i64.sub (i64.load (i32.const 0)) (i64.const 1)))
      (i64.store (i32.const 8) (i64.add (i64.load (i32.const 8)) (i64.const 1)))
      (if (i64.eqz (i64.load (i32.const 0)))
        (then
          (i64.store (i32.const 0) (i64.load (i32.const 8)))
          (call $send_head (local.get $host) (i64.const 4) (i32.const 8))
          (call $send_head (local.get $next) (i64.const 3) (i32.const 0))
          (return (local.get $visits))))
      (call $send_head (local.get $next) (i64.const 2) (i32.const 16))
      (br $more))
    unreachable))
