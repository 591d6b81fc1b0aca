;; poll_oneoff, the WASI call behind sleep() and nanosleep(): it suspends only its process.
;; Subscriptions are built at 0 (48 bytes each), events come back at 1024 (32 bytes each), the
;; event count at 2048. Each export returns poll_oneoff's errno, or what it checks.
(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (memory (export "memory") 1)

  ;; A clock subscription at `at`: userdata, clock id, timeout (ns), flags (1: absolute).
  (func $clock_sub (param $at i32) (param $userdata i64) (param $id i32) (param $ns i64) (param $flags i32)
    (i64.store (local.get $at) (local.get $userdata))
    (i32.store8 (i32.add (local.get $at) (i32.const 8)) (i32.const 0))
    (i32.store (i32.add (local.get $at) (i32.const 16)) (local.get $id))
    (i64.store (i32.add (local.get $at) (i32.const 24)) (local.get $ns))
    (i64.store (i32.add (local.get $at) (i32.const 32)) (i64.const 0))
    (i32.store16 (i32.add (local.get $at) (i32.const 40)) (local.get $flags)))

  (func $monotonic (result i64)
    (drop (call $clock (i32.const 1) (i64.const 1) (i32.const 4000)))
    (i64.load (i32.const 4000)))

  ;; Sleeps `ns` nanoseconds (relative, monotonic); returns the errno.
  (func (export "sleep") (param $ns i64) (result i32)
    (call $clock_sub (i32.const 0) (i64.const 77) (i32.const 1) (local.get $ns) (i32.const 0))
    (call $poll (i32.const 0) (i32.const 1024) (i32.const 1) (i32.const 2048)))

  ;; Two clocks, 1 ms (userdata 1) and 1 hour (userdata 2): returns the userdata of the one
  ;; event, times 10, plus the event count; 11 is right.
  (func (export "earliest") (result i64)
    (call $clock_sub (i32.const 0) (i64.const 1) (i32.const 1) (i64.const 1000000) (i32.const 0))
    (call $clock_sub (i32.const 48) (i64.const 2) (i32.const 0) (i64.const 3600000000000) (i32.const 0))
    (drop (call $poll (i32.const 0) (i32.const 1024) (i32.const 2) (i32.const 2048)))
    (i64.add (i64.mul (i64.load (i32.const 1024)) (i64.const 10)) (i64.extend_i32_u (i32.load (i32.const 2048)))))

  ;; Waits until 2 ms past the monotonic clock's reading (absolute time); returns 1 if the clock
  ;; then reads at least that deadline and the call succeeded.
  (func (export "until") (result i32) (local $deadline i64)
    (local.set $deadline (i64.add (call $monotonic) (i64.const 2000000)))
    (call $clock_sub (i32.const 0) (i64.const 5) (i32.const 1) (local.get $deadline) (i32.const 1))
    (if (call $poll (i32.const 0) (i32.const 1024) (i32.const 1) (i32.const 2048)) (then (return (i32.const 0))))
    (i64.ge_u (call $monotonic) (local.get $deadline)))

  ;; A clock of one hour and stdout's fd_write subscription (userdata 9): the descriptor is ready,
  ;; so the call returns at once with its event; returns userdata * 10 + the event type (2).
  (func (export "fd_ready") (result i64)
    (call $clock_sub (i32.const 0) (i64.const 1) (i32.const 1) (i64.const 3600000000000) (i32.const 0))
    (i64.store (i32.const 48) (i64.const 9))
    (i32.store8 (i32.const 56) (i32.const 2))
    (i32.store (i32.const 64) (i32.const 1))
    (drop (call $poll (i32.const 0) (i32.const 1024) (i32.const 2) (i32.const 2048)))
    (i64.add (i64.mul (i64.load (i32.const 1024)) (i64.const 10)) (i64.extend_i32_u (i32.load8_u (i32.const 1034)))))

  ;; No subscriptions: EINVAL (28).
  (func (export "none") (result i32)
    (call $poll (i32.const 0) (i32.const 1024) (i32.const 0) (i32.const 2048)))

  ;; Spins `n` times: a process that must run while another sleeps.
  (func (export "spin") (param $n i64) (result i64) (local $i i64)
    (loop $more
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br_if $more (i64.lt_u (local.get $i) (local.get $n))))
    (local.get $i)))
