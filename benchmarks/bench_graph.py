"""A whole MACE-like interaction as one graph diagram against e3nn TensorProduct + index_add_.

    python benchmarks/bench_graph.py            # writes the table of docs/performance.md
    python benchmarks/bench_graph.py --quick    # fewer repetitions, prints only

The block: h = 128x(0e+1o) per node, y = sh(3) per edge, the edge message
fuse(gather(h, sender), y) [weights=uvu, external] -> 128x(0e+1o+2e+3o) with one weight row per
edge (radial weights), summed into the receivers.  V = 1,000 nodes, E = 20,000 edges.
e3nn: o3.TensorProduct(..., shared_weights=False) on h[sender], then index_add_ into zeros.
Both sides run eagerly, float32, 2 threads, timed in alternation (medians); "fwd+bwd" is forward
plus backward of a squared-sum loss with gradients for h, y and the weights.  Besides wall time the
CPU time of the process (both threads) is reported: on a shared machine it is the steadier measure
of the work done.  Peak memory is the rise of the peak resident set size during one forward+backward
in a fresh process.  Agreement is checked in float64 on the same inputs.

A second table measures the graph planner's rewrites (docs/planner.md): each block compiled as
planned and planned vertex by vertex as written (api.compile_analysis(graph_rewrites=False)).
"""
from __future__ import annotations

import argparse
import os
import re
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
NODES, EDGES = 1000, 20000
H, OUT, L = "128x0e + 128x1o", "128x0e + 128x1o + 128x2e + 128x3o", 3

SOURCE = f"""group O3
diagram Interaction {{
    in  h : {H} per node
    in  y : sh({L}) per edge
    out a : {OUT} per node
    wire hs : {H} = gather(h, sender)
    wire m  : {OUT} = fuse(hs, y) [weights=uvu, external]
    a = scatter(m, receiver)
}}
"""


def graph_inputs(dtype=torch.float32, seed: int = 0):
    from e3nn import o3
    gen = torch.Generator().manual_seed(seed)
    h = torch.randn(NODES, o3.Irreps(H).dim, generator=gen, dtype=dtype)
    y = torch.randn(EDGES, (L + 1) ** 2, generator=gen, dtype=dtype)
    edge_index = torch.randint(0, NODES, (2, EDGES), generator=gen)
    numel = e3nn_module().weight_numel
    w = torch.randn(EDGES, numel, generator=gen, dtype=dtype)
    return h, y, w, edge_index


