;; lunatic::distributed outside a cluster, imported with lunatic 0.13's signatures
;; (crates/lunatic-distributed-api/src/lib.rs), as lunatic-rs imports it in every module that
;; sends to a Process. `local_send` does what lunatic-rs's host::send does: it compares the
;; target's node with node_id() and, being on the same node, sends with lunatic::message.
;;
;; Memory: 0..64 node id buffer (filled with 0xAA to see that nothing is written), 64 pid slot,
;; 128 the function name "park".
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
  (import "lunatic::distributed" "test_root_cert" (func $root_cert (param i32) (result i32)))
  (import "lunatic::distributed" "default_server_certificates"
    (func $server_certs (param i32 i32 i32 i32 i32) (result i32)))
  (import "lunatic::distributed" "sign_node" (func $sign_node (param i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "lunatic::process" "process_id" (func $self (result i64)))
  (import "lunatic::message" "create_data" (func $create_data (param i64 i64)))
  (import "lunatic::message" "send" (func $send (param i64) (result i32)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (import "lunatic::message" "get_tag" (func $get_tag (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "\aa\aa\aa\aa\aa\aa\aa\aa\aa\aa\aa\aa\aa\aa\aa\aa")
  (data (i32.const 128) "park")

  ;; (nodes_count, get_nodes into a 2-node buffer, the buffer's first u64 afterwards, node_id,
  ;; module_id)
  (func (export "info") (result i32 i32 i64 i64 i64)
    (call $nodes_count)
    (call $get_nodes (i32.const 0) (i32.const 2))
    (i64.load (i32.const 0))
    (call $node_id)
    (call $module_id))

  ;; get_nodes with a buffer past the end of memory traps, as upstream's does.
  (func (export "get_nodes_out_of_bounds") (result i32)
    (call $get_nodes (i32.const 0x20000) (i32.const 1)))

  ;; lunatic-rs's host::send to itself: the target is on this node, so the local send; then
  ;; receive it. Returns the tag received.
  (func (export "local_send") (result i64)
    (if (i64.ne (call $node_id) (i64.const 0)) (then unreachable))
    (call $create_data (i64.const 77) (i64.const 0))
    (drop (call $send (call $self)))
    (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))
    (call $get_tag))

  ;; The calls that need another node: each traps outside a cluster.
  (func (export "remote_spawn") (result i32)
    (call $dspawn (i64.const 1) (i64.const -1) (call $module_id)
      (i32.const 128) (i32.const 4) (i32.const 0) (i32.const 0) (i32.const 64)))
  (func (export "remote_send") (result i32)
    (call $create_data (i64.const 1) (i64.const 0))
    (call $dsend (i64.const 1) (i64.const 5)))
  (func (export "remote_request") (result i32)
    (call $create_data (i64.const 1) (i64.const 0))
    (call $dsend_receive (i64.const 1) (i64.const 5) (i64.const 9) (i64.const 10)))
  (func (export "lookup_nodes") (result i32)
    (call $lookup (i32.const 128) (i32.const 4) (i32.const 64) (i32.const 72) (i32.const 80)))
  (func (export "copy_lookup_results") (result i32)
    (call $copy_results (i64.const 1) (i32.const 0) (i32.const 2) (i32.const 64)))
  (func (export "root_cert") (result i32) (call $root_cert (i32.const 64)))
  (func (export "server_certs") (result i32)
    (call $server_certs (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 64)))
  (func (export "sign") (result i32)
    (call $sign_node (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
      (i32.const 64)))

  (func (export "park")))
