;; Signals between processes: links, monitors, kills and the messages they produce.
;;
;; Building blocks (spawned as children): `trap` fails, `ok` returns 42, `park` waits forever
;; (on a tag nobody sends, so that everything else stays in its mailbox for the host to inspect),
;; `trap_after_msg` fails once it has received a message, `watch` turns links into messages and
;; reports the first one it gets, `watch_park` turns them into messages and parks. The other exports are scenarios; each returns what it observed
;; (receive codes, tags, pids) so that the test can check it in Finished.result, or reports pids
;; to a "probe" process (a parked process whose mailbox the test reads).
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
  (import "lunatic::process" "stop_monitoring" (func $stop_monitoring (param i64)))
  (import "lunatic::process" "kill" (func $kill (param i64)))
  (import "lunatic::process" "exists" (func $exists (param i64) (result i32)))
  (import "lunatic::message" "create_data" (func $create (param i64 i64)))
  (import "lunatic::message" "write_data" (func $write (param i32 i32) (result i32)))
  (import "lunatic::message" "send" (func $send (param i64) (result i32)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (import "lunatic::message" "get_tag" (func $get_tag (result i64)))
  (import "lunatic::message" "get_process_id" (func $get_process_id (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 128) "trap")
  (data (i32.const 136) "ok")
  (data (i32.const 144) "park")
  (data (i32.const 152) "trap_after_msg")
  (data (i32.const 176) "chain")

  ;; --- helpers -----------------------------------------------------------------------------

  ;; Spawn this module's export named at (name, len) with `link` as the link tag (0: unlinked)
  ;; and the parameter records at (params, params_len); trap if spawning fails. Returns the pid.
  (func $spawn_fn (param $link i64) (param $name i32) (param $len i32)
                  (param $params i32) (param $params_len i32) (result i64)
    (if (call $spawn (local.get $link) (i64.const -1) (i64.const -1)
                     (local.get $name) (local.get $len)
                     (local.get $params) (local.get $params_len) (i32.const 0))
      (then unreachable))
    (i64.load (i32.const 0)))

  ;; Send `value` as an 8-byte message with tag 1 to `probe`.
  (func $report (param $probe i64) (param $value i64)
    (call $create (i64.const 1) (i64.const 8))
    (i64.store (i32.const 16) (local.get $value))
    (drop (call $write (i32.const 16) (i32.const 8)))
    (drop (call $send (local.get $probe))))

  ;; Receive any message, waiting forever; returns the receive code.
  (func $receive_any (result i32)
    (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))

  ;; Receive any message already in the mailbox (timeout 0); returns the code (9027: none).
  (func $poll_any (result i32)
    (call $receive (i32.const 0) (i32.const 0) (i64.const 0)))

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

  ;; Fails after receiving one message: lets the parent decide when it dies.
  (func (export "trap_after_msg")
    (drop (call $receive_any))
    unreachable)

  ;; Traps its links into messages, then returns (code, tag, dead pid) of the first message.
  (func (export "watch") (result i32 i64 i64)
    (local $code i32)
    (call $die_when_link_dies (i32.const 0))
    (local.set $code (call $receive_any))
    (local.get $code) (call $get_tag) (call $get_process_id))

  ;; Turns its links into messages, then parks: LinkDied messages stay in its mailbox.
  (func (export "watch_park")
    (call $die_when_link_dies (i32.const 0))
    (call $park))

  ;; --- links -------------------------------------------------------------------------------

  ;; Spawns `trap` linked (tag 7), reports its pid to `probe`, then waits. With
  ;; die_when_link_dies at its default this process is killed when the child fails.
  (func (export "link_cascade") (param $probe i64)
    (call $report (local.get $probe)
      (call $spawn_fn (i64.const 7) (i32.const 128) (i32.const 4) (i32.const 0) (i32.const 0)))
    (drop (call $receive_any)))

  ;; A chain of linked processes: reports its own pid to `probe`; at depth 0 it fails, otherwise
  ;; it spawns chain(probe, depth - 1) linked (tag 1) and waits.
  (func (export "chain") (param $probe i64) (param $depth i32)
    (call $report (local.get $probe) (call $self))
    (if (i32.eqz (local.get $depth)) (then unreachable))
    ;; params: i64 probe, i32 depth - 1 (17-byte records; the high bytes stay zero)
    (i32.store8 (i32.const 64) (i32.const 0x7E))
    (i64.store (i32.const 65) (local.get $probe))
    (i32.store8 (i32.const 81) (i32.const 0x7F))
    (i32.store (i32.const 82) (i32.sub (local.get $depth) (i32.const 1)))
    (drop (call $spawn_fn (i64.const 1) (i32.const 176) (i32.const 5) (i32.const 64) (i32.const 34)))
    (drop (call $receive_any)))

  ;; die_when_link_dies(0), spawns `trap` linked (tag 7) and receives the LinkDied message.
  ;; Returns (receive code, get_tag, get_process_id, child pid).
  (func (export "link_died_msg") (result i32 i64 i64 i64)
    (local $child i64) (local $code i32)
    (call $die_when_link_dies (i32.const 0))
    (local.set $child
      (call $spawn_fn (i64.const 7) (i32.const 128) (i32.const 4) (i32.const 0) (i32.const 0)))
    (local.set $code (call $receive_any))
    (local.get $code) (call $get_tag) (call $get_process_id) (local.get $child))

  ;; Spawns `ok` linked (tag 9) and monitored, with die_when_link_dies as `flag` says, and
  ;; receives what its normal exit produces: only the monitor's ProcessDied (lunatic 0.13 sends
  ;; nothing over a link for a normal death). Returns (first receive code, get_process_id, a
  ;; second non-waiting receive's code, child pid).
  (func (export "link_normal_exit") (param $flag i32) (result i32 i64 i32 i64)
    (local $child i64) (local $code i32) (local $dead i64)
    (call $die_when_link_dies (local.get $flag))
    (local.set $child
      (call $spawn_fn (i64.const 9) (i32.const 136) (i32.const 2) (i32.const 0) (i32.const 0)))
    (call $monitor (local.get $child))
    (local.set $code (call $receive_any))
    (local.set $dead (call $get_process_id))
    (local.get $code) (local.get $dead) (call $poll_any) (local.get $child))

  ;; Spawns `trap_after_msg` linked (tag 5), unlinks it, monitors it, then lets it fail.
  ;; Returns (first receive code, a second non-waiting receive's code, dead pid, child pid):
  ;; the monitor's ProcessDied must be the only message, and this process must survive.
  (func (export "unlink_first") (result i32 i32 i64 i64)
    (local $child i64) (local $code i32) (local $dead i64)
    (local.set $child
      (call $spawn_fn (i64.const 5) (i32.const 152) (i32.const 14) (i32.const 0) (i32.const 0)))
    (call $unlink (local.get $child))
    (call $monitor (local.get $child))
    (call $create (i64.const 0) (i64.const 0))
    (drop (call $send (local.get $child)))
    (local.set $code (call $receive_any))
    (local.set $dead (call $get_process_id))
    (local.get $code) (call $poll_any) (local.get $dead) (local.get $child))

  ;; With die_when_link_dies(0), links (tag 11) to `pid`, which does not exist. Returns (code,
  ;; get_tag, get_process_id) of the message that is then already in the mailbox.
  (func (export "link_missing") (param $pid i64) (result i32 i64 i64)
    (local $code i32)
    (call $die_when_link_dies (i32.const 0))
    (call $link (i64.const 11) (local.get $pid))
    (local.set $code (call $poll_any))
    (local.get $code) (call $get_tag) (call $get_process_id))

  ;; With die_when_link_dies(0), links (tag 11) to the missing `pid`, then parks: the message
  ;; stays in its mailbox.
  (func (export "link_missing_park") (param $pid i64)
    (call $die_when_link_dies (i32.const 0))
    (call $link (i64.const 11) (local.get $pid))
    (call $park))

  ;; With die_when_link_dies(0), links (tag 11) to `pid` (on any worker or node) and waits for
  ;; the first message. Returns its (receive code, get_tag, get_process_id).
  (func (export "link_and_wait") (param $pid i64) (result i32 i64 i64)
    (local $code i32)
    (call $die_when_link_dies (i32.const 0))
    (call $link (i64.const 11) (local.get $pid))
    (local.set $code (call $receive_any))
    (local.get $code) (call $get_tag) (call $get_process_id))

  ;; Links (tag 11) to the missing `pid`, dying with its links (the default): the link kills it
  ;; (NoProcess, as in lunatic 0.13). Returns 42 if it survives.
  (func (export "link_missing_dies") (param $pid i64) (result i32)
    (call $link (i64.const 11) (local.get $pid))
    (i32.const 42))

  ;; --- monitors ----------------------------------------------------------------------------

  ;; Spawns `trap` (which = 0) or `ok` (which = 1) unlinked, monitors it and receives.
  ;; Returns (receive code, get_process_id, child pid).
  (func (export "monitor_child") (param $which i32) (result i32 i64 i64)
    (local $child i64) (local $code i32)
    (local.set $child
      (if (result i64) (local.get $which)
        (then (call $spawn_fn (i64.const 0) (i32.const 136) (i32.const 2) (i32.const 0) (i32.const 0)))
        (else (call $spawn_fn (i64.const 0) (i32.const 128) (i32.const 4) (i32.const 0) (i32.const 0)))))
    (call $monitor (local.get $child))
    (local.set $code (call $receive_any))
    (local.get $code) (call $get_process_id) (local.get $child))

  ;; Monitors the missing `pid`. Returns (code, get_process_id) of the message then in the mailbox.
  (func (export "monitor_missing") (param $pid i64) (result i32 i64)
    (local $code i32)
    (call $monitor (local.get $pid))
    (local.set $code (call $poll_any))
    (local.get $code) (call $get_process_id))

  ;; Monitors `pid` and returns at once.
  (func (export "monitor_and_return") (param $pid i64)
    (call $monitor (local.get $pid)))

  ;; Monitors a first child, stops monitoring it and lets it fail; then monitors a second child
  ;; that fails after it. Returns (receive code, dead pid, second child, non-waiting receive's
  ;; code, exists(first child)): only the second child's ProcessDied may arrive.
  (func (export "stop_monitoring_child") (result i32 i64 i64 i32 i32)
    (local $first i64) (local $second i64) (local $code i32) (local $dead i64)
    (local.set $first
      (call $spawn_fn (i64.const 0) (i32.const 152) (i32.const 14) (i32.const 0) (i32.const 0)))
    (call $monitor (local.get $first))
    (call $stop_monitoring (local.get $first))
    (call $create (i64.const 0) (i64.const 0))
    (drop (call $send (local.get $first)))
    (local.set $second
      (call $spawn_fn (i64.const 0) (i32.const 128) (i32.const 4) (i32.const 0) (i32.const 0)))
    (call $monitor (local.get $second))
    (local.set $code (call $receive_any))
    (local.set $dead (call $get_process_id))
    (local.get $code) (local.get $dead) (local.get $second) (call $poll_any)
    (call $exists (local.get $first)))

  ;; --- kills and pids ----------------------------------------------------------------------

  ;; Spawns `park` unlinked, monitors it, kills it. Returns (exists before, exists after,
  ;; code of the message then in the mailbox, its get_process_id, own pid, child pid).
  (func (export "kill_child") (result i32 i32 i32 i64 i64 i64)
    (local $child i64) (local $before i32) (local $after i32) (local $code i32)
    (local.set $child
      (call $spawn_fn (i64.const 0) (i32.const 144) (i32.const 4) (i32.const 0) (i32.const 0)))
    (call $monitor (local.get $child))
    (local.set $before (call $exists (local.get $child)))
    (call $kill (local.get $child))
    (local.set $after (call $exists (local.get $child)))
    (local.set $code (call $poll_any))
    (local.get $before) (local.get $after) (local.get $code) (call $get_process_id)
    (call $self) (local.get $child))

  ;; Spawns `park` linked (tag 3) and kills it, reporting the child's pid to `probe` first.
  ;; A kill is a failure: this process (die_when_link_dies = 1) must die with it. Returns 1 if not.
  (func (export "kill_linked_child") (param $probe i64) (result i32)
    (local $child i64)
    (local.set $child
      (call $spawn_fn (i64.const 3) (i32.const 144) (i32.const 4) (i32.const 0) (i32.const 0)))
    (call $report (local.get $probe) (local.get $child))
    (call $kill (local.get $child))
    (i32.const 1))

  ;; Kills itself; returns 7 if it survived.
  (func (export "kill_self") (result i32)
    (call $kill (call $self))
    (i32.const 7))

  ;; Returns (own pid, pid of a first child, pid of a second child).
  (func (export "pids") (result i64 i64 i64)
    (call $self)
    (call $spawn_fn (i64.const 0) (i32.const 136) (i32.const 2) (i32.const 0) (i32.const 0))
    (call $spawn_fn (i64.const 0) (i32.const 136) (i32.const 2) (i32.const 0) (i32.const 0))))
