;; Children that each take all the memory they may (tests/vm/test_default_bounds.py,
;; tests/api/test_bounds.py: the per-environment memory budget, EnvConfig.max_env_memory).
(module
  (import "lunatic::process" "spawn" (func $spawn (param i64 i64 i64 i32 i32 i32 i32 i32) (result i32)))
  (import "lunatic::message" "create_data" (func $create (param i64 i64)))
  (import "lunatic::message" "write_data" (func $write (param i32 i32) (result i32)))
  (import "lunatic::message" "send" (func $send (param i64) (result i32)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (import "lunatic::error" "string_size" (func $error_size (param i64) (result i32)))
  (import "lunatic::error" "to_string" (func $error_text (param i64 i32)))
  (memory (export "memory") 1)
  (data (i32.const 128) "hog")

  ;; probe 0 (a lone engine's tests): to nobody, since a send to pid 0 traps
  (func $send_value (param $pid i64) (param $tag i64) (param $value i64)
    (if (i64.eqz (local.get $pid)) (then (return)))
    (call $create (local.get $tag) (i64.const 8))
    (i64.store (i32.const 0) (local.get $value))
    (drop (call $write (i32.const 0) (i32.const 8)))
    (drop (call $send (local.get $pid))))

  ;; Grows its memory a page at a time, touching each, until growing fails; tells `probe` how
  ;; many pages it got (tag 4), then parks for ever.
  (func (export "hog") (param $probe i64)
    (local $pages i32)
    (block $full
      (loop $more
        (local.set $pages (memory.grow (i32.const 1)))
        (br_if $full (i32.eq (local.get $pages) (i32.const -1)))
        (i32.store (i32.mul (local.get $pages) (i32.const 65536)) (i32.const 1))
        (br $more)))
    (call $send_value (local.get $probe) (i64.const 4) (i64.extend_i32_u (memory.size)))
    (i64.store (i32.const 24) (i64.const -999))
    (drop (call $receive (i32.const 24) (i32.const 1) (i64.const -1)))
    unreachable)

  ;; Spawns `hog(probe)` children (placed over every worker, in its own config) until spawning
  ;; fails; then sends the error's message to `probe` (tag 7). Returns the children spawned.
  (func (export "bomb") (param $probe i64) (result i64)
    (local $count i64) (local $error i64)
    ;; the one spawn parameter: i64 (0x7E) probe, a 17-byte record at 64
    (i32.store8 (i32.const 64) (i32.const 0x7E))
    (i64.store (i32.const 65) (local.get $probe))
    (block $refused
      (loop $more
        (br_if $refused
          (call $spawn (i64.const 0) (i64.const -1) (i64.const -1) (i32.const 128) (i32.const 3)
                       (i32.const 64) (i32.const 17) (i32.const 0)))
        (local.set $count (i64.add (local.get $count) (i64.const 1)))
        (br $more)))
    (local.set $error (i64.load (i32.const 0)))
    (call $error_text (local.get $error) (i32.const 1024))
    (call $create (i64.const 7) (i64.const 0))
    (drop (call $write (i32.const 1024) (call $error_size (local.get $error))))
    (if (i64.ne (local.get $probe) (i64.const 0)) (then (drop (call $send (local.get $probe)))))
    (local.get $count)))