def e3nn_module():
    from e3nn import o3
    a, b, c = o3.Irreps(H), o3.Irreps(" + ".join(f"{k}{'eo'[k % 2]}" for k in range(L + 1))), o3.Irreps(OUT)
    ins = [(i, j, k, "uvu", True) for i, (_, x) in enumerate(a) for j, (_, y) in enumerate(b)
           for k, (_, z) in enumerate(c) if z in x * y]
    tp = o3.TensorProduct(a, b, c, ins, shared_weights=False, internal_weights=False)

    class E3nnInteraction(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.tp = tp
            self.weight_numel = tp.weight_numel

        def forward(self, h, y, w, edge_index):
            m = self.tp(h[edge_index[0]], y, w)
            return torch.zeros(h.shape[0], m.shape[1], dtype=m.dtype).index_add_(0, edge_index[1], m)
    return E3nnInteraction()


def build(impl: str, dtype=torch.float32):
    if impl == "ours":
        from fusionlang.api import compile_source
        module = compile_source(SOURCE).modules["Interaction"]()
    else:
        module = e3nn_module()
    return module.to(dtype), graph_inputs(dtype)


def agreement() -> float:
    """Largest |ours - e3nn| relative to the largest |e3nn| entry, in float64."""
    torch.set_default_dtype(torch.float64)     # e3nn builds its constants in the default dtype
    try:
        ours, args = build("ours", torch.float64)
        theirs, _ = build("e3nn", torch.float64)
        with torch.no_grad():
            a, b = ours(*args), theirs(*args)
        return float((a - b).abs().max() / b.abs().max())
    finally:
        torch.set_default_dtype(torch.float32)


def alternate(cases: dict, repeat: int) -> dict:
    """{label: (module, leaves, trailing args)} -> {label: {kind: (wall median, CPU median)}}, the
    labels run in alternation so that all see the same state of the allocator and caches."""
    timers = {}
    for label, (module, leaves, rest) in cases.items():
        leaves = [t.clone().requires_grad_(True) for t in leaves]

        def fwd(module=module, leaves=leaves, rest=rest):
            with torch.no_grad():
                module(*leaves, *rest)

        def fwd_bwd(module=module, leaves=leaves, rest=rest):
            module(*leaves, *rest).pow(2).sum().backward()
        timers[label] = {"forward": fwd, "forward_backward": fwd_bwd}
    times = {label: {kind: [] for kind in ("forward", "forward_backward")} for label in timers}
    for kind in ("forward", "forward_backward"):
        for label in timers:
            timers[label][kind]()
        for _ in range(repeat):
            for label in timers:
                wall, cpu = time.perf_counter(), time.process_time()
                timers[label][kind]()
                times[label][kind].append((time.perf_counter() - wall, time.process_time() - cpu))
    return {label: {kind: (statistics.median(t[0] for t in v), statistics.median(t[1] for t in v))
                    for kind, v in kinds.items()} for label, kinds in times.items()}


def run_times(repeat: int) -> dict:
    cases = {}
    for impl in ("ours", "e3nn"):
        module, (h, y, w, edge_index) = build(impl)
        cases[impl] = (module, (h, y, w), (edge_index,))
    return alternate(cases, repeat)


# Blocks for the rewrite table: the benchmark block, a convolution with shared weights everywhere
# (a linear before the gather, uvw weights, a linear after the scatter) and edge features with
# channels widened by uvw weights (which the planner applies on the nodes).
REWRITE_BLOCKS = {
    "MACE-like interaction (above)": SOURCE,
    "convolution, shared weights": """group O3
diagram Block {
    in  h : 64x0e + 64x1o per node
    in  y : sh(2) per edge
    out a : 32x0e + 32x1o per node
    wire hs : 64x0e + 64x1o = gather(h, receiver)
    wire t  : 32x0e + 32x1o = linear(hs)
    wire m  : 32x0e + 32x1o + 32x2e = fuse(t, y) [weights=uvw]
    wire s  : 32x0e + 32x1o + 32x2e = scatter(m, receiver)
    a = linear(s)
}
""",
    "edge features, widened by uvw": """group O3
diagram Block {
    in  h : 8x(0e + 1o) per node
    in  f : 8x(0e + 1o) per edge
    out a : 64x(0e + 1o) per node
    wire hs : 8x(0e + 1o) = gather(h, sender)
    wire m  : 64x(0e + 1o) = fuse(hs, f) [weights=uvw]
    a = scatter(m, receiver)
}
""",
}


def rewrite_rows(repeat: int) -> list[tuple]:
    from fusionlang.api import compile_analysis
    from fusionlang.frontend import analyze
    rows = []
    for label, text in REWRITE_BLOCKS.items():
        cases, costs = {}, {}
        for rewrites in (True, False):
            program = compile_analysis(analyze(text), batch=NODES, graph_rewrites=rewrites)
            (name, cls), = program.modules.items()
            plan = program.plans[name]
            d = plan.diagram
            gen = torch.Generator().manual_seed(0)
            count = {"node": NODES, "edge": EDGES}
            leaves = [torch.randn(count[d.domain(w)], d.irreps(w).dim, generator=gen) for w in d.inputs]
            leaves += [torch.randn(EDGES, v.weight_numel, generator=gen)
                       for v in plan.vertices if v.external and v.weight_numel]
            edge_index = torch.randint(0, NODES, (2, EDGES), generator=gen)
            torch.manual_seed(0)
            cases[rewrites] = (cls(), leaves, (edge_index,))
            costs[rewrites] = (plan.cost, plan.rewrites)
        times = alternate(cases, repeat)
        rows.append((label, len(costs[True][1]), costs[False][0] / costs[True][0], times[True], times[False]))
    return rows


def peak_memory(impl: str) -> int:
    code = (f"import sys, torch; sys.path.insert(0, {str(ROOT)!r}); torch.set_num_threads({THREADS});"
            "from benchmarks.bench_graph import build, _status_kb;"
            f"m, (h, y, w, e) = build({impl!r}); xs = [t.requires_grad_(True) for t in (h, y, w)];"
            "import gc; gc.collect(); open('/proc/self/clear_refs', 'w').write('5');"
            "base = _status_kb('VmRSS'); out = m(*xs, e); out.pow(2).sum().backward();"
            "print((_status_kb('VmHWM') - base) * 1024)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
    if res.returncode:
        raise RuntimeError(res.stderr)
    return int(res.stdout.strip().splitlines()[-1])


def _status_kb(field: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _pair(ours, theirs, k: int) -> str:
    return f"{ours[k] * 1e3:.0f} / {theirs[k] * 1e3:.0f} | {theirs[k] / ours[k]:.2f}x"


def table(times: dict, memory: dict, error: float, rewrites: list[tuple]) -> str:
    o, e = times["ours"], times["e3nn"]
    rows = ["| block | V | E | fwd ours / e3nn (ms) | speed-up | fwd+bwd ours / e3nn (ms) | speed-up "
            "| fwd+bwd CPU time ours / e3nn (ms) | speed-up | peak mem ours / e3nn (MB) "
            "| max rel. difference (float64) |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
            f"| `{H}` (x) `sh({L})` -> `{OUT}`, uvu external, scatter | {NODES:,} | {EDGES:,} "
            f"| {_pair(o['forward'], e['forward'], 0)} | {_pair(o['forward_backward'], e['forward_backward'], 0)} "
            f"| {_pair(o['forward_backward'], e['forward_backward'], 1)} "
            f"| {memory['ours'] / 2**20:.0f} / {memory['e3nn'] / 2**20:.0f} | {error:.1e} |", "",
            "| block (V = 1,000, E = 20,000) | rewrites taken | modelled cost as written / planned "
            "| fwd planned / as written (ms) | speed-up | fwd+bwd planned / as written (ms) | speed-up "
            "| fwd+bwd CPU time planned / as written (ms) | speed-up |",
            "|---|---|---|---|---|---|---|---|---|"]
    for label, taken, modelled, planned, written in rewrites:
        rows.append(f"| {label} | {taken} | {modelled:.2f}x | {_pair(planned['forward'], written['forward'], 0)} "
                    f"| {_pair(planned['forward_backward'], written['forward_backward'], 0)} "
                    f"| {_pair(planned['forward_backward'], written['forward_backward'], 1)} |")
    return "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=None)
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    repeat = args.repeat or (3 if args.quick else 11)
    load_before = os.getloadavg()[0]
    error = agreement()
    times = run_times(repeat)
    memory = {impl: peak_memory(impl) for impl in ("ours", "e3nn")}
    text = table(times, memory, error, rewrite_rows(repeat))
    # The machine is shared: the load says how far the wall times are from an idle machine's.
    text += (f"\nLoad average (1 min) on this {os.cpu_count()}-core machine: {load_before:.1f} before the "
             f"run, {os.getloadavg()[0]:.1f} after it.\n")
    print(text)
    if not args.quick:
        doc = DOC.read_text()
        block = f"<!-- graph:start -->\n{text}<!-- graph:end -->"
        doc = re.sub(r"<!-- graph:start -->.*?<!-- graph:end -->", lambda m: block, doc, flags=re.S)
        DOC.write_text(doc)


if __name__ == "__main__":
    main()
