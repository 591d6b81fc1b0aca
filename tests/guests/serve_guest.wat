;; Guest side of tests/test_serve.py and tests/test_client.py (`lunatic-mp serve`).
;;
;; Requests follow the convention of lunatic_mp.handles: the reply goes to the request's sender
;; with the request's tag. Memory: 0 a tag list, 64+ a message body (at most 60000 bytes).
(module
  (import "lunatic::process" "sleep_ms" (func $sleep (param i64)))
  (import "lunatic::message" "create_data" (func $create (param i64 i64)))
  (import "lunatic::message" "write_data" (func $write (param i32 i32) (result i32)))
  (import "lunatic::message" "read_data" (func $read (param i32 i32) (result i32)))
  (import "lunatic::message" "data_size" (func $data_size (result i64)))
  (import "lunatic::message" "get_tag" (func $get_tag (result i64)))
  (import "lunatic::message" "get_process_id" (func $get_process_id (result i64)))
  (import "lunatic::message" "send" (func $send (param i64) (result i32)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (import "lunatic::metrics" "histogram" (func $histogram (param i32 i32 f64)))
  (memory (export "memory") 1)
  (data (i32.const 32) "echo.size")

  ;; Forever: take a data message, wait `ms` milliseconds, send its bytes back to the sender
  ;; with its tag (a tag-0 message gets no answer). Reports each size to the histogram
  ;; `echo.size`.
  (func $serve (param $ms i64)
    (local $size i32) (local $tag i64) (local $from i64)
    (loop $forever
      (if (i32.eqz (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))
        (then
          (local.set $size (i32.wrap_i64 (call $data_size)))
          (if (i32.gt_u (local.get $size) (i32.const 60000)) (then unreachable))
          (drop (call $read (i32.const 64) (local.get $size)))
          (local.set $tag (call $get_tag))
          (local.set $from (call $get_process_id))
          (call $histogram (i32.const 32) (i32.const 9) (f64.convert_i32_u (local.get $size)))
          (if (i64.gt_s (local.get $ms) (i64.const 0)) (then (call $sleep (local.get $ms))))
          (if (i64.ne (local.get $tag) (i64.const 0))
            (then
              (call $create (local.get $tag) (i64.extend_i32_u (local.get $size)))
              (drop (call $write (i32.const 64) (local.get $size)))
              (drop (call $send (local.get $from)))))))
      (br $forever)))

  (func (export "echo") (call $serve (i64.const 0)))
  (func (export "slow_echo") (param $ms i64) (call $serve (local.get $ms)))

  ;; Waits for a message with tag 9, which nobody sends: a process that stays until killed.
  (func (export "park")
    (i64.store (i32.const 0) (i64.const 9))
    (drop (call $receive (i32.const 0) (i32.const 1) (i64.const -1))))

  ;; Returns 1 (tests rewrite this to 2 and reload).
  (func (export "version") (result i32) (i32.const 1))

  ;; Traps.
  (func (export "trap") unreachable)

  ;; Spins: only fuel or a kill stops it.
  (func (export "spin") (loop $forever (br $forever))))
