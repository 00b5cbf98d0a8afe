"""Compression of trained candidates: pruning and int8 quantization (runs inside the sandbox)."""
