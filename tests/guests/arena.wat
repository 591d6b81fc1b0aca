;; Arenas (lunatic_mp/vm/arena.c): processes whose linear memories and fiber stacks are slots of
;; the engine's arenas. Memories start at one page; what lies past a memory's size in its slot
;; must stay out of the guest's reach.
(module
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (memory (export "memory") 1)

  ;; Waits for a message: an idle process.
  (func (export "idle") (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1))))

  ;; Grows the memory by `pages`; returns memory.grow's result (the old size, or -1).
  (func (export "grow") (param $pages i32) (result i32)
    (memory.grow (local.get $pages)))

  ;; Grows by `pages` and writes a byte into every 4 KiB page, then waits for a message.
  (func (export "touch") (param $pages i32) (local $at i32) (local $end i32)
    (if (i32.lt_s (memory.grow (local.get $pages)) (i32.const 0)) (then (unreachable)))
    (local.set $end (i32.mul (memory.size) (i32.const 65536)))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $at) (local.get $end)))
      (i32.store8 (local.get $at) (i32.const 1))
      (local.set $at (i32.add (local.get $at) (i32.const 4096)))
      (br $next)))
    (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1))))

  ;; Returns the i32 at `address` (traps past the memory's size).
  (func (export "load") (param $address i32) (result i32)
    (i32.load (local.get $address)))

  ;; Stores `value` at `address` (traps past the memory's size).
  (func (export "store") (param $address i32) (param $value i32)
    (i32.store (local.get $address) (local.get $value)))

  ;; Writes `value` at byte 8 of each of the first `pages` 4 KiB pages.
  (func (export "scatter") (param $pages i32) (param $value i32) (local $at i32)
    (block $done (loop $next
      (br_if $done (i32.eqz (local.get $pages)))
      (i32.store offset=8 (local.get $at) (local.get $value))
      (local.set $at (i32.add (local.get $at) (i32.const 4096)))
      (local.set $pages (i32.sub (local.get $pages) (i32.const 1)))
      (br $next))))

  ;; The OR of every i32 in the first `pages` 4 KiB pages: 0 when they all read as zeros.
  (func (export "gather") (param $pages i32) (result i32) (local $at i32) (local $end i32) (local $seen i32)
    (local.set $end (i32.mul (local.get $pages) (i32.const 4096)))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $at) (local.get $end)))
      (local.set $seen (i32.or (local.get $seen) (i32.load (local.get $at))))
      (local.set $at (i32.add (local.get $at) (i32.const 4)))
      (br $next)))
    (local.get $seen))

  ;; Recurses until the Wasm stack is exhausted.
  (func $recurse (export "recurse") (param $depth i64) (result i64)
    (i64.add (call $recurse (i64.add (local.get $depth) (i64.const 1))) (i64.const 1))))
