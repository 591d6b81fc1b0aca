;; A module shaped like a lunatic-rs test binary: `#[lunatic::test]` functions become exports named
;; `#lunatic_test_[#ignore_][#panic_<expected>#]<path>`, and a Rust panic prints its message to
;; stderr before the process traps. Run through `lunatic-mp test` / `lunatic-mp run`.
;;
;; Memory: 0 iovec, 8 nwritten, 16 node/pid slots, 64 the name "x", 256+ texts.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "lunatic::registry" "put" (func $put (param i32 i32 i64 i64)))
  (import "lunatic::registry" "get" (func $get (param i32 i32 i32 i32) (result i32)))
  (import "lunatic::process" "spawn" (func $spawn (param i64 i64 i64 i32 i32 i32 i32 i32) (result i32)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "x")
  (data (i32.const 80) "park")
  (data (i32.const 256) "hello from passes\n")                                               ;; 18
  (data (i32.const 320) "thread '<unnamed>' panicked at src/lib.rs:10:5:\nassertion failed: 1 == 2\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n") ;; 151
  (data (i32.const 512) "thread '<unnamed>' panicked at src/lib.rs:20:9:\nboom here\n")          ;; 58
  (data (i32.const 640) "thread '<unnamed>' panicked at 'something else', src/lib.rs:30:5\n")   ;; 65

  ;; Write `len` bytes at `ptr` to file descriptor `fd`.
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))

  (func (export "park")
    (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1))))

  (func (export "#lunatic_test_tests::passes")
    (call $write (i32.const 1) (i32.const 256) (i32.const 18)))

  (func (export "#lunatic_test_tests::fails")
    (call $write (i32.const 2) (i32.const 320) (i32.const 151))
    unreachable)

  (func (export "#lunatic_test_#ignore_tests::ignored")
    unreachable)

  (func (export "#lunatic_test_#panic_boom#tests::should_panic")
    (call $write (i32.const 2) (i32.const 512) (i32.const 58))
    unreachable)

  (func (export "#lunatic_test_#panic_expected \\#hash#tests::wrong_panic")
    (call $write (i32.const 2) (i32.const 640) (i32.const 65))
    unreachable)

  (func (export "#lunatic_test_#panic_#tests::traps_silently")
    unreachable)

  (func (export "#lunatic_test_#panic_boom#tests::does_not_panic"))

  ;; Each test starts with an empty registry and no process of another test: the name "x"
  ;; (registered for a pid that is no process, so only a reset removes it) must be free, and a
  ;; parked child is left behind.
  (func $registers
    (if (i32.eqz (call $get (i32.const 64) (i32.const 1) (i32.const 16) (i32.const 24)))
      (then unreachable))
    (call $put (i32.const 64) (i32.const 1) (i64.const 0) (i64.const 12345))
    (if (call $spawn (i64.const 0) (i64.const -1) (i64.const -1) (i32.const 80) (i32.const 4)
          (i32.const 0) (i32.const 0) (i32.const 16))
      (then unreachable)))
  (func (export "#lunatic_test_isolation::first") (call $registers))
  (func (export "#lunatic_test_isolation::second") (call $registers))

  (func (export "#lunatic_test_tests::deadlocks")
    (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))))
