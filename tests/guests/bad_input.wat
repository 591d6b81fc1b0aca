;; Bad input to host functions: each export passes one kind of bad argument, which must kill
;; only this process, with a clear reason. `survivor` is the bystander that must keep running.
(module
  (import "lunatic::process" "spawn" (func $spawn (param i64 i64 i64 i32 i32 i32 i32 i32) (result i32)))
  (import "lunatic::process" "compile_module" (func $compile (param i32 i32 i32) (result i32)))
  (import "lunatic::process" "drop_config" (func $drop_config (param i64)))
  (import "lunatic::process" "drop_module" (func $drop_module (param i64)))
  (import "lunatic::process" "config_get_max_memory" (func $get_max_memory (param i64) (result i64)))
  (import "lunatic::process" "process_id" (func $self (result i64)))
  (import "lunatic::message" "create_data" (func $create (param i64 i64)))
  (import "lunatic::message" "write_data" (func $write (param i32 i32) (result i32)))
  (import "lunatic::message" "read_data" (func $read (param i32 i32) (result i32)))
  (import "lunatic::message" "data_size" (func $data_size (result i64)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (import "lunatic::message" "take_module" (func $take_module (param i64) (result i64)))
  (import "lunatic::registry" "put" (func $put (param i32 i32 i64 i64)))
  (import "lunatic::registry" "get" (func $get (param i32 i32 i32 i32) (result i32)))
  (import "lunatic::error" "string_size" (func $error_size (param i64) (result i32)))
  (import "lunatic::error" "to_string" (func $error_text (param i64 i32)))
  (import "lunatic::metrics" "increment_counter" (func $counter (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "child")
  (data (i32.const 110) "name")
  (data (i32.const 120) "\ff\fe")       ;; not UTF-8
  (data (i32.const 130) "\c3\28child")  ;; not UTF-8 either (a broken 2-byte sequence)
  (data (i32.const 200) "not a wasm module")
  ;; 0: out slots; memory is 1 page: 65536 is the first address past the end

  ;; The bystander: waits for a message and returns its size.
  (func (export "survivor") (result i64)
    (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))
    (call $data_size))

  ;; A child for the spawn cases; never reached.
  (func (export "child"))

  ;; write_data from beyond the end of memory.
  (func (export "write_oob")
    (call $create (i64.const 0) (i64.const 0))
    (drop (call $write (i32.const 70000) (i32.const 4))))

  ;; write_data whose span starts in memory but runs past its end.
  (func (export "write_straddles_end")
    (call $create (i64.const 0) (i64.const 0))
    (drop (call $write (i32.const 65530) (i32.const 16))))

  ;; write_data from address 0xFFFFFFFF (-1 as an i32): must not wrap around to 0.
  (func (export "write_ptr_minus_one")
    (call $create (i64.const 0) (i64.const 0))
    (drop (call $write (i32.const -1) (i32.const 4))))

  ;; read_data into memory past its end (a message is waiting).
  (func (export "read_oob")
    (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))
    (drop (call $read (i32.const 65535) (i32.const 8))))

  ;; read_data before any create_data or receive: there is no scratch message.
  (func (export "read_no_scratch")
    (drop (call $read (i32.const 0) (i32.const 4))))

  ;; receive with a tag array (2 x 8 bytes) that runs past the end of memory.
  (func (export "receive_tags_oob")
    (drop (call $receive (i32.const 65530) (i32.const 2) (i64.const 0))))

  ;; receive with an absurd number of tags.
  (func (export "receive_too_many_tags")
    (drop (call $receive (i32.const 0) (i32.const 100000) (i64.const 0))))

  ;; registry::put with a name past the end of memory.
  (func (export "registry_name_oob")
    (call $put (i32.const 65536) (i32.const 4) (i64.const 0) (call $self)))

  ;; registry::get of a registered name, with its out-pointers past the end of memory.
  (func (export "registry_out_oob")
    (call $put (i32.const 110) (i32.const 4) (i64.const 0) (call $self))
    (drop (call $get (i32.const 110) (i32.const 4) (i32.const 65532) (i32.const 65532))))

  ;; registry::put with a name that is not UTF-8.
  (func (export "registry_bad_utf8")
    (call $put (i32.const 120) (i32.const 2) (i64.const 0) (call $self)))

  ;; metrics with a counter name that is not UTF-8.
  (func (export "metrics_bad_utf8")
    (call $counter (i32.const 120) (i32.const 2)))

  ;; spawn of a function whose name is not UTF-8.
  (func (export "spawn_bad_utf8") (result i32)
    (call $spawn (i64.const 0) (i64.const -1) (i64.const -1)
                 (i32.const 130) (i32.const 7) (i32.const 0) (i32.const 0) (i32.const 0)))

  ;; spawn with its pid out-pointer past the end of memory.
  (func (export "spawn_out_oob") (result i32)
    (call $spawn (i64.const 0) (i64.const -1) (i64.const -1)
                 (i32.const 100) (i32.const 5) (i32.const 0) (i32.const 0) (i32.const 65530)))

  ;; spawn with a config id that was never handed out.
  (func (export "spawn_unknown_config") (result i32)
    (call $spawn (i64.const 0) (i64.const 4242) (i64.const -1)
                 (i32.const 100) (i32.const 5) (i32.const 0) (i32.const 0) (i32.const 0)))

  ;; spawn with a module id that was never handed out.
  (func (export "spawn_unknown_module") (result i32)
    (call $spawn (i64.const 0) (i64.const -1) (i64.const 4242)
                 (i32.const 100) (i32.const 5) (i32.const 0) (i32.const 0) (i32.const 0)))

  ;; compile_module of bytes past the end of memory.
  (func (export "compile_oob") (result i32)
    (call $compile (i32.const 65500) (i32.const 100) (i32.const 0)))

  ;; drop_config of an unknown id.
  (func (export "drop_config_unknown")
    (call $drop_config (i64.const 12345)))

  ;; drop_module of an unknown id.
  (func (export "drop_module_unknown")
    (call $drop_module (i64.const 12345)))

  ;; A config getter on an unknown id.
  (func (export "config_get_unknown") (result i64)
    (call $get_max_memory (i64.const 777)))

  ;; take_module at an index the received message does not have.
  (func (export "take_module_bad_index") (result i64)
    (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))
    (call $take_module (i64.const 3)))

  ;; error::to_string of an error id that was never handed out.
  (func (export "error_text_unknown")
    (call $error_text (i64.const 999) (i32.const 0)))

  ;; error::string_size of an error id that was never handed out.
  (func (export "error_size_unknown") (result i32)
    (call $error_size (i64.const 999)))

  ;; error::to_string of a real error (from compiling garbage) written past the end of memory.
  (func (export "error_text_oob")
    (drop (call $compile (i32.const 200) (i32.const 17) (i32.const 0)))
    (call $error_text (i64.load (i32.const 0)) (i32.const 65530))))
