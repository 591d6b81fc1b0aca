;; cli_env.wat: `_start` prints every WASI environment variable as KEY=VALUE, one a line.
;; Memory: 0..63 out-parameters, 64..127 iovec, 128 "\n", 1024.. pointers, 8192.. strings.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get"
    (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (memory (export "memory") 4)
  (data (i32.const 128) "\n")

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

  ;; Print each variable; trap if the environment does not fit (7 KiB of pointers, 240 KiB of text).
  (func (export "_start")
    (local $i i32) (local $var i32)
    (if (call $environ_sizes_get (i32.const 0) (i32.const 4)) (then unreachable))
    (if (i32.gt_u (i32.load (i32.const 0)) (i32.const 1792)) (then unreachable))
    (if (i32.gt_u (i32.load (i32.const 4)) (i32.const 245760)) (then unreachable))
    (if (call $environ_get (i32.const 1024) (i32.const 8192)) (then unreachable))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (i32.load (i32.const 0))))
      (local.set $var (i32.load (i32.add (i32.const 1024) (i32.shl (local.get $i) (i32.const 2)))))
      (call $print (local.get $var) (call $strlen (local.get $var)))
      (call $print (i32.const 128) (i32.const 1))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next))))
)
