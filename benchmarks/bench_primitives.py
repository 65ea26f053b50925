"""Calibrates the planner's cost model (fusionlang/cost/contract_order.py) on this machine.

    python benchmarks/bench_primitives.py

Prints nanoseconds per element / per FLOP for the primitive kinds the emitter
writes (multiply, GEMM, contiguous bmm, tiny bmm, multiply-and-sum, permuted copy)
and the constants they imply, in units of one GEMM FLOP.
"""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
torch.set_num_threads(2)


def timeit(fn, repeat=9):
    from bench_tensor_product import timeit as median_time
    return median_time(fn, repeat)


def main():
    z = 4096
    a, b = torch.randn(z * 32, 81), torch.randn(81, 40)
    gemm = timeit(lambda: a @ b) / (2 * a.shape[0] * 81 * 40)
    x, y = torch.randn(z, 32, 9), torch.randn(z, 1, 9)
    mul = timeit(lambda: x * y) / x.numel()
    xp = torch.randn(z, 9, 32).permute(0, 2, 1)
    copy = timeit(lambda: xp.contiguous()) / xp.numel()
    A, B = torch.randn(z, 32, 3), torch.randn(z, 3, 13)
    bmm = timeit(lambda: torch.bmm(A, B)) / (2 * z * 32 * 3 * 13)
    A1, B1 = torch.randn(z, 32, 1), torch.randn(z, 1, 9)
    tiny = timeit(lambda: torch.bmm(A1, B1)) / z
    ms = timeit(lambda: (A[:, :, :, None] * B[:, None, :, :]).sum(2)) / (z * 32 * 3 * 13)
    print(f"GEMM                {gemm * 1e9:.4f} ns/FLOP")
    print(f"multiply            {mul * 1e9:.3f} ns/element  = {mul / gemm:.0f} GEMM FLOPs (WRITE_WEIGHT)")
    print(f"permuted copy       {copy * 1e9:.3f} ns/element  = {copy / gemm:.0f} GEMM FLOPs")
    print(f"contiguous bmm      {bmm * 1e9:.4f} ns/FLOP     = {bmm / gemm:.1f} GEMM FLOPs")
    print(f"tiny bmm (<400)     {tiny * 1e9:.0f} ns/batch    = {tiny / gemm:.0f} GEMM FLOPs (SMALL_BMM_OVERHEAD)")
    print(f"multiply-and-sum    {ms * 1e9:.3f} ns/element  = {ms / gemm:.0f} GEMM FLOPs (MULSUM_WEIGHT)")


if __name__ == "__main__":
    main()
