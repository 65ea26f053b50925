"""fusionlang against e3nn, in one process: forward and forward+backward, float32, 2 threads.

    python benchmarks/bench_tensor_product.py            # writes docs/performance.md (tables between markers)
    python benchmarks/bench_tensor_product.py --quick    # fewer repetitions, prints only

Cases (issue: planner and code generation):
  a) 32x(0e+1o+2e) (x) sh(2) -> 32x(0e+1o+2e), uvu and uvw, batch 4096
  b) 128x(0e+1o+2e) (x) sh(3) -> 128x(0e+1o+2e+3o), uvu, batch 1024
  c) the three-body block fuse(h, y1, y2) [uvu] against the e3nn sequence of two tensor
     products computing the same function (the first keeps one output term per path, so
     the second has exactly one weight per complete path and channel).
Peak memory is measured in a fresh subprocess per (case, implementation): the rise of the peak
resident set size (VmHWM, reset just before the run) over the resident size before one
forward+backward, after inputs and modules exist.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DOC = ROOT / "docs" / "performance.md"
THREADS = 2

CASES = {
    "a-uvu": dict(h="32x0e + 32x1o + 32x2e", l=2, out="32x0e + 32x1o + 32x2e", mode="uvu", batch=4096),
    "a-uvw": dict(h="32x0e + 32x1o + 32x2e", l=2, out="32x0e + 32x1o + 32x2e", mode="uvw", batch=4096),
    "b-uvu": dict(h="128x0e + 128x1o + 128x2e", l=3, out="128x0e + 128x1o + 128x2e + 128x3o", mode="uvu",
                  batch=1024),
    "c-3body": dict(h="16x0e + 16x1o + 16x2e", l=2, out="16x0e + 16x1o + 16x2e", mode="uvu", batch=1024,
                    three_body=True),
}


def sh(l):
    return " + ".join(f"1x{k}{'e' if k % 2 == 0 else 'o'}" for k in range(l + 1))


def build(case: dict, impl: str):
    """Return (module, inputs) for fusionlang ('ours') or e3nn."""
    from e3nn import o3
    batch = case["batch"]
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(batch, o3.Irreps(case["h"]).dim, generator=gen)
    y1 = torch.randn(batch, (case["l"] + 1) ** 2, generator=gen)
    y2 = torch.randn(batch, (case["l"] + 1) ** 2, generator=gen)
    three = case.get("three_body", False)
    if impl == "ours":
        from fusionlang.api import compile_source
        ins = "in y1 : sh({0})\n in y2 : sh({0})".format(case["l"]) if three else f"in y1 : sh({case['l']})"
        args = "h, y1, y2" if three else "h, y1"
        text = (f"group O3\ndiagram B {{\n in h : {case['h']}\n {ins}\n out m : {case['out']}\n"
                f" m = fuse({args}) [weights={case['mode']}]\n}}\n")
        module = compile_source(text).modules["B"]()
        return module, ((h, y1, y2) if three else (h, y1))
    if not three:
        a, b, c = o3.Irreps(case["h"]), o3.Irreps(sh(case["l"])), o3.Irreps(case["out"])
        ins = [(i, j, k, case["mode"], True) for i, (_, x) in enumerate(a) for j, (_, y) in enumerate(b)
               for k, (_, z) in enumerate(c) if z in x * y]
        return o3.TensorProduct(a, b, c, ins), (h, y1)
    # three-body as two e3nn tensor products: one output term per first-stage path.
    a, b, c = o3.Irreps(case["h"]), o3.Irreps(sh(case["l"])), o3.Irreps(case["out"])
    mid, ins1 = [], []
    for i, (mul, x) in enumerate(a):
        for j, (_, y) in enumerate(b):
            for z in x * y:
                ins1.append((i, j, len(mid), "uvu", False))
                mid.append((mul, z))
    mid = o3.Irreps(mid)
    ins2 = [(i, j, k, "uvu", True) for i, (_, x) in enumerate(mid) for j, (_, y) in enumerate(b)
            for k, (_, z) in enumerate(c) if z in x * y]
    tp1 = o3.TensorProduct(a, b, mid, ins1)
    tp2 = o3.TensorProduct(mid, b, c, ins2)

    class TwoStep(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.tp1, self.tp2 = tp1, tp2

        def forward(self, h, y1, y2):
            return self.tp2(self.tp1(h, y1), y2)
    return TwoStep(), (h, y1, y2)


def timeit(fn, repeat: int) -> float:
    fn()
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def run_times(name: str, repeat: int) -> dict:
    """Median times of both implementations, measured in alternation (ours, e3nn, ours, ...) so
    that both see the same state of the process's allocator and caches; timing one after the
    other let the first one's freed heap decide how many page faults the second one paid."""
    case = CASES[name]
    timers = {}
    for impl in ("ours", "e3nn"):
        module, inputs = build(case, impl)
        inputs = [x.clone().requires_grad_(True) for x in inputs]

        def fwd(module=module, inputs=inputs):
            with torch.no_grad():
                module(*inputs)

        def fwd_bwd(module=module, inputs=inputs):
            module(*inputs).pow(2).sum().backward()
        timers[impl] = {"forward": fwd, "forward_backward": fwd_bwd}
    times = {impl: {kind: [] for kind in ("forward", "forward_backward")} for impl in timers}
    for kind in ("forward", "forward_backward"):
        for impl in timers:       # warm-up
            timers[impl][kind]()
            timers[impl][kind]()
        for _ in range(repeat):
            for impl in timers:
                fn = timers[impl][kind]
                t = time.perf_counter()
                fn()
                times[impl][kind].append(time.perf_counter() - t)
    return {impl: {kind: statistics.median(v) for kind, v in kinds.items()} for impl, kinds in times.items()}


