"""fusionlang.nn.FullTensorProduct (a compiled `fuse(x1, x2) [paths=separate]`) against e3nn's
o3.FullTensorProduct, in one process.

    python benchmarks/bench_full_tensor_product.py [--batch N] [--repeat N]

Forward and forward+backward, float32, one thread: the time of a call is the CPU time of the
calling thread (other processes on a shared machine do not inflate it), the median of calls made
in alternation (ours, e3nn, ours, ...).  Prints a markdown table; writes nothing.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from e3nn import o3  # noqa: E402

from fusionlang import nn as fnn  # noqa: E402

CASES = [("8x0e+8x1o+8x2e", "0e+1o+2e"), ("32x0e+32x1o", "0e+1o+2e+3o")]


def runner(module, x1, x2, grad: bool):
    if not grad:
        def run():
            with torch.no_grad():
                module(x1, x2)
        return run
    a, b = x1.clone().requires_grad_(True), x2.clone().requires_grad_(True)

    def run_grad():
        module(a, b).pow(2).sum().backward()
    return run_grad


def measure(in1: str, in2: str, batch: int, repeat: int, grad: bool) -> dict[str, float]:
    ours, theirs = fnn.FullTensorProduct(in1, in2), o3.FullTensorProduct(in1, in2)
    generator = torch.Generator().manual_seed(0)
    x1 = torch.randn(batch, o3.Irreps(in1).dim, generator=generator)
    x2 = torch.randn(batch, o3.Irreps(in2).dim, generator=generator)
    difference = (ours(x1, x2) - theirs(x1, x2)).abs().max().item()
    if difference > 1e-4:
        raise SystemExit(f"{in1} x {in2}: ours and e3nn differ by {difference:.2e}")
    runs = {"ours": runner(ours, x1, x2, grad), "e3nn": runner(theirs, x1, x2, grad)}
    for run in runs.values():       # warm-up
        run()
        run()
    times = {name: [] for name in runs}
    for _ in range(repeat):
        for name, run in runs.items():
            start = time.thread_time()
            run()
            times[name].append(time.thread_time() - start)
    return {name: statistics.median(v) for name, v in times.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"batch {args.batch}, float32, 1 thread, median CPU time of {args.repeat} calls")
    print("| input 1 | input 2 | pass | ours | e3nn | e3nn / ours |")
    print("|---|---|---|---:|---:|---:|")
    for grad in (False, True):
        for in1, in2 in CASES:
            t = measure(in1, in2, args.batch, args.repeat, grad)
            print(f"| `{in1}` | `{in2}` | {'fwd+bwd' if grad else 'fwd'} | {t['ours'] * 1e3:.1f} ms "
                  f"| {t['e3nn'] * 1e3:.1f} ms | {t['e3nn'] / t['ours']:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
