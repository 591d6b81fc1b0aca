;; Hostile guests, each to be contained to its own process (tests/test_reliability.py): a loop
;; with no host call, a memory bomb, unbounded recursion, a mailbox flood and a spawn bomb; and an
;; echo server to show that the others stay responsive.
;;
;; Memory: 0 out-slot for spawned pids, 8 received value, 16 report buffer, 24 tag filter,
;; 128+ function names, 1024+ an error message.
(module
  (import "lunatic::process" "spawn" (func $spawn (param i64 i64 i64 i32 i32 i32 i32 i32) (result i32)))
  (import "lunatic::process" "process_id" (func $self (result i64)))
  (import "lunatic::message" "create_data" (func $create (param i64 i64)))
  (import "lunatic::message" "write_data" (func $write (param i32 i32) (result i32)))
  (import "lunatic::message" "read_data" (func $read (param i32 i32) (result i32)))
  (import "lunatic::message" "send" (func $send (param i64) (result i32)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (import "lunatic::message" "get_tag" (func $get_tag (result i64)))
  (import "lunatic::message" "get_process_id" (func $sender (result i64)))
  (import "lunatic::registry" "get" (func $lookup (param i32 i32 i32 i32) (result i32)))
  (import "lunatic::error" "string_size" (func $error_size (param i64) (result i32)))
  (import "lunatic::error" "to_string" (func $error_text (param i64 i32)))
  (memory (export "memory") 1)
  (data (i32.const 128) "park")  ;; 4

  ;; Send `value` as an 8-byte message with `tag` to `pid`.
  (func $send_value (param $pid i64) (param $tag i64) (param $value i64)
    (call $create (local.get $tag) (i64.const 8))
    (i64.store (i32.const 0) (local.get $value))
    (drop (call $write (i32.const 0) (i32.const 8)))
    (drop (call $send (local.get $pid))))

  ;; Runs forever without a host call: only fuel yields let others run.
  (func (export "spin")
    (loop $forever (br $forever)))

  ;; Grows its memory a page at a time, writing to each new page, until growing fails.
  ;; Returns the pages it ended with.
  (func (export "memory_bomb") (result i32)
    (local $pages i32)
    (block $full
      (loop $more
        (local.set $pages (memory.grow (i32.const 1)))
        (br_if $full (i32.eq (local.get $pages) (i32.const -1)))
        (i32.store (i32.mul (local.get $pages) (i32.const 65536)) (i32.const 1))
        (br $more)))
    (memory.size))

  ;; Recurses without end.
  (func $recurse (export "recurse") (param $depth i64) (result i64)
    (i64.add (call $recurse (i64.add (local.get $depth) (i64.const 1))) (i64.const 1)))

  ;; Answers every message with its own tag and data, forever (request/reply).
  (func (export "echo")
    (loop $forever
      (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))
      (drop (call $read (i32.const 8) (i32.const 8)))
      (call $send_value (call $sender) (call $get_tag) (i64.load (i32.const 8)))
      (br $forever)))

  ;; Sends 1..n (tag 0) to `pid`, as fast as it can. Returns n.
  (func (export "flood") (param $pid i64) (param $n i64) (result i64)
    (local $i i64)
    (block $done
      (loop $next
        (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (call $send_value (local.get $pid) (i64.const 0) (local.get $i))
        (br $next)))
    (local.get $i))

  ;; Sends 1..n (tag 0) to `pid`, waiting 1 ms (for a message with tag -999, which nobody sends)
  ;; after every `every` values: a flood at a pace that another worker keeps up with even when
  ;; the machine is busy. Returns n.
  (func (export "paced_flood") (param $pid i64) (param $n i64) (param $every i64) (result i64)
    (local $i i64)
    (block $done
      (loop $next
        (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (call $send_value (local.get $pid) (i64.const 0) (local.get $i))
        (if (i64.eqz (i64.rem_u (local.get $i) (local.get $every)))
          (then
            (i64.store (i32.const 24) (i64.const -999))
            (drop (call $receive (i32.const 24) (i32.const 1) (i64.const 1)))))
        (br $next)))
    (local.get $i))

  ;; Waits for a message with tag 1 (skipping the others), then takes `n` tag-0 messages and
  ;; checks that they are 1..n in order. Returns (values in order, first value out of order or 0).
  (func (export "drain") (param $n i64) (result i64 i64)
    (local $count i64) (local $value i64)
    (i64.store (i32.const 24) (i64.const 1))
    (drop (call $receive (i32.const 24) (i32.const 1) (i64.const -1)))
    (i64.store (i32.const 24) (i64.const 0))
    (block $done
      (loop $next
        (br_if $done (i64.ge_u (local.get $count) (local.get $n)))
        (drop (call $receive (i32.const 24) (i32.const 1) (i64.const -1)))
        (drop (call $read (i32.const 8) (i32.const 8)))
        (local.set $value (i64.load (i32.const 8)))
        (if (i64.ne (local.get $value) (i64.add (local.get $count) (i64.const 1)))
          (then (return (local.get $count) (local.get $value))))
        (local.set $count (local.get $value))
        (br $next)))
    (local.get $count) (i64.const 0))

  ;; Looks a name up in the registry and returns: its worker's frames to the registry process
  ;; that came before have been handled once this returns.
  (func (export "registry_barrier")
    (drop (call $lookup (i32.const 128) (i32.const 4) (i32.const 0) (i32.const 8))))

  ;; Parks forever.
  (func (export "park")
    (i64.store (i32.const 24) (i64.const -999))
    (drop (call $receive (i32.const 24) (i32.const 1) (i64.const -1)))
    unreachable)

  ;; Spawns `park` children (placed over every worker) until spawning fails, reporting each
  ;; child's pid to `probe` (tag 4) and then the error's message (tag 7); probe 0: to nobody (a
  ;; send to pid 0 traps). Returns the children it spawned.
  (func (export "spawn_bomb") (param $probe i64) (result i64)
    (local $count i64) (local $error i64)
    (block $refused
      (loop $more
        (br_if $refused
          (call $spawn (i64.const 0) (i64.const -1) (i64.const -1) (i32.const 128) (i32.const 4)
                       (i32.const 0) (i32.const 0) (i32.const 0)))
        (local.set $count (i64.add (local.get $count) (i64.const 1)))
        (if (i64.ne (local.get $probe) (i64.const 0))
          (then (call $send_value (local.get $probe) (i64.const 4) (i64.load (i32.const 0)))))
        (br $more)))
    (local.set $error (i64.load (i32.const 0)))
    (call $error_text (local.get $error) (i32.const 1024))
    (call $create (i64.const 7) (i64.const 0))
    (drop (call $write (i32.const 1024) (call $error_size (local.get $error))))
    (if (i64.ne (local.get $probe) (i64.const 0)) (then (drop (call $send (local.get $probe)))))
    (local.get $count)))
