;; Guest side of tests/test_handles.py and tests/test_aio.py (the Python API: handles,
;; environments, AsyncRuntime).
;;
;; The request/reply convention of lunatic_mp.handles: a reply goes to the request's sender
;; (get_process_id) with the request's own tag. Memory: 0 an out slot, 16 the tag list of a
;; selective receive, 64+ a message body.
(module
  (import "lunatic::process" "spawn" (func $spawn (param i64 i64 i64 i32 i32 i32 i32 i32) (result i32)))
  (import "lunatic::message" "create_data" (func $create (param i64 i64)))
  (import "lunatic::message" "write_data" (func $write (param i32 i32) (result i32)))
  (import "lunatic::message" "read_data" (func $read (param i32 i32) (result i32)))
  (import "lunatic::message" "data_size" (func $data_size (result i64)))
  (import "lunatic::message" "get_tag" (func $get_tag (result i64)))
  (import "lunatic::message" "get_process_id" (func $get_process_id (result i64)))
  (import "lunatic::message" "send" (func $send (param i64) (result i32)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 200) "seven")

  ;; Answers `n` data messages of any tag, each with the same tag and the same bytes, to its
  ;; sender. Returns n.
  (func (export "echo") (param $n i32) (result i32)
    (local $i i32) (local $size i32) (local $from i64)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (if (call $receive (i32.const 0) (i32.const 0) (i64.const -1)) (then unreachable))
        (local.set $size (i32.wrap_i64 (call $data_size)))
        (if (i32.gt_u (local.get $size) (i32.const 60000)) (then unreachable))
        (drop (call $read (i32.const 64) (local.get $size)))
        (local.set $from (call $get_process_id))  ;; before create_data replaces the message
        (call $create (call $get_tag) (i64.const 0))
        (drop (call $write (i32.const 64) (local.get $size)))
        (drop (call $send (local.get $from)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $n))

  ;; Waits for a message with tag 9, then returns 9 (a process that stays until told to stop).
  (func (export "park") (result i64)
    (i64.store (i32.const 16) (i64.const 9))
    (if (call $receive (i32.const 16) (i32.const 1) (i64.const -1)) (then unreachable))
    (i64.const 9))

  ;; Returns 7.
  (func (export "seven") (result i32)
    (i32.const 7))

  ;; Returns a + b.
  (func (export "add") (param $a i64) (param $b i64) (result i64)
    (i64.add (local.get $a) (local.get $b)))

  ;; Spins forever: only a fuel limit or a kill stops it.
  (func (export "spin")
    (loop $forever
      (br $forever)))

  ;; Spawns `seven` with its own config and module; returns spawn's status. Traps when the
  ;; environment does not allow spawning.
  (func (export "spawn_child") (result i32)
    (call $spawn (i64.const 0) (i64.const -1) (i64.const -1)
                 (i32.const 200) (i32.const 5) (i32.const 0) (i32.const 0) (i32.const 0))))
