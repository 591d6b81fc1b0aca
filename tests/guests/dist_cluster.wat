;; lunatic::distributed in a cluster, as a lunatic-rs guest uses it: node lookups, spawning on
;; another node (this module, by module_id), and request/reply with a process on another node.
;;
;; Memory: 0..64 node id buffer, 64 the id a spawn writes, 72 query id, 80 node count (u32),
;; 88 error id, 256 "report", 300 "region=eu", 512 spawn parameters, 1024 message data.
(module
  (import "lunatic::distributed" "nodes_count" (func $nodes_count (result i32)))
  (import "lunatic::distributed" "get_nodes" (func $get_nodes (param i32 i32) (result i32)))
  (import "lunatic::distributed" "node_id" (func $node_id (result i64)))
  (import "lunatic::distributed" "module_id" (func $module_id (result i64)))
  (import "lunatic::distributed" "spawn"
    (func $dspawn (param i64 i64 i64 i32 i32 i32 i32 i32) (result i32)))
  (import "lunatic::distributed" "send" (func $dsend (param i64 i64) (result i32)))
  (import "lunatic::distributed" "send_receive_skip_search"
    (func $dsend_receive (param i64 i64 i64 i64) (result i32)))
  (import "lunatic::distributed" "exec_lookup_nodes" (func $lookup (param i32 i32 i32 i32 i32) (result i32)))
  (import "lunatic::distributed" "copy_lookup_nodes_results"
    (func $copy_results (param i64 i32 i32 i32) (result i32)))
  (import "lunatic::message" "create_data" (func $create_data (param i64 i64)))
  (import "lunatic::message" "write_data" (func $write (param i32 i32) (result i32)))
  (import "lunatic::message" "read_data" (func $read (param i32 i32) (result i32)))
  (import "lunatic::message" "get_tag" (func $get_tag (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 256) "report")
  (data (i32.const 300) "region=eu")

  ;; (nodes_count, how many get_nodes copied into a 4-node buffer, the first two ids, node_id)
  (func (export "nodes") (result i32 i32 i64 i64 i64)
    (call $nodes_count)
    (call $get_nodes (i32.const 0) (i32.const 4))
    (i64.load (i32.const 0))
    (i64.load (i32.const 8))
    (call $node_id))

  ;; The nodes tagged region=eu: (exec_lookup_nodes' result, how many matched, how many were
  ;; copied, the first one).
  (func (export "lookup_eu") (result i32 i32 i32 i64)
    (call $lookup (i32.const 300) (i32.const 9) (i32.const 72) (i32.const 80) (i32.const 88))
    (i32.load (i32.const 80))
    (call $copy_results (i64.load (i32.const 72)) (i32.const 0) (i32.const 8) (i32.const 88))
    (i64.load (i32.const 0)))

  ;; Spawn `report(to_node, to)` of this module on `node`: (spawn's result, the child's pid).
  (func (export "spawn_on") (param $node i64) (param $to_node i64) (param $to i64) (result i32 i64)
    (i32.store8 (i32.const 512) (i32.const 0x7E))
    (i64.store (i32.const 513) (local.get $to_node))
    (i64.store (i32.const 521) (i64.const 0))
    (i32.store8 (i32.const 529) (i32.const 0x7E))
    (i64.store (i32.const 530) (local.get $to))
    (i64.store (i32.const 538) (i64.const 0))
    (call $dspawn (local.get $node) (i64.const -1) (call $module_id) (i32.const 256) (i32.const 6)
      (i32.const 512) (i32.const 34) (i32.const 64))
    (i64.load (i32.const 64)))

  ;; Spawn with a module id nobody has: spawn's result (2).
  (func (export "spawn_unknown_module") (param $node i64) (result i32)
    (call $dspawn (local.get $node) (i64.const -1) (i64.const 12345) (i32.const 256) (i32.const 6)
      (i32.const 512) (i32.const 0) (i32.const 64)))

  ;; Tell `to` on `to_node` which node this process runs on (tag 11, the node id as 8 bytes).
  (func (export "report") (param $to_node i64) (param $to i64)
    (call $create_data (i64.const 11) (i64.const 8))
    (i64.store (i32.const 1024) (call $node_id))
    (drop (call $write (i32.const 1024) (i32.const 8)))
    (drop (call $dsend (local.get $to_node) (local.get $to))))

  ;; lunatic-rs's request/reply with a process on another node: send 8 bytes tagged 7 to `to`
  ;; and wait (up to 10 s) for the reply tagged 8: (send_receive_skip_search's result, the
  ;; reply's tag, the reply's first 8 bytes).
  (func (export "request") (param $node i64) (param $to i64) (result i32 i64 i64)
    (local $status i32)
    (call $create_data (i64.const 7) (i64.const 8))
    (i64.store (i32.const 1024) (i64.const 4242))
    (drop (call $write (i32.const 1024) (i32.const 8)))
    (local.set $status (call $dsend_receive (local.get $node) (local.get $to) (i64.const 8) (i64.const 10000)))
    (drop (call $read (i32.const 1024) (i32.const 8)))
    (local.get $status)
    (call $get_tag)
    (i64.load (i32.const 1024)))

  ;; send to a node that is not in the cluster: its result (2).
  (func (export "send_nowhere") (result i32)
    (call $create_data (i64.const 1) (i64.const 0))
    (call $dsend (i64.const 99) (i64.const 1))))
