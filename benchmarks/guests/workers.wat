;; Workloads for the scenarios that run on a Runtime's workers (lunatic-mp bench).
(module
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "lunatic::process" "spawn"
    (func $spawn (param i64 i64 i64 i32 i32 i32 i32 i32) (result i32)))
  (import "lunatic::error" "drop" (func $drop_error (param i64)))
  (import "lunatic::process" "monitor" (func $monitor (param i64)))
  (import "lunatic::message" "create_data" (func $create (param i64 i64)))
  (import "lunatic::message" "write_data" (func $write (param i32 i32) (result i32)))
  (import "lunatic::message" "read_data" (func $read (param i32 i32) (result i32)))
  (import "lunatic::message" "send" (func $send (param i64) (result i32)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (import "lunatic::message" "get_tag" (func $get_tag (result i64)))
  (import "lunatic::message" "get_process_id" (func $sender (result i64)))
  (memory (export "memory") 8)
  ;; 0..64: small scratch; 64: clock out; 72: spawned pid or error id; 80: tag lists;
  ;; 96..: export names; 1024..: round-trip times (u64 ns each); 0..65536 is also the
  ;; stream payload buffer (its content does not matter).
  (data (i32.const 96) "noop")
  (data (i32.const 100) "idle")

  (func $now (result i64)
    (drop (call $clock (i32.const 1) (i64.const 1) (i32.const 64)))
    (i64.load (i32.const 64)))

  ;; --- spawn ------------------------------------------------------------------------------

  ;; Returns at once: a process that is spawned and runs to exit.
  (func (export "noop"))

  ;; Spawns `count` `noop` children (with this process's config and module: spawn_local keeps
  ;; them on this worker), `batch` at a time. The spawner monitors the last child of a batch and
  ;; waits for its ProcessDied (a normal exit sends nothing over a link, as in lunatic 0.13): the
  ;; run queue is FIFO and a `noop` child ends in its first slice, so by then the whole batch has
  ;; run to exit. Returns how many ran.
  (func (export "spawner") (param $count i64) (param $batch i64) (result i64)
    (local $done i64) (local $i i64) (local $n i64)
    (block $finished (loop $round
      (br_if $finished (i64.ge_u (local.get $done) (local.get $count)))
      (local.set $n (local.get $batch))
      (if (i64.gt_u (local.get $n) (i64.sub (local.get $count) (local.get $done)))
        (then (local.set $n (i64.sub (local.get $count) (local.get $done)))))
      (local.set $i (i64.const 0))
      (block $spawned (loop $more
        (br_if $spawned (i64.ge_u (local.get $i) (local.get $n)))
        (if (call $spawn (i64.const 0) (i64.const -1) (i64.const -1) (i32.const 96) (i32.const 4)
              (i32.const 0) (i32.const 0) (i32.const 72))
          (then unreachable))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $more)))
      (call $monitor (i64.load (i32.const 72)))  ;; the last child of the batch
      (if (i32.ne (call $receive (i32.const 0) (i32.const 0) (i64.const -1)) (i32.const 2))
        (then unreachable))
      (local.set $done (i64.add (local.get $done) (local.get $n)))
      (br $round)))
    (local.get $done))

  ;; --- idle -------------------------------------------------------------------------------

  ;; Waits for a message that never comes: an idle process.
  (func (export "idle") (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1))))

  ;; Spawns up to `count` `idle` children (unlinked, on this worker with spawn_local), stopping
  ;; at the first spawn that fails (the worker is at capacity). Returns how many it spawned;
  ;; they stay alive after it returns.
  (func (export "fill") (param $count i64) (result i64) (local $spawned i64)
    (block $full (loop $more
      (br_if $full (i64.ge_u (local.get $spawned) (local.get $count)))
      (if (call $spawn (i64.const 0) (i64.const -1) (i64.const -1) (i32.const 100) (i32.const 4)
            (i32.const 0) (i32.const 0) (i32.const 72))
        (then
          (call $drop_error (i64.load (i32.const 72)))
          (br $full)))
      (local.set $spawned (i64.add (local.get $spawned) (i64.const 1)))
      (br $more)))
    (local.get $spawned))

  ;; --- ping-pong --------------------------------------------------------------------------

  ;; Sends `count` pings to `peer`, timing each round trip; then sends the times (u64 ns each)
  ;; to `report`, and tells the peer to stop (tag 0).
  (func (export "ping") (param $peer i64) (param $count i64) (param $report i64)
    (local $i i64) (local $start i64) (local $at i32)
    (local.set $at (i32.const 1024))
    (block $done (loop $next
      (br_if $done (i64.ge_u (local.get $i) (local.get $count)))
      (local.set $start (call $now))
      (call $create (i64.const 1) (i64.const 8))
      (drop (call $send (local.get $peer)))
      (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))
      (i64.store (local.get $at) (i64.sub (call $now) (local.get $start)))
      (local.set $at (i32.add (local.get $at) (i32.const 8)))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br $next)))
    (call $create (i64.const 0) (i64.const 0))
    (drop (call $send (local.get $peer)))
    (call $create (i64.const 7) (i64.const 0))
    (drop (call $write (i32.const 1024) (i32.wrap_i64 (i64.mul (local.get $count) (i64.const 8)))))
    (drop (call $send (local.get $report))))

  ;; Answers each ping (tag 1) to its sender; returns at a message with tag 0.
  (func (export "pong") (local $peer i64)
    (loop $next
      (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))
      (if (i64.eq (call $get_tag) (i64.const 1))
        (then
          (local.set $peer (call $sender))
          (call $create (i64.const 2) (i64.const 8))
          (drop (call $send (local.get $peer)))
          (br $next)))))

  ;; --- stream -----------------------------------------------------------------------------

  ;; Sends `count` messages of `size` bytes (at most 65536) to `peer`.
  (func (export "produce") (param $peer i64) (param $count i64) (param $size i32)
    (block $done (loop $next
      (br_if $done (i64.eqz (local.get $count)))
      (call $create (i64.const 1) (i64.extend_i32_u (local.get $size)))
      (drop (call $write (i32.const 0) (local.get $size)))
      (drop (call $send (local.get $peer)))
      (local.set $count (i64.sub (local.get $count) (i64.const 1)))
      (br $next))))

  ;; Receives `count` messages, reading up to `size` bytes of each; returns how many it got.
  (func (export "consume") (param $count i64) (param $size i32) (result i64) (local $got i64)
    (block $done (loop $next
      (br_if $done (i64.ge_u (local.get $got) (local.get $count)))
      (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))
      (drop (call $read (i32.const 0) (local.get $size)))
      (local.set $got (i64.add (local.get $got) (i64.const 1)))
      (br $next)))
    (local.get $got))

  ;; --- ring -------------------------------------------------------------------------------

  ;; Send the `len` bytes at 0 to `to` with `tag`.
  (func $send_head (param $to i64) (param $tag i64) (param $len i32)
    (call $create (local.get $tag) (i64.const 16))
    (drop (call $write (i32.const 0) (local.get $len)))
    (drop (call $send (local.get $to))))

  ;; One process of a ring. It first waits for its successor's pid (tag 1, from the host). The
  ;; token (tag 2) carries (hops left, hops done) as two i64s at 0 and 8; each node passes it on
  ;; with one hop fewer and one more done. The node making the last hop reports the hops done to
  ;; `host` (tag 4) and sends a stop (tag 3) around the ring; a node that gets the stop passes it
  ;; on and returns. Returns how many times the token visited it.
  (func (export "node") (param $host i64) (result i64)
    (local $next i64) (local $visits i64)
    (i64.store (i32.const 80) (i64.const 1))
    (if (call $receive (i32.const 80) (i32.const 1) (i64.const -1)) (then unreachable))
    (if (i32.ne (call $read (i32.const 16) (i32.const 8)) (i32.const 8)) (then unreachable))
    (local.set $next (i64.load (i32.const 16)))
    (i64.store (i32.const 80) (i64.const 2))
    (i64.store (i32.const 88) (i64.const 3))
    (loop $more
      (if (call $receive (i32.const 80) (i32.const 2) (i64.const -1)) (then unreachable))
      (if (i64.eq (call $get_tag) (i64.const 3))
        (then
          (call $send_head (local.get $next) (i64.const 3) (i32.const 0))
          (return (local.get $visits))))
      (if (i32.ne (call $read (i32.const 0) (i32.const 16)) (i32.const 16)) (then unreachable))
      (local.set $visits (i64.add (local.get $visits) (i64.const 1)))
      (i64.store (i32.const 0) (i64.sub (i64.load (i32.const 0)) (i64.const 1)))
      (i64.store (i32.const 8) (i64.add (i64.load (i32.const 8)) (i64.const 1)))
      (if (i64.eqz (i64.load (i32.const 0)))
        (then
          (i64.store (i32.const 0) (i64.load (i32.const 8)))
          (call $send_head (local.get $host) (i64.const 4) (i32.const 8))
          (call $send_head (local.get $next) (i64.const 3) (i32.const 0))
          (return (local.get $visits))))
      (call $send_head (local.get $next) (i64.const 2) (i32.const 16))
      (br $more))
    unreachable)

  ;; --- fan-out ----------------------------------------------------------------------------

  ;; CPU-bound: an LCG iterated `n` times.
  (func (export "crunch") (param $n i64) (result i64) (local $x i64)
    (local.set $x (i64.const 1))
    (block $done (loop $next
      (br_if $done (i64.eqz (local.get $n)))
      (local.set $x (i64.add (i64.mul (local.get $x) (i64.const 6364136223846793005)) (i64.const 1442695040888963407)))
      (local.set $n (i64.sub (local.get $n) (i64.const 1)))
      (br $next)))
    (local.get $x))

  ;; A tiny job: returns x * x.
  (func (export "square") (param $x i64) (result i64)
    (i64.mul (local.get $x) (local.get $x))))
