;; Memory limits: a module whose initial memory is 4 pages (256 KiB).
;; With EnvConfig.max_memory below 4 pages it cannot even be instantiated.
(module
  (memory (export "memory") 4)

  ;; Returns the memory size in pages (4) when the module could be instantiated.
  (func (export "pages") (result i32)
    (memory.size)))
