;; cli_echo.wat: for `lunatic-mp run cli_echo.wat [--dir DIR] -- ARGS...`. `_start` prints each
;; argument after argv[0] on its own line; then, if a directory is preopened (fd 3), it prints
;; the file `input.txt` found there.
;;
;; Memory: 0..63 out-parameters, 64..127 iovecs, 128..255 strings, 1024.. argv pointers,
;; 2048.. argument bytes, 16384.. file buffer.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_get" (func $fd_prestat_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 128) "\n")
  (data (i32.const 144) "input.txt")

  ;; Write [ptr, ptr+len) to stdout.
  (func $print (param $ptr i32) (param $len i32)
    (i32.store (i32.const 64) (local.get $ptr))
    (i32.store (i32.const 68) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 64) (i32.const 1) (i32.const 8))))

  ;; Length of the NUL-terminated string at ptr.
  (func $strlen (param $ptr i32) (result i32)
    (local $end i32)
    (local.set $end (local.get $ptr))
    (block $done (loop $scan
      (br_if $done (i32.eqz (i32.load8_u (local.get $end))))
      (local.set $end (i32.add (local.get $end) (i32.const 1)))
      (br $scan)))
    (i32.sub (local.get $end) (local.get $ptr)))

  ;; Print the arguments after argv[0], then input.txt of the preopened directory if any.
  (func (export "_start")
    (local $i i32) (local $arg i32) (local $fd i32)
    (if (call $args_sizes_get (i32.const 0) (i32.const 4)) (then unreachable))
    (if (call $args_get (i32.const 1024) (i32.const 2048)) (then unreachable))
    (local.set $i (i32.const 1))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (i32.load (i32.const 0))))
      (local.set $arg (i32.load (i32.add (i32.const 1024) (i32.shl (local.get $i) (i32.const 2)))))
      (call $print (local.get $arg) (call $strlen (local.get $arg)))
      (call $print (i32.const 128) (i32.const 1))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    ;; no preopened directory: done
    (if (call $fd_prestat_get (i32.const 3) (i32.const 16)) (then (return)))
    ;; open input.txt read-only (rights: fd_read), read it whole (one read: small files) and print
    (if (call $path_open (i32.const 3) (i32.const 0) (i32.const 144) (i32.const 9) (i32.const 0)
                         (i64.const 0x2) (i64.const 0) (i32.const 0) (i32.const 16))
      (then unreachable))
    (local.set $fd (i32.load (i32.const 16)))
    (i32.store (i32.const 64) (i32.const 16384))
    (i32.store (i32.const 68) (i32.const 16384))
    (if (call $fd_read (local.get $fd) (i32.const 64) (i32.const 1) (i32.const 8)) (then unreachable))
    (call $print (i32.const 16384) (i32.load (i32.const 8))))
)
