;; `lunatic-mp run --max-mailbox N` (tests/cli/test_cli.py): the root process spawns a `sink`
;; that waits for a tag-1 message first, then sends it 150 tag-0 messages and only then the
;; tag-1 one. Under a bound of 100 the root is paused with the sink's mailbox full while the sink
;; waits for the tag-1 message that the root would send next: the deadlock a bounded mailbox
;; allows (docs/reliability.md). With room for 150 (the default bound is 100,000; 0: none) the
;; root sends them all and returns.
(module
  (import "lunatic::process" "spawn" (func $spawn (param i64 i64 i64 i32 i32 i32 i32 i32) (result i32)))
  (import "lunatic::message" "create_data" (func $create (param i64 i64)))
  (import "lunatic::message" "send" (func $send (param i64) (result i32)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 128) "sink")

  (func (export "_start")
    (local $sink i64) (local $i i32)
    (drop (call $spawn (i64.const 0) (i64.const -1) (i64.const -1) (i32.const 128) (i32.const 4)
                       (i32.const 0) (i32.const 0) (i32.const 0)))
    (local.set $sink (i64.load (i32.const 0)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (i32.const 150)))
        (call $create (i64.const 0) (i64.const 0))
        (drop (call $send (local.get $sink)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (call $create (i64.const 1) (i64.const 0))
    (drop (call $send (local.get $sink))))

  (func (export "sink")
    (local $read i32)
    (i64.store (i32.const 24) (i64.const 1))
    (drop (call $receive (i32.const 24) (i32.const 1) (i64.const -1)))
    (i64.store (i32.const 24) (i64.const 0))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $read) (i32.const 150)))
        (drop (call $receive (i32.const 24) (i32.const 1) (i64.const -1)))
        (local.set $read (i32.add (local.get $read) (i32.const 1)))
        (br $next)))
    (call $exit (i32.const 0)))
)
