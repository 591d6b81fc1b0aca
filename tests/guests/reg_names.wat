;; lunatic::registry from a guest: put/get/remove_versioned with versions, put/get/remove with
;; opaque names (as lunatic 0.13 and lunatic-rs use them), names of processes that die, and
;; lunatic::process::get_or_spawn. Each scenario returns what it observed.
;;
;; Memory: 0 node slot, 8 pid slot (also the error id of a failed get_or_spawn), 24 the parking
;; tag, 128+ names (one every 32 bytes).
(module
  (import "lunatic::registry" "put_versioned" (func $put (param i32 i32 i64 i64)))
  (import "lunatic::registry" "get_versioned" (func $get (param i32 i32 i32 i32) (result i32)))
  (import "lunatic::registry" "remove_versioned" (func $remove (param i32 i32)))
  (import "lunatic::registry" "put" (func $put_exact (param i32 i32 i64 i64)))
  (import "lunatic::registry" "get" (func $get_exact (param i32 i32 i32 i32) (result i32)))
  (import "lunatic::registry" "remove" (func $remove_exact (param i32 i32)))
  (import "lunatic::process" "get_or_spawn"
    (func $get_or_spawn (param i32 i32 i64 i64 i64 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "lunatic::process" "process_id" (func $self (result i64)))
  (import "lunatic::process" "exists" (func $exists (param i64) (result i32)))
  (import "lunatic::process" "kill" (func $kill (param i64)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (import "lunatic::error" "string_size" (func $error_size (param i64) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 128) "counter@1.0.0")          ;; 13
  (data (i32.const 160) "counter@1.2.0")          ;; 13
  (data (i32.const 192) "counter@1.5.3")          ;; 13
  (data (i32.const 224) "counter@2.0.0")          ;; 13
  (data (i32.const 256) "counter@^1.1")           ;; 12
  (data (i32.const 288) "counter@1.2")            ;; 11, a bare requirement: ^1.2
  (data (i32.const 320) "counter")                ;; 7
  (data (i32.const 352) "missing")                ;; 7
  (data (i32.const 384) "svc@1.0.0")              ;; 9
  (data (i32.const 416) "svc")                    ;; 3
  (data (i32.const 448) "worker")                 ;; 6
  (data (i32.const 480) "park")                   ;; 4
  (data (i32.const 512) "nope")                   ;; 4
  (data (i32.const 544) "counter@not a version")  ;; 21
  (data (i32.const 576) "crate")                  ;; 5
  (data (i32.const 608) "crate@0.1.0::mod::Ident") ;; 23, a lunatic-rs process name

  ;; --- helpers -----------------------------------------------------------------------------

  ;; get(name): the pid found, or -1 if the name is not registered.
  (func $pid_of (param $name i32) (param $len i32) (result i64)
    (if (result i64) (call $get (local.get $name) (local.get $len) (i32.const 0) (i32.const 8))
      (then (i64.const -1))
      (else (i64.load (i32.const 8)))))

  ;; get_or_spawn(name, `park`, unlinked, own config and module): the result code; node and pid
  ;; (or error id) land at 0 and 8.
  (func $get_or_spawn_park (param $name i32) (param $len i32) (result i32)
    (call $get_or_spawn (local.get $name) (local.get $len)
      (i64.const 0) (i64.const -1) (i64.const -1)
      (i32.const 480) (i32.const 4) (i32.const 0) (i32.const 0)
      (i32.const 0) (i32.const 8)))

  ;; Wait forever for a message with tag -999, which nobody sends.
  (func $park
    (i64.store (i32.const 24) (i64.const -999))
    (drop (call $receive (i32.const 24) (i32.const 1) (i64.const -1)))
    unreachable)

  ;; --- scenarios ---------------------------------------------------------------------------

  ;; Never returns on its own (what get_or_spawn starts).
  (func (export "park") (call $park))

  ;; Registers four versions of `counter` for made-up pids 101..104 (1.5.3 on node 3), then
  ;; looks them up. Returns (get "missing" code, pid and node for "counter@^1.1", pid for
  ;; "counter", pid for "counter@1.2", pid for "counter@^1.1" after removing 1.5.3, get
  ;; "counter" code after removing every version).
  (func (export "versions") (result i32 i64 i64 i64 i64 i64 i32)
    (local $missing i32) (local $caret i64) (local $caret_node i64)
    (local $plain i64) (local $bare i64) (local $after i64)
    (call $put (i32.const 128) (i32.const 13) (i64.const 0) (i64.const 101))
    (call $put (i32.const 160) (i32.const 13) (i64.const 0) (i64.const 102))
    (call $put (i32.const 192) (i32.const 13) (i64.const 3) (i64.const 103))
    (call $put (i32.const 224) (i32.const 13) (i64.const 0) (i64.const 104))
    (local.set $missing (call $get (i32.const 352) (i32.const 7) (i32.const 0) (i32.const 8)))
    (local.set $caret (call $pid_of (i32.const 256) (i32.const 12)))
    (local.set $caret_node (i64.load (i32.const 0)))
    (local.set $plain (call $pid_of (i32.const 320) (i32.const 7)))
    (local.set $bare (call $pid_of (i32.const 288) (i32.const 11)))
    (call $remove (i32.const 192) (i32.const 13))
    (local.set $after (call $pid_of (i32.const 256) (i32.const 12)))
    (call $remove (i32.const 320) (i32.const 7))
    (local.get $missing) (local.get $caret) (local.get $caret_node) (local.get $plain)
    (local.get $bare) (local.get $after)
    (call $get (i32.const 320) (i32.const 7) (i32.const 0) (i32.const 8)))

  ;; Registers itself as "svc@1.0.0" and "svc", then parks.
  (func (export "register_and_park")
    (call $put (i32.const 384) (i32.const 9) (i64.const 0) (call $self))
    (call $put (i32.const 416) (i32.const 3) (i64.const 0) (call $self))
    (call $park))

  ;; Registers itself as "svc@1.0.0" and returns its pid.
  (func (export "register_and_return") (result i64)
    (call $put (i32.const 384) (i32.const 9) (i64.const 0) (call $self))
    (call $self))

  ;; Registers itself as "svc" and traps.
  (func (export "register_and_trap")
    (call $put (i32.const 416) (i32.const 3) (i64.const 0) (call $self))
    unreachable)

  ;; Registers `pid` (another process) as "svc" and returns.
  (func (export "register_other") (param $pid i64)
    (call $put (i32.const 416) (i32.const 3) (i64.const 0) (local.get $pid)))

  ;; Looks up "svc". Returns (get code, node, pid); node and pid are -1 when not found.
  (func (export "lookup_svc") (result i32 i64 i64)
    (i64.store (i32.const 0) (i64.const -1))
    (i64.store (i32.const 8) (i64.const -1))
    (call $get (i32.const 416) (i32.const 3) (i32.const 0) (i32.const 8))
    (i64.load (i32.const 0))
    (i64.load (i32.const 8)))

  ;; get_or_spawn("worker") twice. Returns (first code, first pid, second code, second pid,
  ;; second node, exists(first pid)).
  (func (export "get_or_spawn_twice") (result i32 i64 i32 i64 i64 i32)
    (local $first_code i32) (local $first i64)
    (local.set $first_code (call $get_or_spawn_park (i32.const 448) (i32.const 6)))
    (local.set $first (i64.load (i32.const 8)))
    (i64.store (i32.const 0) (i64.const -1))
    (i64.store (i32.const 8) (i64.const -1))
    (local.get $first_code) (local.get $first)
    (call $get_or_spawn_park (i32.const 448) (i32.const 6))
    (i64.load (i32.const 8))
    (i64.load (i32.const 0))
    (call $exists (local.get $first)))

  ;; get_or_spawn("worker"), kills the worker, get_or_spawn("worker") again. Returns (first
  ;; code, first pid, second code, second pid).
  (func (export "get_or_spawn_after_death") (result i32 i64 i32 i64)
    (local $first_code i32) (local $first i64)
    (local.set $first_code (call $get_or_spawn_park (i32.const 448) (i32.const 6)))
    (local.set $first (i64.load (i32.const 8)))
    (call $kill (local.get $first))
    (local.get $first_code) (local.get $first)
    (call $get_or_spawn_park (i32.const 448) (i32.const 6))
    (i64.load (i32.const 8)))

  ;; get_or_spawn("worker") of a missing export `nope`. Returns (code, length of the error
  ;; message, get "worker" code afterwards).
  (func (export "get_or_spawn_error") (result i32 i32 i32)
    (call $get_or_spawn (i32.const 448) (i32.const 6)
      (i64.const 0) (i64.const -1) (i64.const -1)
      (i32.const 512) (i32.const 4) (i32.const 0) (i32.const 0)
      (i32.const 0) (i32.const 8))
    (call $error_size (i64.load (i32.const 8)))
    (call $get (i32.const 448) (i32.const 6) (i32.const 0) (i32.const 16)))

  ;; get_or_spawn with a lunatic-rs process name ("crate@0.1.0::mod::Ident"), taken as it is.
  ;; Returns (code, pid spawned, get (opaque) of the name: code and pid).
  (func (export "get_or_spawn_lunatic_rs_name") (result i32 i64 i32 i64)
    (call $get_or_spawn_park (i32.const 608) (i32.const 23))
    (i64.load (i32.const 8))
    (i64.store (i32.const 8) (i64.const -1))
    (call $get_exact (i32.const 608) (i32.const 23) (i32.const 0) (i32.const 8))
    (i64.load (i32.const 8)))

  ;; Opaque names (put/get/remove) next to versioned ones. Returns (pid found for the lunatic-rs
  ;; name, get "crate" code, get_versioned "counter" code after an opaque put of
  ;; "counter@1.0.0", pid found for that opaque name, get "svc" code after put_versioned
  ;; "svc@1.0.0", get_versioned "svc" pid after an opaque put of "svc", get code of the
  ;; lunatic-rs name after its remove).
  (func (export "opaque_names") (result i64 i32 i32 i64 i32 i64 i32)
    (call $put_exact (i32.const 608) (i32.const 23) (i64.const 0) (i64.const 201))
    (i64.store (i32.const 8) (i64.const -1))
    (drop (call $get_exact (i32.const 608) (i32.const 23) (i32.const 0) (i32.const 8)))
    (i64.load (i32.const 8))
    (call $get_exact (i32.const 576) (i32.const 5) (i32.const 0) (i32.const 8))
    (call $put_exact (i32.const 128) (i32.const 13) (i64.const 0) (i64.const 202))
    (call $get (i32.const 320) (i32.const 7) (i32.const 0) (i32.const 8))
    (call $pid_exact (i32.const 128) (i32.const 13))
    (call $put (i32.const 384) (i32.const 9) (i64.const 0) (i64.const 203))
    (call $get_exact (i32.const 416) (i32.const 3) (i32.const 0) (i32.const 8))
    (call $put_exact (i32.const 416) (i32.const 3) (i64.const 0) (i64.const 204))
    (call $remove (i32.const 384) (i32.const 9))
    (call $pid_of (i32.const 416) (i32.const 3))
    (call $remove_exact (i32.const 608) (i32.const 23))
    (call $get_exact (i32.const 608) (i32.const 23) (i32.const 0) (i32.const 8)))

  ;; get (opaque)(name): the pid found, or -1.
  (func $pid_exact (param $name i32) (param $len i32) (result i64)
    (if (result i64) (call $get_exact (local.get $name) (local.get $len) (i32.const 0) (i32.const 8))
      (then (i64.const -1))
      (else (i64.load (i32.const 8)))))

  ;; Looks up a name whose requirement does not parse: traps. Returns the code if not.
  (func (export "get_invalid") (result i32)
    (call $get (i32.const 544) (i32.const 21) (i32.const 0) (i32.const 8))))
