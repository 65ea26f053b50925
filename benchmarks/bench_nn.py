"""fusionlang.nn.spherical_harmonics against e3nn's o3.spherical_harmonics, in one process.

    python benchmarks/bench_nn.py            # prints the table and rewrites it in docs/nn.md
    python benchmarks/bench_nn.py --quick    # fewer sizes and repetitions, prints only

Both are called the way a model calls them: the function (e3nn builds its module
on each call, as its ``o3.spherical_harmonics`` does) and the module built once
(``o3.SphericalHarmonics`` against ``fusionlang.nn.SphericalHarmonics``).
``normalize=True, normalization="component"``, degrees 0..lmax, float32, one
thread by default (on a shared two-core machine intra-op threads of tiny
operations mostly wait for each other; ``--threads N`` to change it).  With one
thread the time of a call is the CPU time of the calling thread, which other
processes on the machine do not inflate; with more, wall-clock time.  Times are
medians of calls made in alternation (ours, e3nn, ours, ...) so that both see
the same state of the allocator and caches.
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DOC = ROOT / "docs" / "nn.md"
THREADS = 1
MARK_BEGIN = "<!-- bench_nn:begin -->"
MARK_END = "<!-- bench_nn:end -->"


def timers(lmax: int, n: int, dtype, grad: bool):
    from e3nn import o3

    from fusionlang import nn as fnn

    ls = list(range(lmax + 1))
    x = torch.randn(n, 3, dtype=dtype, generator=torch.Generator().manual_seed(lmax * 1000 + n))
    ours_module = fnn.SphericalHarmonics(ls, True, "component")
    e3nn_module = o3.SphericalHarmonics(ls, True, "component")
    calls = {
        "ours function": lambda v: fnn.spherical_harmonics(ls, v, True, "component"),
        "e3nn function": lambda v: o3.spherical_harmonics(ls, v, True, "component"),
        "ours module": ours_module,
        "e3nn module": e3nn_module,
    }

    def make(call):
        if grad:
            xg = x.clone().requires_grad_(True)

            def run():
                call(xg).pow(2).sum().backward()
        else:
            def run():
                with torch.no_grad():
                    call(x)
        return run
    return {name: make(call) for name, call in calls.items()}


def measure(lmax: int, n: int, dtype, grad: bool, repeat: int) -> dict:
    clock = time.thread_time if torch.get_num_threads() == 1 else time.perf_counter
    fns = timers(lmax, n, dtype, grad)
    for fn in fns.values():     # warm-up (e3nn scripts its kernel on the first call)
        fn()
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t = clock()
            fn()
            times[name].append(clock() - t)
    return {name: statistics.median(v) for name, v in times.items()}


def table(sizes, lmaxes, repeat: int, dtype) -> str:
    rows = ["| lmax | points | pass | ours function | e3nn function | speed-up "
            "| ours module | e3nn module | speed-up |",
            "|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for grad in (False, True):
        for n in sizes:
            for lmax in lmaxes:
                t = measure(lmax, n, dtype, grad, repeat if n < 50_000 else max(5, repeat // 4))
                us = {k: v * 1e6 for k, v in t.items()}
                rows.append(
                    f"| {lmax} | {n} | {'fwd+bwd' if grad else 'fwd'} "
                    f"| {us['ours function']:.0f} µs | {us['e3nn function']:.0f} µs "
                    f"| {t['e3nn function'] / t['ours function']:.1f}x "
                    f"| {us['ours module']:.0f} µs | {us['e3nn module']:.0f} µs "
                    f"| {t['e3nn module'] / t['ours module']:.1f}x |")
                print(rows[-1], flush=True)
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes and repetitions; print only")
    parser.add_argument("--float64", action="store_true", help="time float64 instead of float32; print only")
    parser.add_argument("--threads", type=int, default=THREADS, help=f"intra-op threads (default {THREADS})")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    dtype = torch.float64 if args.float64 else torch.float32
    if args.quick:
        text = table([1000], [2, 6], 15, dtype)
    else:
        text = table([100, 1000, 10_000, 100_000], [1, 2, 3, 4, 5, 6], 41, dtype)
    if args.quick or args.float64 or args.threads != THREADS:
        return 0
    doc = DOC.read_text()
    pattern = re.compile(re.escape(MARK_BEGIN) + ".*?" + re.escape(MARK_END), re.S)
    if not pattern.search(doc):
        print(f"no markers in {DOC}; table not written", file=sys.stderr)
        return 1
    import e3nn
    stamp = (f"torch {torch.__version__}, e3nn {e3nn.__version__}, {args.threads} thread (CPU time of the "
             "calling thread), float32, medians of alternating calls, times per call; "
             "speed-up = e3nn's time / ours")
    DOC.write_text(pattern.sub(lambda _: f"{MARK_BEGIN}\n{stamp}:\n\n{text}\n{MARK_END}", doc))
    print(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
