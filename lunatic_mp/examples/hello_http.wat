;; The HTTP handlers of `lunatic-mp serve`'s built-in example. GET /hello and GET /hello/{name}:
;; each request is handled by a fresh process running `handle`. GET /greeter/{name}: by the one
;; long-lived process running `serve`, registered as `greeter`.
;;
;;   curl localhost:8080/hello/you      -> Hello, you!
;;   curl localhost:8080/hello          -> Hello, world!
;;   curl localhost:8080/greeter/you    -> Hello, you!
;;
;; The guest convention (docs/serve.md, "HTTP routes"): the request arrives as one message
;; (u32 length-prefixed fields, little-endian: method, path, query, headers, body); the reply
;; goes to the message's sender with the message's tag: u32 status, u32 header count, each
;; header as a length-prefixed name and value, then the body (the rest of the message).
;;
;; The reply is built in memory and written with one host call (each call costs far more than
;; copying a few bytes). Memory: 0 the reply: status and headers (53 bytes), "Hello, ", the
;; name, "!\n" | 4000 "world" | 4096.. the request (at most 32 KiB of it is read: the method
;; and path come first).
(module
  (import "lunatic::message" "create_data" (func $create (param i64 i64)))
  (import "lunatic::message" "write_data" (func $write (param i32 i32) (result i32)))
  (import "lunatic::message" "read_data" (func $read (param i32 i32) (result i32)))
  (import "lunatic::message" "get_tag" (func $get_tag (result i64)))
  (import "lunatic::message" "get_process_id" (func $get_process_id (result i64)))
  (import "lunatic::message" "send" (func $send (param i64) (result i32)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (memory (export "memory") 1)
  ;; status 200, one header: content-type: text/plain; charset=utf-8 (53 bytes), then "Hello, "
  (data (i32.const 0) "\c8\00\00\00\01\00\00\00\0c\00\00\00content-type\19\00\00\00text/plain; charset=utf-8Hello, ")
  (data (i32.const 4000) "world")

  ;; A fresh process per request: wait for it (any tag, no timeout), answer it, end.
  (func (export "handle")
    (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))
    (call $answer))

  ;; A long-lived process: answer every request (a data message), forever.
  (func (export "serve")
    (loop $next
      (if (i32.eqz (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))
        (then (call $answer)))
      (br $next)))

  ;; Answer the request just received: "Hello, NAME!" for a path /PREFIX/NAME.
  (func $answer
    (local $got i32) (local $path i32) (local $len i32) (local $name i32) (local $name_len i32)
    (local $end i32) (local $sender i64) (local $slash i32)
    (local.set $got (call $read (i32.const 4096) (i32.const 32768)))
    (local.set $sender (call $get_process_id))  ;; before create_data replaces the message
    ;; the path follows the method: 4096 + 4 + method length holds its length
    (local.set $path (i32.add (i32.const 4100) (i32.load (i32.const 4096))))
    (local.set $len (i32.load (local.get $path)))
    (local.set $path (i32.add (local.get $path) (i32.const 4)))
    ;; never past what was read
    (if (i32.gt_u (i32.add (local.get $path) (local.get $len)) (i32.add (i32.const 4096) (local.get $got)))
      (then (local.set $len (i32.const 0))))
    ;; "/PREFIX/NAME": greet NAME (at most 3900 bytes of it); "/PREFIX": the world
    (local.set $slash (i32.const 1))
    (block $found (loop $next  ;; the second "/", if any
      (br_if $found (i32.ge_u (local.get $slash) (local.get $len)))
      (br_if $found (i32.eq (i32.load8_u (i32.add (local.get $path) (local.get $slash))) (i32.const 47)))
      (local.set $slash (i32.add (local.get $slash) (i32.const 1)))
      (br $next)))
    (local.set $name (i32.const 4000))
    (local.set $name_len (i32.const 5))
    (if (i32.lt_u (i32.add (local.get $slash) (i32.const 1)) (local.get $len))
      (then
        (local.set $name (i32.add (i32.add (local.get $path) (local.get $slash)) (i32.const 1)))
        (local.set $name_len (i32.sub (local.get $len) (i32.add (local.get $slash) (i32.const 1))))
        (if (i32.gt_u (local.get $name_len) (i32.const 3900))
          (then (local.set $name_len (i32.const 3900))))))
    (memory.copy (i32.const 60) (local.get $name) (local.get $name_len))
    (local.set $end (i32.add (i32.const 60) (local.get $name_len)))
    (i32.store16 (local.get $end) (i32.const 0x0a21))  ;; "!\n"
    (local.set $end (i32.add (local.get $end) (i32.const 2)))
    (call $create (call $get_tag) (i64.extend_i32_u (local.get $end)))
    (drop (call $write (i32.const 0) (local.get $end)))
    (drop (call $send (local.get $sender))))
)
