"""Generated code of every example, written out and compared across emitter versions (not a test).

    python benchmarks/generated_code.py write DIR          # one DIR/<source>.py per program
    python benchmarks/generated_code.py compare OLD NEW    # same numbers? and the size of the code

The programs are examples/diagrams/*.fus and the valid ```-fenced programs of LANGUAGE.md.
`compare` runs the modules of OLD and NEW on the same random float64 inputs, with the same
parameters (torch.manual_seed before each construction; parameters are created in vertex
order) and prints, per program, the largest |old - new| over every output (0.0 when the two
emitters compute the same numbers), the longest line, the number of locals that forward
assigns more than once (argument rebinding included) and the size in bytes.  To compare
against an older emitter, write OLD from a checkout of it:

    git worktree add /tmp/old <commit>
    PYTHONPATH=/tmp/old python benchmarks/generated_code.py write /tmp/gen-old
    PYTHONPATH=$PWD python benchmarks/generated_code.py write /tmp/gen-new
    PYTHONPATH=$PWD python benchmarks/generated_code.py compare /tmp/gen-old /tmp/gen-new
"""
from __future__ import annotations

import argparse
import ast
import importlib.util
import re
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
LANGUAGE = [ROOT.parent / "shared" / "LANGUAGE.md", ROOT / "docs" / "language.md"]


def programs() -> dict[str, str]:
    """source id -> .fus text."""
    out = {p.stem: p.read_text() for p in sorted((ROOT / "examples" / "diagrams").glob("*.fus"))}
    language = next(p for p in LANGUAGE if p.exists())
    blocks = re.findall(r"```\n(.*?)```", language.read_text(), re.S)
    blocks = [b for b in blocks if b.lstrip().startswith(("group", "#")) and "# error here" not in b]
    out.update({f"language_{k}": text for k, text in enumerate(blocks)})
    return out


def write(folder: Path) -> None:
    from fusionlang import compile_source
    folder.mkdir(parents=True, exist_ok=True)
    for sid, text in programs().items():
        program = compile_source(text, file=f"{sid}.fus", backend="torch")
        (folder / f"{sid}.py").write_text(program.python)


def _load(path: Path, tag: str):
    spec = importlib.util.spec_from_file_location(f"_generated_{tag}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reassigned_locals(source: str) -> int:
    """Names bound more than once in a forward (its parameters count as bound once)."""
    count = 0
    for fn in ast.walk(ast.parse(source)):
        if not (isinstance(fn, ast.FunctionDef) and fn.name == "forward"):
            continue
        bound = [a.arg for a in fn.args.args + fn.args.kwonlyargs]
        bound += [t.id for node in ast.walk(fn) if isinstance(node, (ast.Assign, ast.AugAssign))
                  for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
                  for t in ast.walk(target) if isinstance(t, ast.Name)]
        count += len(bound) - len(set(bound))
    return count


def _outputs(cls, args, kwargs):
    torch.manual_seed(0)
    module = cls().double()
    with torch.no_grad():
        out = module(*args, **kwargs)
    return out if isinstance(out, tuple) else (out,)


def compare(old: Path, new: Path) -> int:
    from fusionlang import compile_source
    from fusionlang.verify import external_weights, graph_arguments, random_inputs
    rows, worst = [], 0.0
    for sid, text in programs().items():
        a, b = old / f"{sid}.py", new / f"{sid}.py"
        program = compile_source(text, backend="torch")
        mods = _load(a, "old"), _load(b, "new")
        diff = 0.0
        for name, plan in program.plans.items():
            gen = torch.Generator().manual_seed(7)
            d = plan.diagram
            args = [*random_inputs(d, 3, gen), *external_weights(plan, 3, gen)]
            graph_args, kwargs = graph_arguments(d, 3, gen)
            outs = [_outputs(getattr(m, program.modules[name].__name__), args + list(graph_args), kwargs)
                    for m in mods]
            diff = max([diff] + [float((x - y).abs().max()) for x, y in zip(*outs)])
        worst = max(worst, diff)
        sa, sb = a.read_text(), b.read_text()
        rows.append((sid, diff, max(map(len, sa.splitlines())), max(map(len, sb.splitlines())),
                     reassigned_locals(sa), reassigned_locals(sb), len(sa.encode()), len(sb.encode())))
    print(f"{'program':<32} {'max|diff|':>9} {'longest line':>14} {'reassigned':>11} {'bytes':>17}")
    for sid, diff, la, lb, ra, rb, ba, bb in rows:
        print(f"{sid:<32} {diff:>9.1e} {la:>6} -> {lb:<5} {ra:>4} -> {rb:<4} {ba:>7} -> {bb:<7}")
    tot = [sum(r[k] for r in rows) for k in range(2, 8)]
    print(f"{'all (max / max / sum / sum)':<32} {worst:>9.1e} {max(r[2] for r in rows):>6} -> "
          f"{max(r[3] for r in rows):<5} {tot[2]:>4} -> {tot[3]:<4} {tot[4]:>7} -> {tot[5]:<7}")
    return 0 if worst == 0.0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("write").add_argument("folder", type=Path)
    cmp = sub.add_parser("compare")
    cmp.add_argument("old", type=Path)
    cmp.add_argument("new", type=Path)
    args = parser.parse_args()
    if args.command == "write":
        write(args.folder)
        return 0
    return compare(args.old, args.new)


if __name__ == "__main__":
    sys.exit(main())
