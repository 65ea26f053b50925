"""MACE's product basis: our symmetric vertex against the unreduced uuu vertex and mace-torch.

    PYTHONPATH=. /work/venv-mace/bin/python benchmarks/bench_product_basis.py   # with mace-torch; writes
                                                                               # docs/performance.md
    python benchmarks/bench_product_basis.py --quick                           # without it; prints only
    python benchmarks/bench_product_basis.py --calibrate      # the pair form against the contractions on a
                                                              # grid of order-3 symmetric fuses; writes
                                                              # docs/performance.md (SYMMETRIC_PAIRS_COST_SCALE)

The block of MACE (Batatia et al. 2022): the atomic basis A = 128x(0e+1o+2e+3o) of every node,
correlation 3, into 0e + 1o, float32, 2 threads, V = 1,000 nodes.  Rows:

  symmetric           fuse(A, A, A) [weights=uuu, symmetric], the planner's choice (the pair form)
  symmetric, pairwise the same, with the pair form switched off (form="pairwise": contractions)
  unreduced           fuse(A, A, A) [weights=uuu]: one weight per complete path
  ours, corr. 2 + 3   examples/diagrams/mace_symmetric_product_basis.fus (B2 and B3)
  mace-torch          SymmetricContraction(correlation=3, one element), where mace-torch imports:
                      its correlations 1, 2 and 3 together, on its own layout [V, channels, 16]

Times are medians of forward (no autograd) and forward+backward (squared-sum loss, gradients of the
input and the weights), our rows timed in alternation; mace-torch is timed in a second round, in
alternation with the symmetric row alone, and its ratio is to that round's symmetric time (timed
together with our other rows, its gigabyte of transient tensors per forward+backward made every
row after it pay fresh page faults: 2-5x on this machine).  "saved" is what autograd keeps from one
forward for the backward pass.  "agreement": the largest difference of the symmetric vertex from
the unreduced one given the weights w = U c (relative to the output's largest entry, float32).
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

import torch

try:   # mace-torch first: it makes e3nn 0.4.4's torch.load work with this torch
    from mace.modules.symmetric_contraction import SymmetricContraction
except ImportError:
    SymmetricContraction = None

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DOC = ROOT / "docs" / "performance.md"
THREADS = 2
MUL, NODES = 128, 1000
A = f"{MUL}x(0e + 1o + 2e + 3o)"
OUT = f"{MUL}x(0e + 1o)"
COMPONENTS = 16                       # one channel: 1 + 3 + 5 + 7


def _diagram(options: str) -> str:
    return (f"group O3\ndiagram P {{\n    in A : {A}\n    out B : {OUT}\n"
            f"    B = fuse(A, A, A) [{options}]\n}}\n")


def build() -> dict:
    """name -> (module, inputs, weights per channel, correlation-3 weights per channel)."""
    from fusionlang.api import compile_analysis, compile_file
    from fusionlang.frontend import analyze
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(NODES, MUL * COMPONENTS, generator=gen)
    rows = {}
    for name, options, form in (("symmetric", "weights=uuu, symmetric", "cheaper"),
                                ("symmetric, pairwise", "weights=uuu, symmetric", "pairwise"),
                                ("unreduced", "weights=uuu", "cheaper")):
        program = compile_analysis(analyze(_diagram(options)), form=form)
        per_channel = program.plans["P"].weight_numel // MUL
        rows[name] = (program.modules["P"](), (x,), per_channel, per_channel)
    example = compile_file(ROOT / "examples" / "diagrams" / "mace_symmetric_product_basis.fus")
    b2, b3 = example.plans["SymmetricProductBasis"].vertices
    rows["ours, corr. 2 + 3"] = (example.modules["SymmetricProductBasis"](), (x,),
                                 (b2.weight_numel + b3.weight_numel) // MUL, b3.weight_numel // MUL)
    if SymmetricContraction is not None:
        from e3nn import o3
        block = SymmetricContraction(o3.Irreps(f"{MUL}x0e + {MUL}x1o + {MUL}x2e + {MUL}x3o"),
                                     o3.Irreps(f"{MUL}x0e + {MUL}x1o"), correlation=3, num_elements=1)
        total = sum(p.numel() for p in block.parameters()) // MUL
        third = sum(c.weights_max.numel() for c in block.contractions) // MUL
        x_mace = torch.randn(NODES, MUL, COMPONENTS, generator=gen)
        rows["mace-torch"] = (block, (x_mace, torch.ones(NODES, 1)), total, third)
    return rows


def agreement(rows: dict) -> float:
    """Symmetric vertex (weights c) against the unreduced one (weights w = U c), same input."""
    from fusionlang.api import compile_source
    from fusionlang.reference import unreduced_weights
    sym, (x,), _, _ = rows["symmetric"]
    unreduced = rows["unreduced"][0]
    diagram = compile_source(_diagram("weights=uuu, symmetric")).plans["P"].diagram
    w = unreduced_weights(diagram, diagram.vertices()[0][0], sym.B_weight.detach().double().numpy())
    with torch.no_grad():
        unreduced.B_weight.copy_(torch.from_numpy(w))
        a, b = sym(x), unreduced(x)
    return float((a - b).abs().max() / b.abs().max())


def saved_for_backward(module, inputs) -> int:
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


def run_times(rows: dict, repeat: int) -> dict:
    timers = {}
    for name, (module, inputs, _, _) in rows.items():
        leaf = inputs[0].clone().requires_grad_(True)
        args = (leaf,) + tuple(inputs[1:])

        def fwd(module=module, args=args):
            with torch.no_grad():
                module(*args)

        def fwd_bwd(module=module, args=args):
            out = module(*args)
            sum(o.pow(2).sum() for o in (out if isinstance(out, tuple) else (out,))).backward()
        timers[name] = {"forward": fwd, "forward_backward": fwd_bwd}
    times = {name: {kind: [] for kind in ("forward", "forward_backward")} for name in timers}
    for kind in ("forward", "forward_backward"):
        for name in timers:       # warm-up
            timers[name][kind]()
            timers[name][kind]()
        for _ in range(repeat):
            for name in timers:   # in alternation: every row sees the same state of the machine
                t = time.perf_counter()
                timers[name][kind]()
                times[name][kind].append(time.perf_counter() - t)
    return {name: {kind: statistics.median(v) for kind, v in kinds.items()} for name, kinds in times.items()}


GRID = [("16x(0e + 1o)", "16x(0e + 1o)"),
        ("64x(0e + 1o + 2e)", "64x(0e + 1o + 2e)"),
        ("32x(0e + 1o + 2e + 3o)", "32x(0e + 1o + 2e + 3o)"),
        ("128x(0e + 1o + 2e + 3o)", "128x(0e + 1o)"),
        ("32x(0e + 1o + 2e + 3o + 4e)", "32x(0e + 1o)")]


def calibrate(repeat: int) -> str:
    """The pair form and the contractions, both forced, on GRID: measured and modelled ratios."""
    from fusionlang.backend import plan as planner
    from fusionlang.api import compile_analysis
    from fusionlang.frontend import analyze
    lines = ["| A | B | fwd pair / contractions (ms) | fwd+bwd pair / contractions (ms) | measured ratio (fwd+bwd) | "
             "modelled ratio (unscaled) | planner picks |", "|---|---|---|---|---|---|---|"]
    for wire, out in GRID:
        text = (f"group O3\ndiagram P {{\n    in A : {wire}\n    out B : {out}\n"
                f"    B = fuse(A, A, A) [weights=uuu, symmetric]\n}}\n")
        x = torch.randn(NODES, compile_analysis(analyze(text)).plans["P"].diagram.irreps("A").dim)
        rows, cost = {}, {}
        for form in ("symmetric-pairs", "pairwise"):
            program = compile_analysis(analyze(text), batch=NODES, form=form)
            rows[form] = (program.modules["P"](), (x,), 0, 0)
            cost[form] = program.plans["P"].vertices[0].cost
        picked = compile_analysis(analyze(text), batch=NODES).plans["P"].vertices[0].symmetric_pairs
        t = run_times(rows, repeat)
        p, c = t["symmetric-pairs"], t["pairwise"]
        lines.append(f"| `{wire}` | `{out}` | {p['forward'] * 1e3:.1f} / {c['forward'] * 1e3:.1f} | "
                     f"{p['forward_backward'] * 1e3:.1f} / {c['forward_backward'] * 1e3:.1f} | "
                     f"{p['forward_backward'] / c['forward_backward']:.2f} | "
                     f"{cost['symmetric-pairs'] / cost['pairwise']:.2f} | "
                     f"{'pair form' if picked is not None else 'contractions'} |")
    return "\n".join(lines) + f"\n\nSYMMETRIC_PAIRS_COST_SCALE = {planner.SYMMETRIC_PAIRS_COST_SCALE}; " \
        f"batch {NODES:,}, float32, {THREADS} threads, torch {torch.__version__}.\n"


def write_block(marker: str, text: str) -> None:
    doc = DOC.read_text()
    block = f"<!-- {marker}:start -->\n{text}<!-- {marker}:end -->"
    doc, n = re.subn(rf"<!-- {marker}:start -->.*?<!-- {marker}:end -->", lambda _: block, doc, flags=re.S)
    if n != 1:
        raise SystemExit(f"docs/performance.md has no {marker} markers")
    DOC.write_text(doc)
    print(f"wrote {DOC}", file=sys.stderr)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer repetitions; print, do not write docs")
    parser.add_argument("--calibrate", action="store_true", help="the pair form against the contractions")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    repeat = 3 if args.quick else 11
    if args.calibrate:
        text = calibrate(repeat)
        print(text)
        if not args.quick:
            write_block("symmetric-pairs", text)
        return
    rows = build()
    agree = agreement(rows)
    ours = {name: row for name, row in rows.items() if name != "mace-torch"}
    measured = run_times(ours, repeat)
    base = {name: measured["symmetric"] for name in ours}
    if "mace-torch" in rows:
        pair = run_times({"symmetric": rows["symmetric"], "mace-torch": rows["mace-torch"]}, repeat)
        measured["mace-torch"], base["mace-torch"] = pair["mace-torch"], pair["symmetric"]
    lines = ["| implementation | weights per channel (correlation 3) | forward (ms) | forward + backward (ms) | "
             "fwd+bwd / symmetric | saved for backward (MB) |", "|---|---|---|---|---|---|"]
    for name, (module, inputs, total, third) in rows.items():
        t = measured[name]
        weights = f"{total}" + (f" ({third})" if third != total else "")
        lines.append(f"| {name} | {weights} | {t['forward'] * 1e3:.0f} | {t['forward_backward'] * 1e3:.0f} | "
                     f"{t['forward_backward'] / base[name]['forward_backward']:.2f} | "
                     f"{saved_for_backward(module, inputs) / 1e6:.0f} |")
    if SymmetricContraction is None:
        lines.append("| mace-torch | not importable here | - | - | - | - |")
    lines.append("")
    if "mace-torch" in rows:
        m, b, first = measured["mace-torch"], base["mace-torch"], measured["symmetric"]
        lines.append(f"mace-torch's round: the symmetric vertex took {b['forward'] * 1e3:.0f} ms forward and "
                     f"{b['forward_backward'] * 1e3:.0f} ms forward + backward there (against "
                     f"{first['forward'] * 1e3:.0f} and {first['forward_backward'] * 1e3:.0f} ms in the first "
                     f"round), so mace-torch / symmetric is {m['forward'] / b['forward']:.1f}x forward and "
                     f"{m['forward_backward'] / b['forward_backward']:.1f}x with backward within its round, "
                     f"{m['forward'] / first['forward']:.0f}x and {m['forward_backward'] / first['forward_backward']:.0f}x "
                     "against the first round's times.")
        lines.append("")
    lines.append(f"Symmetric vertex against the unreduced one with w = U c: largest difference "
                 f"{agree:.1e} of the output's largest entry (float32). torch {torch.__version__}, "
                 f"{THREADS} threads, V = {NODES:,}.")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.quick:
        return
    if SymmetricContraction is None:   # the table in the docs has mace-torch's row: keep it
        print("mace-torch is not importable here, so docs/performance.md was not rewritten", file=sys.stderr)
        return
    write_block("product-basis", text)


if __name__ == "__main__":
    main()