def saved_for_backward(name: str, impl: str) -> int:
    """Bytes autograd keeps from one forward for the backward pass: the distinct storages of the
    saved tensors, not counting inputs, parameters and buffers (which exist anyway)."""
    module, inputs = build(CASES[name], impl)
    inputs = [x.requires_grad_(True) for x in inputs]
    existing = {t.untyped_storage().data_ptr() for t in [*inputs, *module.parameters(), *module.buffers()]}
    saved = {}

    def keep(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in existing:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
        module(*inputs)
    return sum(saved.values())


def peak_memory(name: str, impl: str) -> int:
    """Run one forward+backward in a fresh process; report how far the peak resident set size rose
    above the resident size just before it (Linux: the peak is reset through /proc/self/clear_refs)."""
    code = (f"import sys, torch; sys.path.insert(0, {str(ROOT)!r}); torch.set_num_threads({THREADS});"
            "from benchmarks.bench_tensor_product import CASES, build, _status_kb;"
            f"m, xs = build(CASES[{name!r}], {impl!r}); xs = [x.requires_grad_(True) for x in xs];"
            "import gc; gc.collect(); open('/proc/self/clear_refs', 'w').write('5');"
            "base = _status_kb('VmRSS'); out = m(*xs); out.pow(2).sum().backward();"
            "print((_status_kb('VmHWM') - base) * 1024)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    if res.returncode:
        raise RuntimeError(res.stderr)
    return int(res.stdout.strip().splitlines()[-1])


def _status_kb(field: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def matmul_rate() -> float:
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    t = timeit(lambda: a @ b, 5)
    return 2 * 2048 ** 3 / t


def plan_numbers(name: str) -> dict:
    """The planner's FLOPs for this case and the best order found by exhaustive search per contraction."""
    from fusionlang.api import compile_source
    from fusionlang.cost.contract_order import order_for
    case = CASES[name]
    three = case.get("three_body", False)
    ins = "in y1 : sh({0})\n in y2 : sh({0})".format(case["l"]) if three else f"in y1 : sh({case['l']})"
    args = "h, y1, y2" if three else "h, y1"
    text = (f"group O3\ndiagram B {{\n in h : {case['h']}\n {ins}\n out m : {case['out']}\n"
            f" m = fuse({args}) [weights={case['mode']}]\n}}\n")
    plan = compile_source(text).plans["B"]
    from fusionlang.backend import plan as planner
    plan = planner.plan_diagram(plan.diagram, batch=case["batch"])
    chosen = plan.flops
    best = 0
    for v in plan.vertices:
        for c in v.contractions:
            best += order_for(c.equation, _operand_shapes(c, v, case["batch"]), objective="flops")[1]
        for b in v.operator_blocks:   # the same contraction as one einsum, in its FLOP-optimal order
            best += order_for(b.equation, b.operand_shapes, objective="flops")[1]
    # The pairwise plans alone (no operator form), each contraction in its FLOP-optimal order: the
    # fewest FLOPs of any plan the planner considers.
    pairwise = planner.plan_diagram(plan.diagram, case["batch"], form="pairwise")
    fewest = sum(order_for(c.equation, _operand_shapes(c, v, case["batch"]), objective="flops")[1]
                 for v in pairwise.vertices for c in v.contractions)
    return {"flops": chosen, "naive_flops": plan.naive_flops, "exhaustive_flops": best, "paths": plan.n_paths,
            "fewest_flops": min(fewest, best),
            "weights": plan.weight_numel, "cost": plan.cost, "naive_cost": plan.naive_cost}


def _operand_shapes(c, v, batch):
    shapes = [(batch, s.mul, s.dim) for s in c.segments]
    if v.kind == "fuse":
        shapes.append(c.constant.shape)
    if c.weight_shape is not None:
        shapes.append(c.weight_shape)
    if c.scatter is not None:
        shapes.append(c.scatter.shape)
    return shapes


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--cases", nargs="*", default=list(CASES))
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    repeat = 5 if args.quick else 21
    rate = matmul_rate()
    rows = []
    for name in args.cases:
        print(f"case {name} ...", file=sys.stderr, flush=True)
        measured = run_times(name, repeat)
        ours, e3 = measured["ours"], measured["e3nn"]
        mem = {impl: peak_memory(name, impl) for impl in ("ours", "e3nn")} if not args.quick else {}
        saved = {impl: saved_for_backward(name, impl) for impl in ("ours", "e3nn")}
        plan = plan_numbers(name)
        flop_rate = plan["flops"] / ours["forward"]
        rows.append((name, ours, e3, mem, saved, plan, flop_rate / rate))
    lines = ["| case | batch | fwd ours (ms) | fwd e3nn (ms) | speed-up | fwd+bwd ours (ms) | fwd+bwd e3nn (ms) | "
             "speed-up | peak mem ours / e3nn (MB) | saved for backward ours / e3nn (MB) | "
             "fraction of matmul rate (fwd) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, ours, e3, mem, saved, plan, frac in rows:
        m = f"{mem['ours'] / 1e6:.0f} / {mem['e3nn'] / 1e6:.0f}" if mem else "-"
        kept = f"{saved['ours'] / 1e6:.0f} / {saved['e3nn'] / 1e6:.0f}"
        lines.append(f"| {name} | {CASES[name]['batch']} | {ours['forward'] * 1e3:.2f} | {e3['forward'] * 1e3:.2f} | "
                     f"{e3['forward'] / ours['forward']:.2f}x | {ours['forward_backward'] * 1e3:.2f} | "
                     f"{e3['forward_backward'] * 1e3:.2f} | {e3['forward_backward'] / ours['forward_backward']:.2f}x | "
                     f"{m} | {kept} | {frac * 100:.1f}% |")
    plan_lines = ["| case | paths | weights | planner FLOPs | FLOP-optimal orders (exhaustive, same grouping) | "
                  "planner / optimal | fewest FLOPs of any considered plan | "
                  "naive per-path FLOPs | modelled cost: planner / naive |", "|---|---|---|---|---|---|---|---|---|"]
    for name, _, _, _, _, plan, _ in rows:
        plan_lines.append(f"| {name} | {plan['paths']} | {plan['weights']} | {plan['flops']:,} | "
                          f"{plan['exhaustive_flops']:,} | {plan['flops'] / plan['exhaustive_flops']:.3f} | "
                          f"{plan['fewest_flops']:,} | "
                          f"{plan['naive_flops']:,} | {plan['cost'] / plan['naive_cost']:.2f} |")
    text = "\n".join(lines) + "\n\nfloat32 matmul rate of this machine (2048^3, 2 threads): " \
        f"{rate / 1e9:.1f} GFLOP/s\n\n" + "\n".join(plan_lines) + "\n"
    print(text)
    if not args.quick:
        write_section("tensor-product", text)


def write_section(marker: str, text: str) -> None:
    doc = DOC.read_text() if DOC.exists() else "# Performance\n"
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    block = f"{start}\n{text}{end}"
    if start in doc:
        doc = doc[:doc.index(start)] + block + doc[doc.index(end) + len(end):]
    else:
        doc = doc.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(doc)


if __name__ == "__main__":
    main()
