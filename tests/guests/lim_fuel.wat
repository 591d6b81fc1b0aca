;; Fuel limits (EnvConfig.max_fuel, in units of 100,000 instructions).
(module
  (memory (export "memory") 1)

  ;; Spins forever: only the fuel limit (or a kill) stops it.
  (func (export "spin")
    (loop $forever
      (br $forever)))

  ;; Counts from 0 to `n` in a loop (a handful of instructions per turn); returns n.
  (func (export "count") (param $n i64) (result i64)
    (local $i i64)
    (block $done
      (loop $next
        (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $next)))
    (local.get $i)))
