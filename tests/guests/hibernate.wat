;; Processes that hold memory while they wait in receive, for hibernation (hibernate.c): what they
;; wrote must be there when they wake.
(module
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (memory (export "memory") 16)
  (data (i32.const 16) "hibernate me")

  ;; Write `pages` 64-bit values, one in each of the first `pages` 4 KiB pages, at an offset that
  ;; moves with the page; wait for `waits` messages, one after the other (each with a timeout of
  ;; `ms`, or none if -1); return the sum of the values read back, plus the first 8 bytes of the
  ;; data segment's text.
  (func $hold (param $pages i32) (param $ms i64) (param $waits i32) (result i64)
    (local $i i32) (local $sum i64)
    (local.set $i (i32.const 1))
    (block $written (loop $write
      (br_if $written (i32.ge_u (local.get $i) (local.get $pages)))
      (i64.store (call $slot (local.get $i)) (i64.extend_i32_u (i32.mul (local.get $i) (i32.const 7919))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $write)))
    (block $woken (loop $wait
      (br_if $woken (i32.eqz (local.get $waits)))
      (drop (call $receive (i32.const 0) (i32.const 0) (local.get $ms)))
      (local.set $waits (i32.sub (local.get $waits) (i32.const 1)))
      (br $wait)))
    (local.set $i (i32.const 1))
    (block $read (loop $sum_up
      (br_if $read (i32.ge_u (local.get $i) (local.get $pages)))
      (local.set $sum (i64.add (local.get $sum) (i64.load (call $slot (local.get $i)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $sum_up)))
    (i64.add (local.get $sum) (i64.load (i32.const 16))))

  ;; Where page i's value goes: page i, at (i * 40) mod 4096, 8-byte aligned.
  (func $slot (param $i i32) (result i32)
    (i32.add (i32.mul (local.get $i) (i32.const 4096))
             (i32.and (i32.mul (local.get $i) (i32.const 40)) (i32.const 4088))))

  (func (export "hold") (param $pages i32) (result i64)
    (call $hold (local.get $pages) (i64.const -1) (i32.const 1)))

  (func (export "hold_twice") (param $pages i32) (result i64)
    (call $hold (local.get $pages) (i64.const -1) (i32.const 2)))

  (func (export "hold_within") (param $pages i32) (param $ms i64) (result i64)
    (call $hold (local.get $pages) (local.get $ms) (i32.const 1)))

  ;; Fill the first `pages` 4 KiB pages with non-zero bytes (nothing to gain from keeping them on
  ;; the heap), wait for a message, and return the byte at the end of the last one.
  (func (export "hold_dense") (param $pages i32) (result i32)
    (memory.fill (i32.const 0) (i32.const 171) (i32.mul (local.get $pages) (i32.const 4096)))
    (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))
    (i32.load8_u (i32.sub (i32.mul (local.get $pages) (i32.const 4096)) (i32.const 1))))

  ;; Recurse `depth` levels, each keeping a value in a local that it adds on the way back, and wait
  ;; for a message at the bottom: the frames of a deep fiber stack must come back intact.
  (func $deep (export "hold_deep") (param $depth i32) (result i64)
    (local $mine i64)
    (local.set $mine (i64.extend_i32_u (i32.add (i32.mul (local.get $depth) (i32.const 31)) (i32.const 1))))
    (if (result i64) (i32.eqz (local.get $depth))
      (then (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1))) (local.get $mine))
      (else (i64.add (local.get $mine) (call $deep (i32.sub (local.get $depth) (i32.const 1))))))))
