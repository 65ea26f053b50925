"""GPU benchmark of issue 15: fusionlang (Triton and torch backends) against e3nn, eager and compiled.

    python benchmarks/gpu/bench_gpu.py                      # every case on CUDA, float32
    python benchmarks/gpu/bench_gpu.py --cases A D --repeat 50
    python benchmarks/gpu/bench_gpu.py --dry-run            # no GPU: tiny sizes (rows, and multiplicity 2)
                                                            # on the CPU, kernels through Triton's interpreter

Cases (benchmarks/gpu/cases.py): A 32x(0e+1o+2e) x sh(2) uvu N=100k; D the MACE convolution
128x(0e+1o) x sh(3) -> 128x(0e+1o+2e+3o) external uvu E=100k, and D-graph the same between
gather(sender) and scatter(receiver) with V=5k; F 16x(0e+1o+2e+3o) x itself uvw N=50k; C the
three-body fuse(h, y1, y2) with 32x(0e+1o); E the product basis 128x(0e+1o+2e+3o)^3 -> 128x(0e+1o).

Implementations: "triton" and "torch" (fusionlang's backends), "e3nn" (o3.TensorProduct, eager),
"e3nn-compiled" (the same under torch.compile) and, where cuequivariance_torch imports (install it
into the run from wheels carried with the working tree), "cueq" (cuEquivariance's modules: A, D, F,
E; its channel-wise products write one output segment per path, as MACE uses them).  For each: forward (no_grad) and forward+backward
(every input and weight requires grad; backward of a fixed random output gradient) times, the
median of --repeat runs, each timed with CUDA events after --warmup runs; the first call's wall
time (Triton and torch.compile compile there); the peak memory a forward+backward allocates above
what its inputs and parameters already hold.  Also: the agreement of the two fusionlang backends
(same weights), the card's copy bandwidth (a device-to-device copy of 1 GiB), and case D's memory
floor (and D-graph's): its inputs read once and its output written once at that bandwidth.  float32
with TF32 off everywhere.

No network needed (torch, triton and e3nn installed).  Writes JSON (--out, default $OUT/bench_gpu.json
or ./bench_gpu.json) after every measurement, so a run cut short keeps what it measured, and
prints a table.  A whole run takes a few minutes; --budget-s stops starting new measurements
(e3nn-compiled ones last) once that much time has passed.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

if "--dry-run" in sys.argv:
    os.environ["TRITON_INTERPRET"] = "1"      # before triton is imported anywhere

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.gpu.cases import (CASES, cueq_available, cueq_module, e3nn_module, fusion_module,  # noqa: E402
                                  inputs_for, memory_floor_bytes)

IMPLS = ("triton", "torch", "e3nn", "e3nn-compiled", "cueq")


class Timer:
    """Median milliseconds of fn: CUDA events around each run on a GPU, perf_counter on the CPU."""

    def __init__(self, device):
        self.cuda = device.type == "cuda"

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def __call__(self, fn, warmup: int, repeat: int) -> float:
        for _ in range(warmup):
            fn()
        self.sync()
        times = []
        for _ in range(repeat):
            if self.cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end))
            else:
                t = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t) * 1e3)
        return statistics.median(times)


def copy_bandwidth(device, timer: Timer, gib: float = 1.0) -> float:
    """Bytes per second of a device-to-device copy (read + write counted)."""
    n = int(gib * 2**30) // 4
    src = torch.empty(n, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    ms = timer(lambda: dst.copy_(src), warmup=3, repeat=10)
    del src, dst
    return 2 * n * 4 / (ms * 1e-3)


def build(case, impl: str, rows: int, nodes: int, device, dry_run: bool):
    """(module, inputs): our module and inputs for ours; e3nn gets the same inputs (its own weights)."""
    backend = "triton" if impl == "triton" else "torch"
    ours, program = fusion_module(case, backend)
    inputs = inputs_for(case, program, rows, nodes, device)
    if impl in ("triton", "torch"):
        return ours.to(device), inputs, program
    if impl == "cueq":
        return cueq_module(case, program, device), inputs, program
    module = e3nn_module(case, program).to(device)
    if impl == "e3nn-compiled":
        module = torch.compile(module, backend="eager" if dry_run else "inductor")
    return module, inputs, program


def measure(case, impl, args, device, timer: Timer) -> dict:
    rows = args.rows or case.rows
    nodes = args.nodes or case.nodes
    module, inputs, program = build(case, impl, rows, nodes, device, args.dry_run)
    float_inputs = [x.requires_grad_(True) if x.is_floating_point() else x for x in inputs]
    result = {"rows": rows, "nodes": nodes if case.nodes else None}

    def forward():
        with torch.no_grad():
            module(*float_inputs)

    timer.sync()
    start = time.perf_counter()
    out = module(*float_inputs)
    grad = torch.randn_like(out)
    out.backward(grad)
    timer.sync()
    result["first_call_s"] = round(time.perf_counter() - start, 3)   # includes any compilation
    del out

    def forward_backward():
        module(*float_inputs).backward(grad)

    result["forward_ms"] = timer(forward, args.warmup, args.repeat)
    result["forward_backward_ms"] = timer(forward_backward, args.warmup, args.repeat)
    if device.type == "cuda":
        for kind, fn in (("forward", forward), ("forward_backward", forward_backward)):
            gc.collect()
            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            fn()
            torch.cuda.synchronize()
            result[f"peak_{kind}_mb"] = round((torch.cuda.max_memory_allocated() - base) / 2**20, 1)
    if impl == "triton":
        result["memory_floor_bytes"] = memory_floor_bytes(case, program, rows, nodes=nodes)
    del module, inputs, float_inputs
    return result


def agreement(case, args, device) -> float:
    """Largest |triton - torch| / largest |torch| over a forward and every gradient (same weights)."""
    rows, nodes = min(args.rows or case.rows, 4096), min(args.nodes or case.nodes, 512) if case.nodes else 0
    reference, program = fusion_module(case, "torch")
    kernels, _ = fusion_module(case, "triton")
    reference, kernels = reference.to(device), kernels.to(device)
    kernels.load_state_dict(dict(reference.named_parameters()), strict=False)
    inputs = inputs_for(case, program, rows, nodes, device, seed=1)
    worst = 0.0
    results = []
    for module in (reference, kernels):
        xs = [x.clone().requires_grad_(True) if x.is_floating_point() else x for x in inputs]
        out = module(*xs)
        g = torch.ones_like(out)
        grads = torch.autograd.grad(out, [x for x in xs if x.requires_grad] + list(module.parameters()), g)
        results.append([out.detach(), *grads])
    for ref, got in zip(*results):
        worst = max(worst, float((got - ref).abs().max() / ref.abs().max().clamp_min(1e-30)))
    return worst


def table(report: dict) -> str:
    lines = [f"{'case':<8} {'impl':<14} {'fwd ms':>9} {'fwd+bwd ms':>11} {'peak MB':>9} {'first s':>8} "
             f"{'fwd x e3nn':>10} {'f+b x e3nn':>10} {'f+b x comp':>10}"]
    for key, case in report["cases"].items():
        res = case["results"]
        e3nn, comp = res.get("e3nn", {}), res.get("e3nn-compiled", {})
        for impl in IMPLS:
            r = res.get(impl)
            if not r or "forward_ms" not in r:
                lines.append(f"{key:<8} {impl:<14} {r.get('skipped', r.get('error', '-')) if r else '-'}")
                continue

            def ratio(other, kind):
                return f"{other[kind] / r[kind]:.2f}x" if other.get(kind) else "-"
            lines.append(f"{key:<8} {impl:<14} {r['forward_ms']:>9.3f} {r['forward_backward_ms']:>11.3f} "
                         f"{r.get('peak_forward_backward_mb', float('nan')):>9.1f} {r['first_call_s']:>8.1f} "
                         f"{ratio(e3nn, 'forward_ms'):>10} {ratio(e3nn, 'forward_backward_ms'):>10} "
                         f"{ratio(comp, 'forward_backward_ms'):>10}")
        if "agreement" in case:
            lines.append(f"{key:<8} triton vs torch backend: max relative difference {case['agreement']:.2e}")
        floor = case.get("memory_floor_ms")
        if floor:
            fwd = res.get("triton", {}).get("forward_ms")
            lines.append(f"{key:<8} memory floor {floor:.3f} ms (inputs read once, output written once at the "
                         f"measured copy bandwidth)" + (f"; triton forward {fwd / floor:.2f}x the floor" if fwd else ""))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--impls", nargs="*", choices=list(IMPLS),
                        default=[i for i in IMPLS if i != "cueq" or cueq_available()],
                        help="default: all; cueq (cuEquivariance) only where cuequivariance_torch imports")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rows", type=int, help="override every case's N / E")
    parser.add_argument("--nodes", type=int, help="override V of the graph cases")
    parser.add_argument("--budget-s", type=float, default=420, help="start no new measurement after this many s")
    parser.add_argument("--out", help="JSON path (default $OUT/bench_gpu.json, else ./bench_gpu.json)")
    parser.add_argument("--dry-run", action="store_true",
                        help="CPU, tiny sizes, kernels through Triton's interpreter: checks the script runs")
    args = parser.parse_args(argv)
    if args.dry_run:
        args.rows, args.nodes, args.repeat, args.warmup = args.rows or 6, args.nodes or 3, 1, 0
        args.budget_s = float("inf")
        device = torch.device("cpu")
    else:
        if not torch.cuda.is_available():
            parser.error("no CUDA device (use --dry-run to check the script on a CPU)")
        device = torch.device("cuda")
        torch.backends.cuda.matmul.allow_tf32 = False     # fp32 means fp32 for every implementation
        torch.backends.cudnn.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")
    out = Path(args.out or Path(os.environ.get("OUT", ".")) / "bench_gpu.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    timer = Timer(device)
    import e3nn
    import triton
    report = {"device": torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({platform.processor()})",
              "dry_run": args.dry_run, "dtype": "float32", "tf32": False, "repeat": args.repeat,
              "warmup": args.warmup,
              "versions": {"torch": torch.__version__, "triton": triton.__version__, "e3nn": e3nn.__version__,
                           "python": platform.python_version()},
              "cases": {}}
    if cueq_available():
        import cuequivariance_torch
        report["versions"]["cuequivariance_torch"] = cuequivariance_torch.__version__
    if device.type == "cuda":
        report["copy_bandwidth_gb_s"] = round(copy_bandwidth(device, timer) / 1e9, 1)
    started = time.perf_counter()

    def save():
        out.write_text(json.dumps(report, indent=1))

    # Everything but e3nn-compiled first, case by case; the compiled e3nn runs (slow to compile) last.
    order = [(k, i) for i in args.impls if i != "e3nn-compiled" for k in args.cases]
    order.sort(key=lambda ki: args.cases.index(ki[0]))
    order += [(k, "e3nn-compiled") for k in args.cases if "e3nn-compiled" in args.impls]
    cases = {key: CASES[key].small() if args.dry_run else CASES[key] for key in args.cases}
    for key in args.cases:
        case = cases[key]
        entry = report["cases"].setdefault(key, {"title": case.title, "note": case.note, "results": {},
                                                 "source": case.source})
        if "triton" in args.impls and "torch" in args.impls:
            try:
                entry["agreement"] = agreement(case, args, device)
            except Exception as exc:   # report and go on: one failing case must not lose the others
                entry["agreement_error"] = repr(exc)
        if key in ("D", "D-graph"):     # the goal: D's forward within 2x of this floor
            _, program = fusion_module(case, "torch")
            floor = memory_floor_bytes(case, program, args.rows or case.rows, nodes=args.nodes or case.nodes)
            entry["memory_floor_bytes"] = floor
            if "copy_bandwidth_gb_s" in report:
                entry["memory_floor_ms"] = floor / (report["copy_bandwidth_gb_s"] * 1e9) * 1e3
        save()
    for key, impl in order:
        case, results = cases[key], report["cases"][key]["results"]
        if time.perf_counter() - started > args.budget_s:
            results[impl] = {"skipped": f"time budget ({args.budget_s:.0f} s) spent"}
            continue
        print(f"[{time.perf_counter() - started:6.1f} s] {key} {impl} ...", file=sys.stderr, flush=True)
        try:
            results[impl] = measure(case, impl, args, device, timer)
        except NotImplementedError as exc:      # cuEquivariance has no module for the case
            results[impl] = {"skipped": str(exc)}
        except Exception as exc:
            results[impl] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        if device.type == "cuda":
            torch.cuda.empty_cache()
        save()
    report["total_s"] = round(time.perf_counter() - started, 1)
    save()
    print(table(report))
    print(f"\nwrote {out}")
    if args.dry_run:
        bad = [k for k, c in report["cases"].items() if c.get("agreement", 1.0) > 1e-5 or "agreement_error" in c]
        errors = [f"{k} {i}: {r['error']}" for k, c in report["cases"].items() for i, r in c["results"].items()
                  if "error" in r]
        if bad or errors:
            print(f"dry run FAILED: agreement {bad}, errors {errors}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
