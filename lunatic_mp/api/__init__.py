"""The Python API: :class:`Runtime`, :class:`AsyncRuntime`, process handles and the executor."""
