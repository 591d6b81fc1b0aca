;; trap::catch: `catch(fn, arg)` calls our `_lunatic_catch_trap(fn, arg)`, which runs task `fn`
;; of the table on `arg` through call_indirect. A trap inside makes catch return 0, and the
;; process goes on.
(module
  (import "lunatic::trap" "catch" (func $catch (param i32 i32) (result i32)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (import "lunatic::message" "data_size" (func $data_size (result i64)))
  (import "lunatic::message" "create_data" (func $create (param i64 i64)))
  (import "lunatic::message" "send" (func $send (param i64) (result i32)))
  (import "lunatic::process" "kill" (func $kill (param i64)))
  (import "lunatic::process" "process_id" (func $self (result i64)))
  (memory (export "memory") 1)
  (type $task (func (param i32) (result i32)))
  (table 8 funcref)
  (elem (i32.const 0) $double $boom $wait $wait_then_boom $nested $spin $store_then_boom $suicide)
  (global $progress (mut i32) (i32.const 0))

  ;; The export trap::catch calls: runs task `fn` on `arg`.
  (func (export "_lunatic_catch_trap") (param $fn i32) (param $arg i32) (result i32)
    (call_indirect (type $task) (local.get $arg) (local.get $fn)))

  ;; Task 0: returns arg * 2.
  (func $double (type $task)
    (i32.mul (local.get 0) (i32.const 2)))

  ;; Task 1: traps at once.
  (func $boom (type $task)
    unreachable)

  ;; Task 2: waits for a message (suspends); returns its size + arg.
  (func $wait (type $task)
    (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))
    (i32.add (i32.wrap_i64 (call $data_size)) (local.get 0)))

  ;; Task 3: waits for a message (suspends), then traps.
  (func $wait_then_boom (type $task)
    (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))
    unreachable)

  ;; Task 4: a catch inside a catch: catches task 1's trap, returns arg + 5.
  (func $nested (type $task)
    (i32.add (call $catch (i32.const 1) (i32.const 0)) (i32.add (local.get 0) (i32.const 5))))

  ;; Task 5: spins forever.
  (func $spin (type $task)
    (loop $forever (br $forever))
    (i32.const 0))

  ;; Task 6: records arg in the $progress global and in memory at 64, then traps.
  (func $store_then_boom (type $task)
    (global.set $progress (local.get 0))
    (i32.store (i32.const 64) (local.get 0))
    unreachable)

  ;; Task 7: kills its own process (not a trap: catch must not swallow it); returns 1 if it
  ;; survives.
  (func $suicide (type $task)
    (call $kill (call $self))
    (i32.const 1))

  ;; catch(fn, arg), returned as is.
  (func (export "catch") (param $fn i32) (param $arg i32) (result i32)
    (call $catch (local.get $fn) (local.get $arg)))

  ;; Catches task 1's trap, then goes on: catches task 0 on 50 and sends a message to `pid`.
  ;; Returns (the trapped catch's result, the next catch's result).
  (func (export "trap_then_go_on") (param $pid i64) (result i32 i32)
    (call $catch (i32.const 1) (i32.const 0))
    (call $catch (i32.const 0) (i32.const 50))
    (call $create (i64.const 9) (i64.const 0))
    (drop (call $send (local.get $pid))))

  ;; Catches task 6's trap; returns (catch's result, $progress, memory at 64): effects made
  ;; before the trap stay.
  (func (export "effects_survive") (param $arg i32) (result i32 i32 i32)
    (call $catch (i32.const 6) (local.get $arg))
    (global.get $progress)
    (i32.load (i32.const 64)))

  ;; Catches task `fn` on 0, then loops `n` times; returns (catch's result, n).
  (func (export "catch_then_loop") (param $fn i32) (param $n i32) (result i32 i32)
    (local $i i32)
    (call $catch (local.get $fn) (i32.const 0))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $i))

  ;; Calls task 1 without catch: the process fails.
  (func (export "uncaught") (result i32)
    (call $boom (i32.const 0))))
