"""The engine: the model's own thread, continuous batching, fair scheduling, the KV cache,
our lean forward and its native kernels (`Engine` is in engine.py)."""
