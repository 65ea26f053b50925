"""The main job (`fusionc build DIR`): compile, render and verify every .fus file, then a summary table."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from .api import compile_analysis
from .exact import evaluate_exact
from .files import write_atomic
from .frontend import analyze_file
from .render import find_dot, render
from .verify import TOLERANCE, equivariance_error


def output_stems(files: list[Path]) -> dict[Path, str]:
    """The name each source's outputs take: its whole file name without `.fus`, so that net.v1.fus
    and net.v2.fus give net.v1.py and net.v2.py (Path.with_suffix would give net.py twice).  Names
    that differ only in case (one file on case-insensitive disks) get `-2`, `-3`, ... in sorted order."""
    stems, seen = {}, {}
    for path in sorted(files):
        stem = path.name[: -len(".fus")] if path.name.endswith(".fus") else path.name
        key = stem.casefold()
        seen[key] = seen.get(key, 0) + 1
        stems[path] = stem if seen[key] == 1 else f"{stem}-{seen[key]}"
    return stems


def build_all(src: Path, out: Path, limits=None) -> int:
    files = sorted(src.glob("*.fus"))
    if not files:
        print(f"no .fus files in {src}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    rows, failures = [], 0
    formats = ["svg", "dot"] if find_dot() else ["dot"]
    if "svg" not in formats:
        print("note: graphviz `dot` not found: writing .dot only (apt-get install graphviz)", file=sys.stderr)
    start = time.perf_counter()
    stems = output_stems(files)
    for k, path in enumerate(files, 1):
        print(f"[{k}/{len(files)}] {path.name}", file=sys.stderr, flush=True)
        analysis = analyze_file(path, limits)
        if not analysis.ok:
            for d in analysis.diagnostics:
                print(d.render(analysis.source), file=sys.stderr)
            rows.append((path.name, "-", "-", "-", "-", "-", "CHECK FAILED", ""))
            failures += 1
            continue
        program = compile_analysis(analysis)
        stem = stems[path]
        written = []
        if program.modules:
            write_atomic(out / f"{stem}.py", program.python)
            written.append(f"{stem}.py")
        for fmt in formats:
            render(analysis.diagrams, out / f"{stem}.{fmt}")
            written.append(f"{stem}.{fmt}")
        for d in analysis.diagrams:
            if d.is_closed:
                value = evaluate_exact(d)
                result = f"value {value} = {float(value):.6g}"
                rows.append((path.name, d.name, "closed", "-", "-", "-", result, ", ".join(written)))
                continue
            plan = program.plans[d.name]
            err = equivariance_error(program.modules[d.name](), d, plan)
            ok = err <= TOLERANCE
            failures += not ok
            rows.append((path.name, d.name, "open", str(plan.n_paths), str(plan.weight_numel),
                         f"{plan.flops:,}", f"{err:.1e} {'ok' if ok else 'FAILED'}", ", ".join(written)))
    print_table(rows)
    print(f"\n{len(files)} files, {len(rows)} diagrams, {failures} failures, "
          f"{time.perf_counter() - start:.1f} s; outputs in {out}/")
    return 1 if failures else 0


def print_table(rows) -> None:
    head = ("file", "diagram", "kind", "paths", "weights", "FLOPs (batch or V 1024)", "equivariance / value", "outputs")
    widths = [max(len(str(r[i])) for r in [head] + rows) for i in range(len(head))]
    line = "  ".join(h.ljust(w) for h, w in zip(head, widths))
    print(line)
    print("-" * len(line))
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
