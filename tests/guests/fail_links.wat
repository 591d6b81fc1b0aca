;; Links, monitors and kills between processes on different workers of a Runtime, and watchers
;; of processes on a worker that is about to be lost.
;;
;; Placement: a guest's children go round robin over the live workers (one counter per worker).
;; `$spawn_remote` first spawns harmless `ok` children until one lands on this process's own
;; worker, so that (with two workers) the next child lands on the other one; scenarios return or
;; report the child's pid so that the test can check where it ran.
;;
;; Reports go to a "probe" (the host program's mailbox, runtime.pid) as 8-byte messages whose tag
;; says what they are.
;;
;; Memory: 0 out-slot for spawned pids, 16 i64 buffer for reports, 24 the parking tag,
;; 64 spawn parameter records, 128+ function names.
(module
  (import "lunatic::process" "spawn" (func $spawn (param i64 i64 i64 i32 i32 i32 i32 i32) (result i32)))
  (import "lunatic::process" "process_id" (func $self (result i64)))
  (import "lunatic::process" "die_when_link_dies" (func $die_when_link_dies (param i32)))
  (import "lunatic::process" "link" (func $link (param i64 i64)))
  (import "lunatic::process" "unlink" (func $unlink (param i64)))
  (import "lunatic::process" "monitor" (func $monitor (param i64)))
  (import "lunatic::process" "kill" (func $kill (param i64)))
  (import "lunatic::message" "create_data" (func $create (param i64 i64)))
  (import "lunatic::message" "write_data" (func $write (param i32 i32) (result i32)))
  (import "lunatic::message" "send" (func $send (param i64) (result i32)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (import "lunatic::message" "get_tag" (func $get_tag (result i64)))
  (import "lunatic::message" "get_process_id" (func $get_process_id (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 128) "trap")             ;; 4
  (data (i32.const 136) "ok")               ;; 2
  (data (i32.const 144) "park")             ;; 4
  (data (i32.const 152) "trap_after_msg")   ;; 14
  (data (i32.const 176) "unlink_parent")    ;; 13

  ;; --- helpers -----------------------------------------------------------------------------

  (func $worker_of (param $pid i64) (result i64)
    (i64.and (i64.shr_u (local.get $pid) (i64.const 32)) (i64.const 0xFFFF)))

  ;; Spawn this module's export named at (name, len), linked with tag `link` (0: unlinked), with
  ;; the parameter records at (params, params_len); trap if spawning fails. Returns the pid.
  (func $spawn_fn (param $link i64) (param $name i32) (param $len i32)
                  (param $params i32) (param $params_len i32) (result i64)
    (if (call $spawn (local.get $link) (i64.const -1) (i64.const -1)
                     (local.get $name) (local.get $len)
                     (local.get $params) (local.get $params_len) (i32.const 0))
      (then unreachable))
    (i64.load (i32.const 0)))

  ;; Like $spawn_fn, but on another worker than this process's own (with two workers).
  (func $spawn_remote (param $link i64) (param $name i32) (param $len i32)
                      (param $params i32) (param $params_len i32) (result i64)
    (block $here
      (loop $again
        (br_if $here
          (i64.eq
            (call $worker_of
              (call $spawn_fn (i64.const 0) (i32.const 136) (i32.const 2) (i32.const 0) (i32.const 0)))
            (call $worker_of (call $self))))
        (br $again)))
    (call $spawn_fn (local.get $link) (local.get $name) (local.get $len)
                    (local.get $params) (local.get $params_len)))

  ;; Send `value` as an 8-byte message with `tag` to `probe`.
  (func $report (param $probe i64) (param $tag i64) (param $value i64)
    (call $create (local.get $tag) (i64.const 8))
    (i64.store (i32.const 16) (local.get $value))
    (drop (call $write (i32.const 16) (i32.const 8)))
    (drop (call $send (local.get $probe))))

  ;; Send an empty message (tag 0) to `pid`.
  (func $poke (param $pid i64)
    (call $create (i64.const 0) (i64.const 0))
    (drop (call $send (local.get $pid))))

  ;; Receive any message, waiting at most `timeout_ms` (-1: forever); the receive code.
  (func $receive_within (param $timeout_ms i64) (result i32)
    (call $receive (i32.const 0) (i32.const 0) (local.get $timeout_ms)))

  ;; Wait forever for a message with tag -999, which nobody sends.
  (func $park
    (i64.store (i32.const 24) (i64.const -999))
    (drop (call $receive (i32.const 24) (i32.const 1) (i64.const -1)))
    unreachable)

  ;; --- children ----------------------------------------------------------------------------

  ;; Fails at once.
  (func (export "trap") unreachable)

  ;; Returns 42 at once (a normal death).
  (func (export "ok") (result i64) (i64.const 42))

  ;; Never returns on its own.
  (func (export "park") (call $park))

  ;; Runs forever without a host call: only fuel yields let others run.
  (func (export "spin")
    (loop $forever (br $forever)))

  ;; Fails after receiving one message.
  (func (export "trap_after_msg")
    (drop (call $receive_within (i64.const -1)))
    unreachable)

  ;; Unlinks itself from `parent` (on another worker) and monitors it, tells the parent to go on
  ;; (the parent then fails), and reports to `probe` (tag 2) the code of the first message it then
  ;; gets: 2 (ProcessDied) if the unlink reached the parent's worker. Had it not, the parent's
  ;; LinkDied(Failure) would come first and kill this process (die_when_link_dies is 1).
  (func (export "unlink_parent") (param $parent i64) (param $probe i64)
    (call $unlink (local.get $parent))
    (call $monitor (local.get $parent))
    (call $poke (local.get $parent))
    (call $report (local.get $probe) (i64.const 2) (i64.extend_i32_u (call $receive_within (i64.const -1)))))

  ;; --- links across workers ----------------------------------------------------------------

  ;; Spawns `trap_after_msg` on the other worker, linked (tag 7), reports its pid to `probe`
  ;; (tag 1), lets it fail and waits: die_when_link_dies is 1, so this process is killed.
  (func (export "link_cascade") (param $probe i64)
    (local $child i64)
    (local.set $child
      (call $spawn_remote (i64.const 7) (i32.const 152) (i32.const 14) (i32.const 0) (i32.const 0)))
    (call $report (local.get $probe) (i64.const 1) (local.get $child))
    (call $poke (local.get $child))
    (drop (call $receive_within (i64.const -1))))

  ;; die_when_link_dies(0), spawns `trap` on the other worker linked (tag 7) and receives.
  ;; Returns (receive code, get_tag, get_process_id, child pid).
  (func (export "link_died_msg") (result i32 i64 i64 i64)
    (local $child i64) (local $code i32)
    (call $die_when_link_dies (i32.const 0))
    (local.set $child
      (call $spawn_remote (i64.const 7) (i32.const 128) (i32.const 4) (i32.const 0) (i32.const 0)))
    (local.set $code (call $receive_within (i64.const -1)))
    (local.get $code) (call $get_tag) (call $get_process_id) (local.get $child))

  ;; Spawns `unlink_parent(self, probe)` on the other worker linked (tag 5), reports its pid to
  ;; `probe` (tag 1), waits for its go-ahead and fails.
  (func (export "unlinked_by_child") (param $probe i64)
    (i32.store8 (i32.const 64) (i32.const 0x7E))
    (i64.store (i32.const 65) (call $self))
    (i32.store8 (i32.const 81) (i32.const 0x7E))
    (i64.store (i32.const 82) (local.get $probe))
    (call $report (local.get $probe) (i64.const 1)
      (call $spawn_remote (i64.const 5) (i32.const 176) (i32.const 13) (i32.const 64) (i32.const 34)))
    (drop (call $receive_within (i64.const -1)))
    unreachable)

  ;; Spawns `trap_after_msg` on the other worker linked (tag 5), unlinks it, monitors it and lets
  ;; it fail. Returns (first receive code, a non-waiting receive's code, dead pid, child pid):
  ;; ProcessDied must be the only message, and this process must survive.
  (func (export "unlink_child") (result i32 i32 i64 i64)
    (local $child i64) (local $code i32) (local $dead i64)
    (local.set $child
      (call $spawn_remote (i64.const 5) (i32.const 152) (i32.const 14) (i32.const 0) (i32.const 0)))
    (call $unlink (local.get $child))
    (call $monitor (local.get $child))
    (call $poke (local.get $child))
    (local.set $code (call $receive_within (i64.const -1)))
    (local.set $dead (call $get_process_id))
    (local.get $code) (call $receive_within (i64.const 0)) (local.get $dead) (local.get $child))

  ;; With die_when_link_dies(0), links (tag 11) to `pid` and waits at most `timeout_ms` for a
  ;; message: with `pid` missing, LinkDied(NoProcess). Returns (receive code, get_tag,
  ;; get_process_id), or (9027, 0, 0) on timeout.
  (func (export "link_to") (param $pid i64) (param $timeout_ms i64) (result i32 i64 i64)
    (local $code i32)
    (call $die_when_link_dies (i32.const 0))
    (call $link (i64.const 11) (local.get $pid))
    (local.set $code (call $receive_within (local.get $timeout_ms)))
    (if (i32.eq (local.get $code) (i32.const 9027))
      (then (return (local.get $code) (i64.const 0) (i64.const 0))))
    (local.get $code) (call $get_tag) (call $get_process_id))

  ;; Links (tag 11) to `pid` dying with its links (the default) and waits at most `timeout_ms`:
  ;; with `pid` missing the NoProcess kills it (lunatic 0.13). Returns the receive code if not.
  (func (export "link_to_dying") (param $pid i64) (param $timeout_ms i64) (result i32)
    (call $link (i64.const 11) (local.get $pid))
    (call $receive_within (local.get $timeout_ms)))

  ;; --- monitors and kills across workers ---------------------------------------------------

  ;; Spawns `trap_after_msg` on the other worker unlinked, monitors it and lets it fail.
  ;; Returns (receive code, get_process_id, child pid).
  (func (export "monitor_remote") (result i32 i64 i64)
    (local $child i64) (local $code i32)
    (local.set $child
      (call $spawn_remote (i64.const 0) (i32.const 152) (i32.const 14) (i32.const 0) (i32.const 0)))
    (call $monitor (local.get $child))
    (call $poke (local.get $child))
    (local.set $code (call $receive_within (i64.const -1)))
    (local.get $code) (call $get_process_id) (local.get $child))

  ;; Monitors `pid` and waits at most `timeout_ms` for a message.
  ;; Returns (receive code, get_process_id), or (9027, 0) on timeout.
  (func (export "monitor_pid") (param $pid i64) (param $timeout_ms i64) (result i32 i64)
    (local $code i32)
    (call $monitor (local.get $pid))
    (local.set $code (call $receive_within (local.get $timeout_ms)))
    (if (i32.eq (local.get $code) (i32.const 9027))
      (then (return (local.get $code) (i64.const 0))))
    (local.get $code) (call $get_process_id))

  ;; Monitors `pid`, kills it and waits for its ProcessDied. Returns (receive code, get_process_id).
  (func (export "kill_pid") (param $pid i64) (result i32 i64)
    (local $code i32)
    (call $monitor (local.get $pid))
    (call $kill (local.get $pid))
    (local.set $code (call $receive_within (i64.const -1)))
    (local.get $code) (call $get_process_id))

  ;; Returns (own pid, a first child's pid, a second child's pid): where placement puts them.
  (func (export "placement") (result i64 i64 i64)
    (call $self)
    (call $spawn_fn (i64.const 0) (i32.const 136) (i32.const 2) (i32.const 0) (i32.const 0))
    (call $spawn_fn (i64.const 0) (i32.const 136) (i32.const 2) (i32.const 0) (i32.const 0)))

  ;; die_when_link_dies(0), reports its own pid to `probe` (tag 4), and waits at most `timeout_ms`
  ;; for a message (a LinkDied, once something links to it and fails).
  ;; Returns (receive code, get_tag, get_process_id), or (9027, 0, 0) on timeout.
  (func (export "await_link_died") (param $probe i64) (param $timeout_ms i64) (result i32 i64 i64)
    (local $code i32)
    (call $die_when_link_dies (i32.const 0))
    (call $report (local.get $probe) (i64.const 4) (call $self))
    (local.set $code (call $receive_within (local.get $timeout_ms)))
    (if (i32.eq (local.get $code) (i32.const 9027))
      (then (return (local.get $code) (i64.const 0) (i64.const 0))))
    (local.get $code) (call $get_tag) (call $get_process_id))

  ;; --- watchers of a process whose worker will be lost -------------------------------------

  ;; die_when_link_dies(0), links (tag 13) to `pid`, reports its own pid to `probe` (tag 4) and
  ;; waits. Returns (receive code, get_tag, get_process_id).
  (func (export "watch_link") (param $pid i64) (param $probe i64) (result i32 i64 i64)
    (local $code i32)
    (call $die_when_link_dies (i32.const 0))
    (call $link (i64.const 13) (local.get $pid))
    (call $report (local.get $probe) (i64.const 4) (call $self))
    (local.set $code (call $receive_within (i64.const -1)))
    (local.get $code) (call $get_tag) (call $get_process_id))

  ;; Links (tag 14) to `pid` with die_when_link_dies at 1, reports its own pid to `probe` (tag 4)
  ;; and parks: a failure of `pid` kills it.
  (func (export "link_park") (param $pid i64) (param $probe i64)
    (call $link (i64.const 14) (local.get $pid))
    (call $report (local.get $probe) (i64.const 4) (call $self))
    (call $park))

  ;; Monitors `pid`, reports its own pid to `probe` (tag 4) and waits.
  ;; Returns (receive code, get_process_id).
  (func (export "watch_monitor") (param $pid i64) (param $probe i64) (result i32 i64)
    (local $code i32)
    (call $monitor (local.get $pid))
    (call $report (local.get $probe) (i64.const 4) (call $self))
    (local.set $code (call $receive_within (i64.const -1)))
    (local.get $code) (call $get_process_id)))
