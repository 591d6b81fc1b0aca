;; The registry process from guests on different workers: registering with a version, lookups
;; by requirement, names of processes that die, and get_or_spawn raced from several workers.
;;
;; Memory: 0 node slot, 8 pid slot (the error id of a failed get_or_spawn), 16 an i64 to send or
;; read, 24 the tag list of a selective receive, 128+ names.
(module
  (import "lunatic::registry" "put_versioned" (func $put (param i32 i32 i64 i64)))
  (import "lunatic::registry" "get_versioned" (func $get (param i32 i32 i32 i32) (result i32)))
  (import "lunatic::process" "get_or_spawn"
    (func $get_or_spawn (param i32 i32 i64 i64 i64 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "lunatic::process" "process_id" (func $self (result i64)))
  (import "lunatic::message" "create_data" (func $create (param i64 i64)))
  (import "lunatic::message" "write_data" (func $write (param i32 i32) (result i32)))
  (import "lunatic::message" "read_data" (func $read (param i32 i32) (result i32)))
  (import "lunatic::message" "send" (func $send (param i64) (result i32)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 128) "svc@1.2.0")  ;; 9
  (data (i32.const 160) "svc@^1.0")   ;; 8
  (data (i32.const 192) "solo")       ;; 4
  (data (i32.const 224) "park")       ;; 4

  ;; Send the i64 `value` to `to` with `tag`.
  (func $send_i64 (param $to i64) (param $tag i64) (param $value i64)
    (call $create (local.get $tag) (i64.const 8))
    (i64.store (i32.const 16) (local.get $value))
    (drop (call $write (i32.const 16) (i32.const 8)))
    (drop (call $send (local.get $to))))

  ;; Wait (forever) for a data message with `tag`; returns the i64 it carries.
  (func $receive_i64 (param $tag i64) (result i64)
    (i64.store (i32.const 24) (local.get $tag))
    (if (call $receive (i32.const 24) (i32.const 1) (i64.const -1)) (then unreachable))
    (if (i32.ne (call $read (i32.const 16) (i32.const 8)) (i32.const 8)) (then unreachable))
    (i64.load (i32.const 16)))

  ;; Waits for a message with tag 9 and returns the i64 it carries (what get_or_spawn starts).
  (func (export "park") (result i64)
    (call $receive_i64 (i64.const 9)))

  ;; Registers itself as "svc@1.2.0", tells `host` so (tag 1, carrying its pid), then parks
  ;; until a tag 9 message; returns what that carries.
  (func (export "serve") (param $host i64) (result i64)
    (call $put (i32.const 128) (i32.const 9) (i64.const 0) (call $self))
    (call $send_i64 (local.get $host) (i64.const 1) (call $self))
    (call $receive_i64 (i64.const 9)))

  ;; Looks up "svc@^1.0". Returns (get's code: 0 found, 1 not; the pid found, or -1).
  (func (export "lookup") (result i32 i64)
    (i64.store (i32.const 8) (i64.const -1))
    (call $get (i32.const 160) (i32.const 8) (i32.const 0) (i32.const 8))
    (i64.load (i32.const 8)))

  ;; Waits for a "go" (tag 7), then get_or_spawn("solo") of this module's `park`. Returns
  ;; (get_or_spawn's code: 0 spawned, 2 already registered; the pid it names).
  (func (export "race") (result i32 i64)
    (drop (call $receive_i64 (i64.const 7)))
    (call $get_or_spawn (i32.const 192) (i32.const 4)
      (i64.const 0) (i64.const -1) (i64.const -1)
      (i32.const 224) (i32.const 4) (i32.const 0) (i32.const 0)
      (i32.const 0) (i32.const 8))
    (i64.load (i32.const 8))))
