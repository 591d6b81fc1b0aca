;; wasi_guest.wat: exercises WASI preview1 as lunatic_mp gives it to a process (stdout and stderr,
;; arguments, environment variables, preopened directories, proc_exit) and the lunatic::wasi
;; functions that fill a child's config with them.
;;
;; Memory layout:
;;   0..63       out-parameters (0: count, 4: size, 8: bytes moved, 16: fd, 24: pid)
;;   64..127     iovecs
;;   128..511    constant strings (data segments below)
;;   1024..2047  pointer array filled by args_get / environ_get
;;   2048..8191  string buffer for args_get / environ_get / fd_prestat_dir_name
;;   16384..32767 file and message buffer
;;   32768..     spawn parameter records
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get"
    (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_get" (func $fd_prestat_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_dir_name"
    (func $fd_prestat_dir_name (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "lunatic::process" "create_config" (func $create_config (result i64)))
  (import "lunatic::process" "spawn" (func $spawn (param i64 i64 i64 i32 i32 i32 i32 i32) (result i32)))
  (import "lunatic::process" "process_id" (func $process_id (result i64)))
  (import "lunatic::error" "string_size" (func $error_size (param i64) (result i32)))
  (import "lunatic::error" "to_string" (func $error_to_string (param i64 i32)))
  (import "lunatic::message" "create_data" (func $create_data (param i64 i64)))
  (import "lunatic::message" "read_data" (func $read_data (param i32 i32) (result i32)))
  (import "lunatic::message" "data_size" (func $data_size (result i64)))
  (import "lunatic::message" "send" (func $send (param i64) (result i32)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (import "lunatic::wasi" "config_add_environment_variable"
    (func $add_env (param i64 i32 i32 i32 i32)))
  (import "lunatic::wasi" "config_add_command_line_argument" (func $add_arg (param i64 i32 i32)))
  (import "lunatic::wasi" "config_preopen_dir" (func $preopen_dir (param i64 i32 i32)))

  (memory (export "memory") 1)
  (data (i32.const 128) "to stdout\n")
  (data (i32.const 144) "to stderr\n")
  (data (i32.const 160) "input.txt")
  (data (i32.const 176) "output.txt")
  (data (i32.const 192) "written by the guest\n")
  (data (i32.const 224) "../escaped.txt")
  (data (i32.const 240) "\n")
  (data (i32.const 256) "child")
  (data (i32.const 272) "child-arg")
  (data (i32.const 288) "CHILD")
  (data (i32.const 304) "yes")
  (data (i32.const 320) "/nonexistent/lunatic-mp-test-dir")

  ;; Write [ptr, ptr+len) to fd in one fd_write call; return the WASI errno.
  (func $write (param $fd i32) (param $ptr i32) (param $len i32) (result i32)
    (i32.store (i32.const 64) (local.get $ptr))
    (i32.store (i32.const 68) (local.get $len))
    (call $fd_write (local.get $fd) (i32.const 64) (i32.const 1) (i32.const 8)))

  ;; Length of the NUL-terminated string at ptr.
  (func $strlen (param $ptr i32) (result i32)
    (local $end i32)
    (local.set $end (local.get $ptr))
    (block $done (loop $scan
      (br_if $done (i32.eqz (i32.load8_u (local.get $end))))
      (local.set $end (i32.add (local.get $end) (i32.const 1)))
      (br $scan)))
    (i32.sub (local.get $end) (local.get $ptr)))

  ;; Print [ptr, ptr+len) and a newline on stdout.
  (func $print_line (param $ptr i32) (param $len i32)
    (drop (call $write (i32.const 1) (local.get $ptr) (local.get $len)))
    (drop (call $write (i32.const 1) (i32.const 240) (i32.const 1))))

  ;; Print each of the `count` NUL-terminated strings listed at `array`, one a line.
  (func $print_strings (param $array i32) (param $count i32)
    (local $i i32) (local $str i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
      (local.set $str (i32.load (i32.add (local.get $array) (i32.shl (local.get $i) (i32.const 2)))))
      (call $print_line (local.get $str) (call $strlen (local.get $str)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next))))

  ;; Open `input.txt` in the first preopened directory (fd 3), copy it to stdout and close it.
  ;; Returns 0, or 1000 + errno if the open fails, 2000 + errno if a read fails.
  (func $cat_input (result i32)
    (local $errno i32) (local $fd i32) (local $total i32)
    ;; path_open(dirfd 3, no dirflags, "input.txt", no oflags, rights fd_read, 0, no fdflags)
    (local.set $errno (call $path_open (i32.const 3) (i32.const 0) (i32.const 160) (i32.const 9)
      (i32.const 0) (i64.const 0x2) (i64.const 0) (i32.const 0) (i32.const 16)))
    (if (local.get $errno) (then (return (i32.add (i32.const 1000) (local.get $errno)))))
    (local.set $fd (i32.load (i32.const 16)))
    ;; read until end of file into the buffer at 16384
    (block $eof (loop $more
      (i32.store (i32.const 64) (i32.add (i32.const 16384) (local.get $total)))
      (i32.store (i32.const 68) (i32.sub (i32.const 16384) (local.get $total)))
      (local.set $errno (call $fd_read (local.get $fd) (i32.const 64) (i32.const 1) (i32.const 8)))
      (if (local.get $errno) (then (return (i32.add (i32.const 2000) (local.get $errno)))))
      (br_if $eof (i32.eqz (i32.load (i32.const 8))))
      (local.set $total (i32.add (local.get $total) (i32.load (i32.const 8))))
      (br $more)))
    (drop (call $fd_close (local.get $fd)))
    (drop (call $write (i32.const 1) (i32.const 16384) (local.get $total)))
    (i32.const 0))

  ;; Write one line to stdout and one to stderr; returns the sum of the errnos (0).
  (func (export "hello") (result i32)
    (i32.add
      (call $write (i32.const 1) (i32.const 128) (i32.const 10))
      (call $write (i32.const 2) (i32.const 144) (i32.const 10))))

  ;; Print every argument (argv[0] included), one a line; returns argc.
  (func (export "print_args") (result i32)
    (if (call $args_sizes_get (i32.const 0) (i32.const 4)) (then unreachable))
    (if (call $args_get (i32.const 1024) (i32.const 2048)) (then unreachable))
    (call $print_strings (i32.const 1024) (i32.load (i32.const 0)))
    (i32.load (i32.const 0)))

  ;; Print every environment variable as KEY=VALUE, one a line; returns their count.
  (func (export "print_env") (result i32)
    (if (call $environ_sizes_get (i32.const 0) (i32.const 4)) (then unreachable))
    (if (call $environ_get (i32.const 1024) (i32.const 2048)) (then unreachable))
    (call $print_strings (i32.const 1024) (i32.load (i32.const 0)))
    (i32.load (i32.const 0)))

  ;; End the process with proc_exit(code).
  (func (export "exit") (param $code i32)
    (call $proc_exit (local.get $code))
    unreachable)

  ;; Print the guest path of the first preopened directory (fd 3); returns its errno (0).
  (func (export "preopen_name") (result i32)
    (local $errno i32) (local $len i32)
    (local.set $errno (call $fd_prestat_get (i32.const 3) (i32.const 0)))
    (if (local.get $errno) (then (return (local.get $errno))))
    (local.set $len (i32.load (i32.const 4)))  ;; prestat: tag u8, padding, name_len u32
    (local.set $errno (call $fd_prestat_dir_name (i32.const 3) (i32.const 2048) (local.get $len)))
    (if (local.get $errno) (then (return (local.get $errno))))
    (call $print_line (i32.const 2048) (local.get $len))
    (i32.const 0))

  ;; Copy input.txt of the preopened directory to stdout, then create output.txt there.
  ;; Returns 0, or the first failure as in $cat_input (3000 + errno: creating output.txt).
  (func (export "copy_in") (result i32)
    (local $errno i32) (local $fd i32)
    (local.set $errno (call $cat_input))
    (if (local.get $errno) (then (return (local.get $errno))))
    ;; path_open(3, 0, "output.txt", O_CREAT | O_TRUNC, rights fd_write, 0, 0)
    (local.set $errno (call $path_open (i32.const 3) (i32.const 0) (i32.const 176) (i32.const 10)
      (i32.const 9) (i64.const 0x40) (i64.const 0) (i32.const 0) (i32.const 16)))
    (if (local.get $errno) (then (return (i32.add (i32.const 3000) (local.get $errno)))))
    (local.set $fd (i32.load (i32.const 16)))
    (local.set $errno (call $write (local.get $fd) (i32.const 192) (i32.const 21)))
    (drop (call $fd_close (local.get $fd)))
    (if (local.get $errno) (then (return (i32.add (i32.const 4000) (local.get $errno)))))
    (i32.const 0))

  ;; Try to create ../escaped.txt, outside the preopened directory; returns the errno.
  (func (export "escape") (result i32)
    (call $path_open (i32.const 3) (i32.const 0) (i32.const 224) (i32.const 14)
      (i32.const 1) (i64.const 0x40) (i64.const 0) (i32.const 0) (i32.const 16)))

  ;; Receive a directory path from the host, build a fresh config with lunatic::wasi (argument
  ;; "child-arg", variable CHILD=yes, that directory preopened), spawn `child` under it and wait
  ;; for its message. Returns receive's result (0: data).
  (func (export "spawn_configured") (result i32)
    (local $config i64) (local $len i32)
    (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))
    (local.set $len (i32.wrap_i64 (call $data_size)))
    (drop (call $read_data (i32.const 16384) (local.get $len)))
    (local.set $config (call $create_config))
    (call $add_arg (local.get $config) (i32.const 272) (i32.const 9))
    (call $add_env (local.get $config) (i32.const 288) (i32.const 5) (i32.const 304) (i32.const 3))
    (call $preopen_dir (local.get $config) (i32.const 16384) (local.get $len))
    ;; one i64 parameter: our pid
    (i32.store8 (i32.const 32768) (i32.const 0x7E))
    (i64.store (i32.const 32769) (call $process_id))
    (i64.store (i32.const 32777) (i64.const 0))
    (if (call $spawn (i64.const 0) (local.get $config) (i64.const -1) (i32.const 256) (i32.const 5)
                     (i32.const 32768) (i32.const 17) (i32.const 24))
      (then unreachable))
    (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))

  ;; The child of spawn_configured: print its arguments, its environment and input.txt of its
  ;; preopened directory, then tell the parent it is done (an empty message).
  (func (export "child") (param $parent i64)
    (drop (call $args_sizes_get (i32.const 0) (i32.const 4)))
    (drop (call $args_get (i32.const 1024) (i32.const 2048)))
    (call $print_strings (i32.const 1024) (i32.load (i32.const 0)))
    (drop (call $environ_sizes_get (i32.const 0) (i32.const 4)))
    (drop (call $environ_get (i32.const 1024) (i32.const 2048)))
    (call $print_strings (i32.const 1024) (i32.load (i32.const 0)))
    (if (call $cat_input) (then unreachable))
    (call $create_data (i64.const 0) (i64.const 0))
    (drop (call $send (local.get $parent))))

  ;; Receive a directory path, spawn `child` under a fresh config that preopens it, and wait
  ;; for the child's done message: returns 0. If spawn fails, prints its error message on
  ;; stdout and returns 1.
  (func (export "spawn_preopening") (result i32)
    (local $config i64) (local $len i32) (local $error i64)
    (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))
    (local.set $len (i32.wrap_i64 (call $data_size)))
    (drop (call $read_data (i32.const 16384) (local.get $len)))
    (local.set $config (call $create_config))
    (call $preopen_dir (local.get $config) (i32.const 16384) (local.get $len))
    (i32.store8 (i32.const 32768) (i32.const 0x7E))
    (i64.store (i32.const 32769) (call $process_id))
    (i64.store (i32.const 32777) (i64.const 0))
    (if (call $spawn (i64.const 0) (local.get $config) (i64.const -1) (i32.const 256) (i32.const 5)
                     (i32.const 32768) (i32.const 17) (i32.const 24))
      (then
        (local.set $error (i64.load (i32.const 24)))
        (local.set $len (call $error_size (local.get $error)))
        (call $error_to_string (local.get $error) (i32.const 16384))
        (call $print_line (i32.const 16384) (local.get $len))
        (return (i32.const 1))))
    (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))
    (i32.const 0))

  ;; Spawn `child` under a fresh config that preopens a directory that does not exist. Prints
  ;; the error message on stdout when spawn fails; returns spawn's result (1: error).
  (func (export "spawn_bad_preopen") (result i32)
    (local $config i64) (local $result i32) (local $error i64) (local $len i32)
    (local.set $config (call $create_config))
    (call $preopen_dir (local.get $config) (i32.const 320) (i32.const 32))
    (i32.store8 (i32.const 32768) (i32.const 0x7E))
    (i64.store (i32.const 32769) (call $process_id))
    (i64.store (i32.const 32777) (i64.const 0))
    (local.set $result (call $spawn (i64.const 0) (local.get $config) (i64.const -1)
      (i32.const 256) (i32.const 5) (i32.const 32768) (i32.const 17) (i32.const 24)))
    (if (i32.eq (local.get $result) (i32.const 1))
      (then
        (local.set $error (i64.load (i32.const 24)))
        (local.set $len (call $error_size (local.get $error)))
        (call $error_to_string (local.get $error) (i32.const 16384))
        (call $print_line (i32.const 16384) (local.get $len))))
    (local.get $result))

  ;; Add an argument to a config id that does not exist: must trap.
  (func (export "bad_config")
    (call $add_arg (i64.const 12345) (i32.const 272) (i32.const 9)))
)
