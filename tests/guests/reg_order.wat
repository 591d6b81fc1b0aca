;; Ordering around get_or_spawn: the spawner sends its child's arguments as the first message right
;; after the call (as lunatic-rs does), while another process polls the registry for the child's
;; name and sends to it as soon as it finds it. The child reports the tag of the first message
;; it receives to a probe.
;;
;; Memory: 0 node slot, 8 pid slot, 16 the probe's tag, 32 the name "svc", 48 "remember", 64 one spawn parameter.
(module
  (import "lunatic::process" "get_or_spawn"
    (func $get_or_spawn (param i32 i32 i64 i64 i64 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "lunatic::process" "sleep_ms" (func $sleep (param i64)))
  (import "lunatic::registry" "get" (func $get (param i32 i32 i32 i32) (result i32)))
  (import "lunatic::message" "create_data" (func $create_data (param i64 i64)))
  (import "lunatic::message" "send" (func $send (param i64) (result i32)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (import "lunatic::message" "get_tag" (func $get_tag (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 32) "svc")
  (data (i32.const 48) "remember")

  (func $send_tag (param $to i64) (param $tag i64)
    (call $create_data (local.get $tag) (i64.const 0))
    (drop (call $send (local.get $to))))

  ;; A probe: waits forever for a tag nobody sends, so its mailbox keeps what arrives.
  (func (export "park")
    (i64.store (i32.const 16) (i64.const -999))
    (drop (call $receive (i32.const 16) (i32.const 1) (i64.const -1))))

  ;; The child: reports the tag of its first message to `probe`, then stays (keeping its name).
  (func (export "remember") (param $probe i64)
    (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))
    (call $send_tag (local.get $probe) (call $get_tag))
    (i64.store (i32.const 16) (i64.const -999))
    (drop (call $receive (i32.const 16) (i32.const 1) (i64.const -1))))

  ;; get_or_spawn("svc", remember(probe)), then the "arguments" (tag 1) to the child.
  (func (export "spawner") (param $probe i64)
    (i32.store8 (i32.const 64) (i32.const 0x7E))
    (i64.store (i32.const 65) (local.get $probe))
    (i64.store (i32.const 73) (i64.const 0))
    (if (call $get_or_spawn (i32.const 32) (i32.const 3) (i64.const 0) (i64.const -1) (i64.const -1)
          (i32.const 48) (i32.const 8) (i32.const 64) (i32.const 17) (i32.const 0) (i32.const 8))
      (then unreachable))
    (call $send_tag (i64.load (i32.const 8)) (i64.const 1)))

  ;; Polls get("svc") (yielding between tries), then sends tag 2 to what it found.
  (func (export "intruder")
    (loop $poll
      (if (call $get (i32.const 32) (i32.const 3) (i32.const 0) (i32.const 8))
        (then (call $sleep (i64.const 0)) (br $poll))))
    (call $send_tag (i64.load (i32.const 8)) (i64.const 2))))
