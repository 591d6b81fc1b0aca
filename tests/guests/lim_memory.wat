;; Memory limits: a guest that starts with one page of memory and grows it.
;; Spawned with EnvConfig.max_memory = 2 pages, the first grow succeeds and the second one is
;; refused by the store's limiter: memory.grow returns -1 and the guest goes on.
(module
  (memory (export "memory") 1)

  ;; Grow by one page, twice; returns both memory.grow results and the final size in pages.
  (func (export "grow_twice") (result i32 i32 i32)
    (memory.grow (i32.const 1))
    (memory.grow (i32.const 1))
    (memory.size))

  ;; Grow by `pages` at once; returns memory.grow's result (old size in pages, or -1).
  (func (export "grow") (param $pages i32) (result i32)
    (memory.grow (local.get $pages))))
