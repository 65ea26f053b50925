"""The cost of the generated forward's shape checks on small eager calls (not a test).

    python benchmarks/bench_shape_checks.py [--repeat 7] [--calls 2000]

Compiles each example, then builds the same module twice: as generated, and with its
`_check_argument(...)` lines removed, and times both (batch 1 and 32, float32, CPU, no grad,
best of alternating runs).  The difference of two ~100 us forwards drowns in machine noise, so
the checks are also timed alone (the same statements on the same arguments): that column,
as a share of the unchecked forward, is what they cost.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fusionlang.api import compile_file  # noqa: E402
from fusionlang.backend.emit_torch import forward_argument_names  # noqa: E402

EXAMPLES = ["edge_message.fus", "radial_external.fus", "three_body.fus"]


def build(source: str, name: str):
    namespace: dict = {"__name__": "bench_shape_checks_module"}
    exec(compile(source, "<bench>", "exec"), namespace)
    return namespace[name]


def time_calls(module, args, calls: int) -> float:
    with torch.no_grad():
        start = time.perf_counter()
        for _ in range(calls):
            module(*args)
        return (time.perf_counter() - start) / calls


def interleaved_min(a, b, args, calls: int, repeat: int) -> tuple[float, float]:
    """Best time per call of each, runs alternating so that machine noise hits both alike."""
    time_calls(a, args, 50)
    time_calls(b, args, 50)
    ta, tb = [], []
    for _ in range(repeat):
        ta.append(time_calls(a, args, calls))
        tb.append(time_calls(b, args, calls))
    return min(ta), min(tb)


def checks_alone(source: str, args, calls: int, repeat: int) -> float:
    """The check statements of a forward, timed on their own (the part of forward they add)."""
    lines = [line.strip() for line in source.split("\n") if line.lstrip().startswith("_check_argument(")]
    namespace: dict = {}
    exec(compile(source, "<bench>", "exec"), namespace)
    names = [line.split(", ")[2] for line in lines]
    namespace.update(zip(names, args))
    namespace["batch"] = args[0].shape[:-1]
    code = compile("\n".join(lines), "<checks>", "exec")
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(calls):
            exec(code, namespace)
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--calls", type=int, default=2000)
    opts = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread; best of {opts.repeat} alternating runs of {opts.calls} calls")
    print(f"{'example':<22} {'args':>4} {'batch':>5} {'forward us':>10} {'unchecked us':>12} "
          f"{'checks alone us':>15} {'share':>6}")
    for file in EXAMPLES:
        program = compile_file(ROOT / "examples" / "diagrams" / file)
        unchecked_source = "\n".join(line for line in program.python.split("\n")
                                     if not line.lstrip().startswith("_check_argument("))
        for name, cls in program.modules.items():
            plan = program.plans[name]
            n_args = len(forward_argument_names(plan))
            dims = [plan.diagram.irreps(w).dim for w in plan.diagram.inputs] + \
                [v.weight_numel for v in plan.vertices if v.external and v.weight_numel]
            assert len(dims) == n_args
            torch.manual_seed(0)
            checked = cls()
            unchecked = build(unchecked_source, cls.__name__)()
            unchecked.load_state_dict(checked.state_dict())
            for batch in (1, 32):
                args = [torch.randn(batch, d) for d in dims]
                a, b = interleaved_min(checked, unchecked, args, opts.calls, opts.repeat)
                alone = checks_alone(program.python, args, opts.calls * 10, opts.repeat)
                print(f"{file:<22} {n_args:>4} {batch:>5} {a * 1e6:>10.1f} {b * 1e6:>12.1f} "
                      f"{alone * 1e6:>15.2f} {alone / b:>6.1%}")


if __name__ == "__main__":
    main()
