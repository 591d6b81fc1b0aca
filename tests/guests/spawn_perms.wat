;; Permissions and configs: what a guest may do depends on its config's can_* flags, and configs
;; it creates start with everything denied.
(module
  (import "lunatic::process" "spawn" (func $spawn (param i64 i64 i64 i32 i32 i32 i32 i32) (result i32)))
  (import "lunatic::process" "compile_module" (func $compile (param i32 i32 i32) (result i32)))
  (import "lunatic::process" "create_config" (func $create_config (result i64)))
  (import "lunatic::process" "drop_config" (func $drop_config (param i64)))
  (import "lunatic::process" "config_set_max_memory" (func $set_max_memory (param i64 i64)))
  (import "lunatic::process" "config_get_max_memory" (func $get_max_memory (param i64) (result i64)))
  (import "lunatic::process" "config_set_max_fuel" (func $set_max_fuel (param i64 i64)))
  (import "lunatic::process" "config_get_max_fuel" (func $get_max_fuel (param i64) (result i64)))
  (import "lunatic::process" "config_set_can_compile_modules" (func $set_can_compile (param i64 i32)))
  (import "lunatic::process" "config_can_compile_modules" (func $can_compile (param i64) (result i32)))
  (import "lunatic::process" "config_set_can_create_configs" (func $set_can_create (param i64 i32)))
  (import "lunatic::process" "config_can_create_configs" (func $can_create (param i64) (result i32)))
  (import "lunatic::process" "config_set_can_spawn_processes" (func $set_can_spawn (param i64 i32)))
  (import "lunatic::process" "config_can_spawn_processes" (func $can_spawn (param i64) (result i32)))
  (import "lunatic::process" "die_when_link_dies" (func $die_when_link_dies (param i32)))
  (import "lunatic::process" "monitor" (func $monitor (param i64)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (import "lunatic::message" "get_tag" (func $get_tag (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 100) "child")
  (data (i32.const 110) "try_spawn")
  (data (i32.const 120) "spin")
  (data (i32.const 130) "grow")
  (data (i32.const 200) "not a wasm module")
  ;; 0: out slot (child pid or error id), 8: out slot of compile_module

  ;; A child that only returns 7.
  (func (export "child") (result i32)
    (i32.const 7))

  ;; Spawns `child` with the caller's own config and module; returns spawn's status.
  ;; Traps when the config does not allow spawning.
  (func $try_spawn (export "try_spawn") (result i32)
    (call $spawn (i64.const 0) (i64.const -1) (i64.const -1)
                 (i32.const 100) (i32.const 5) (i32.const 0) (i32.const 0) (i32.const 0)))

  ;; Tries to compile 17 bytes of garbage; returns compile_module's status (-1 when not permitted).
  (func (export "try_compile") (result i32)
    (call $compile (i32.const 200) (i32.const 17) (i32.const 8)))

  ;; Returns create_config's result (a config id, or -1 when not permitted).
  (func (export "try_create_config") (result i64)
    (call $create_config))

  ;; Creates a config and returns all its settings: (max_memory, max_fuel, can_compile_modules,
  ;; can_create_configs, can_spawn_processes).
  (func (export "new_config_settings") (result i64 i64 i32 i32 i32)
    (local $cfg i64)
    (local.set $cfg (call $create_config))
    (call $get_max_memory (local.get $cfg))
    (call $get_max_fuel (local.get $cfg))
    (call $can_compile (local.get $cfg))
    (call $can_create (local.get $cfg))
    (call $can_spawn (local.get $cfg)))

  ;; Sets every setting of a new config, reads them back, clears the flags and reads them again:
  ;; (max_memory, max_fuel, compile, create, spawn, compile after clear, create after clear,
  ;; spawn after clear).
  (func (export "round_trip") (param $memory i64) (param $fuel i64) (result i64 i64 i32 i32 i32 i32 i32 i32)
    (local $cfg i64)
    (local.set $cfg (call $create_config))
    (call $set_max_memory (local.get $cfg) (local.get $memory))
    (call $set_max_fuel (local.get $cfg) (local.get $fuel))
    (call $set_can_compile (local.get $cfg) (i32.const 1))
    (call $set_can_create (local.get $cfg) (i32.const 1))
    (call $set_can_spawn (local.get $cfg) (i32.const 1))
    (call $get_max_memory (local.get $cfg))
    (call $get_max_fuel (local.get $cfg))
    (call $can_compile (local.get $cfg))
    (call $can_create (local.get $cfg))
    (call $can_spawn (local.get $cfg))
    (call $set_can_compile (local.get $cfg) (i32.const 0))
    (call $set_can_create (local.get $cfg) (i32.const 0))
    (call $set_can_spawn (local.get $cfg) (i32.const 0))
    (call $can_compile (local.get $cfg))
    (call $can_create (local.get $cfg))
    (call $can_spawn (local.get $cfg))
    (call $drop_config (local.get $cfg)))

  ;; Spawns `name` (at name_ptr, name_len bytes) linked with tag 5, with a config it just created
  ;; (everything denied, then max_memory and max_fuel set as given), and waits for the child to
  ;; die; it monitors the child too. Returns (spawn status, receive's kind: 1 = LinkDied for a
  ;; failure, 2 = ProcessDied for a normal death, which sends nothing over the link; the tag).
  (func $with_new_config (param $name_ptr i32) (param $name_len i32) (param $memory i64) (param $fuel i64)
                         (result i32 i32 i64)
    (local $cfg i64) (local $status i32)
    (local.set $cfg (call $create_config))
    (call $set_max_memory (local.get $cfg) (local.get $memory))
    (call $set_max_fuel (local.get $cfg) (local.get $fuel))
    (call $die_when_link_dies (i32.const 0))
    (local.set $status
      (call $spawn (i64.const 5) (local.get $cfg) (i64.const -1)
                   (local.get $name_ptr) (local.get $name_len) (i32.const 0) (i32.const 0) (i32.const 0)))
    (call $monitor (i64.load (i32.const 0)))  ;; a normal death sends nothing over the link
    (local.get $status)
    (call $receive (i32.const 0) (i32.const 0) (i64.const -1))
    (call $get_tag))

  ;; A child with a guest-created config tries to spawn (and traps).
  (func (export "spawn_denied_child") (result i32 i32 i64)
    (call $with_new_config (i32.const 110) (i32.const 9) (i64.const 0) (i64.const 0)))

  ;; A child with a guest-created config of max_fuel = 1 spins (and runs out of fuel).
  (func (export "spawn_fuel_limited_child") (result i32 i32 i64)
    (call $with_new_config (i32.const 120) (i32.const 4) (i64.const 0) (i64.const 1)))

  ;; A child with a guest-created config of max_memory = 1 page tries to grow (refused: -1).
  (func (export "spawn_memory_limited_child") (result i32 i32 i64)
    (call $with_new_config (i32.const 130) (i32.const 4) (i64.const 65536) (i64.const 0)))

  ;; Tries to raise its own permissions through config id -1 (the caller's own config): sets
  ;; can_spawn_processes and lifts max_fuel, then spawns `child`. Returns spawn's status.
  (func (export "escalate") (result i32)
    (call $set_can_spawn (i64.const -1) (i32.const 1))
    (call $set_max_fuel (i64.const -1) (i64.const 0))
    (call $try_spawn))

  ;; Spins forever.
  (func (export "spin")
    (loop $forever (br $forever)))

  ;; Grows memory by one page; returns memory.grow's result.
  (func (export "grow") (result i32)
    (memory.grow (i32.const 1))))
