"""The Triton backend: generated GPU kernels for fuse vertices (docs/gpu.md).

`select_backend` resolves compile_source's backend= argument; emit.py writes the module
source; kernels.py the kernels; spec.py the per-vertex data they are generated from.
"""
from __future__ import annotations

BACKENDS = ("auto", "torch", "triton")


def triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def select_backend(backend: str = "auto") -> str:
    """"torch" or "triton": auto picks Triton where a CUDA device is present and triton imports."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "triton":
        if not triton_available():
            raise ValueError("backend 'triton' needs the triton package (pip install triton, or the [gpu] extra)")
        return "triton"
    if backend == "torch":
        return "torch"
    import torch
    return "triton" if torch.cuda.is_available() and triton_available() else "torch"
