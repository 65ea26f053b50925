"""A whole MACE-like interaction as one graph diagram against e3nn TensorProduct + index_add_.

    python benchmarks/bench_graph.py            # writes the table of docs/performance.md
    python benchmarks/bench_graph.py --quick    # fewer repetitions, prints only

The block: h = 128x(0e+1o) per node, y = sh(3) per edge, the edge message
fuse(gather(h, sender), y) [weights=uvu, external] -> 128x(0e+1o+2e+3o) with one weight row per
edge (radial weights), summed into the receivers.  V = 1,000 nodes, E = 20,000 edges.
e3nn: o3.TensorProduct(..., shared_weights=False) on h[sender], then index_add_ into zeros.
Both sides run eagerly, float32, 2 threads, timed in alternation (medians); "fwd+bwd" is forward
plus backward of a squared-sum loss with gradients for h, y and the weights.  Peak memory is the
rise of the peak resident set size during one forward+backward in a fresh process.  Agreement is
checked in float64 on the same inputs.
"""
from __future__ import annotations

import argparse
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


def run_times(repeat: int) -> dict:
    timers = {}
    for impl in ("ours", "e3nn"):
        module, (h, y, w, edge_index) = build(impl)
        leaves = [t.clone().requires_grad_(True) for t in (h, y, w)]

        def fwd(module=module, leaves=leaves, edge_index=edge_index):
            with torch.no_grad():
                module(*leaves, edge_index)

        def fwd_bwd(module=module, leaves=leaves, edge_index=edge_index):
            module(*leaves, edge_index).pow(2).sum().backward()
        timers[impl] = {"forward": fwd, "forward_backward": fwd_bwd}
    times = {impl: {kind: [] for kind in ("forward", "forward_backward")} for impl in timers}
    for kind in ("forward", "forward_backward"):
        for impl in timers:
            timers[impl][kind]()
        for _ in range(repeat):
            for impl in timers:
                t = time.perf_counter()
                timers[impl][kind]()
                times[impl][kind].append(time.perf_counter() - t)
    return {impl: {kind: statistics.median(v) for kind, v in kinds.items()} for impl, kinds in times.items()}


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


def table(times: dict, memory: dict, error: float) -> str:
    o, e = times["ours"], times["e3nn"]
    rows = ["| block | V | E | fwd ours (ms) | fwd e3nn (ms) | speed-up | fwd+bwd ours (ms) | fwd+bwd e3nn (ms) "
            "| speed-up | peak mem ours / e3nn (MB) | max rel. difference (float64) |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
            f"| `{H}` (x) `sh({L})` -> `{OUT}`, uvu external, scatter | {NODES:,} | {EDGES:,} "
            f"| {o['forward'] * 1e3:.1f} | {e['forward'] * 1e3:.1f} | {e['forward'] / o['forward']:.2f}x "
            f"| {o['forward_backward'] * 1e3:.1f} | {e['forward_backward'] * 1e3:.1f} "
            f"| {e['forward_backward'] / o['forward_backward']:.2f}x "
            f"| {memory['ours'] / 2**20:.0f} / {memory['e3nn'] / 2**20:.0f} | {error:.1e} |"]
    return "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=None)
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    repeat = args.repeat or (3 if args.quick else 11)
    error = agreement()
    times = run_times(repeat)
    memory = {impl: peak_memory(impl) for impl in ("ours", "e3nn")}
    text = table(times, memory, error)
    print(text)
    if not args.quick:
        doc = DOC.read_text()
        block = f"<!-- graph:start -->\n{text}<!-- graph:end -->"
        doc = re.sub(r"<!-- graph:start -->.*?<!-- graph:end -->", lambda m: block, doc, flags=re.S)
        DOC.write_text(doc)


if __name__ == "__main__":
    main()
