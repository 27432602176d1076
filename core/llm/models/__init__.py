"""Models: presets, their packages, GGUF conversion, loading."""
