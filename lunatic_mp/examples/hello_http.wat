;; The HTTP handler of `lunatic-mp serve`'s built-in example: GET /hello and GET /hello/{name},
;; each request handled by a fresh process running `handle`.
;;
;;   curl localhost:8080/hello/you    -> Hello, you!
;;   curl localhost:8080/hello        -> Hello, world!
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

  (func (export "handle")
    (local $got i32) (local $path i32) (local $len i32) (local $name i32) (local $name_len i32)
    (local $end i32) (local $sender i64)
    ;; wait for the request (any tag, no timeout), read its start
    (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))
    (local.set $got (call $read (i32.const 4096) (i32.const 32768)))
    (local.set $sender (call $get_process_id))  ;; before create_data replaces the message
    ;; the path follows the method: 4096 + 4 + method length holds its length
    (local.set $path (i32.add (i32.const 4100) (i32.load (i32.const 4096))))
    (local.set $len (i32.load (local.get $path)))
    (local.set $path (i32.add (local.get $path) (i32.const 4)))
    ;; never past what was read
    (if (i32.gt_u (i32.add (local.get $path) (local.get $len)) (i32.add (i32.const 4096) (local.get $got)))
      (then (local.set $len (i32.const 0))))
    ;; "/hello/NAME": greet NAME (at most 3900 bytes of it); anything else: the world
    (local.set $name (i32.const 4000))
    (local.set $name_len (i32.const 5))
    (if (i32.gt_u (local.get $len) (i32.const 7))
      (then
        (local.set $name (i32.add (local.get $path) (i32.const 7)))
        (local.set $name_len (i32.sub (local.get $len) (i32.const 7)))
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
