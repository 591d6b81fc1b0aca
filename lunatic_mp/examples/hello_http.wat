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
;; Memory: 0 the reply's status and headers | 64 "Hello, " | 72 "world" | 80 "!\n"
;;         | 1024.. the request (at most 32 KiB of it is read: the method and path come first).
(module
  (import "lunatic::message" "create_data" (func $create (param i64 i64)))
  (import "lunatic::message" "write_data" (func $write (param i32 i32) (result i32)))
  (import "lunatic::message" "read_data" (func $read (param i32 i32) (result i32)))
  (import "lunatic::message" "get_tag" (func $get_tag (result i64)))
  (import "lunatic::message" "get_process_id" (func $get_process_id (result i64)))
  (import "lunatic::message" "send" (func $send (param i64) (result i32)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (memory (export "memory") 1)
  ;; status 200, one header: content-type: text/plain; charset=utf-8 (53 bytes)
  (data (i32.const 0) "\c8\00\00\00\01\00\00\00\0c\00\00\00content-type\19\00\00\00text/plain; charset=utf-8")
  (data (i32.const 64) "Hello, ")
  (data (i32.const 72) "world")
  (data (i32.const 80) "!\n")

  (func (export "handle")
    (local $got i32) (local $path i32) (local $len i32) (local $name i32) (local $name_len i32)
    (local $sender i64)
    ;; wait for the request (any tag, no timeout), read its start
    (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))
    (local.set $got (call $read (i32.const 1024) (i32.const 32768)))
    (local.set $sender (call $get_process_id))  ;; before create_data replaces the message
    ;; the path follows the method: 1024 + 4 + method length holds its length
    (local.set $path (i32.add (i32.const 1028) (i32.load (i32.const 1024))))
    (local.set $len (i32.load (local.get $path)))
    (local.set $path (i32.add (local.get $path) (i32.const 4)))
    ;; never past what was read
    (if (i32.gt_u (i32.add (local.get $path) (local.get $len)) (i32.add (i32.const 1024) (local.get $got)))
      (then (local.set $len (i32.const 0))))
    ;; "/hello/NAME": greet NAME; anything else: the world
    (local.set $name (i32.const 72))
    (local.set $name_len (i32.const 5))
    (if (i32.gt_u (local.get $len) (i32.const 7))
      (then
        (local.set $name (i32.add (local.get $path) (i32.const 7)))
        (local.set $name_len (i32.sub (local.get $len) (i32.const 7)))))
    (call $create (call $get_tag)
      (i64.extend_i32_u (i32.add (i32.const 62) (local.get $name_len))))
    (drop (call $write (i32.const 0) (i32.const 53)))
    (drop (call $write (i32.const 64) (i32.const 7)))
    (drop (call $write (local.get $name) (local.get $name_len)))
    (drop (call $write (i32.const 80) (i32.const 2)))
    (drop (call $send (local.get $sender))))
)
