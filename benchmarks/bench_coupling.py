"""Cold and warm load times of the coupling tables (fusionlang.symmetry.coupling), each in a fresh process.

    python benchmarks/bench_coupling.py               # measure, print, update docs/coupling.md
    python benchmarks/bench_coupling.py --no-write    # measure and print only
    python benchmarks/bench_coupling.py --repeat 7

"cold": an empty cache directory, so the process computes every table
(O3/SO3 up to l = 8, SU2 up to j = 15/2) and writes it.  "warm": a later
process that finds the files and only reads and verifies them.  Times are for
``coupling.warm_cache()`` alone (module import excluded, reported apart) and
are the median over the repeats.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "coupling.md")
START, END = "<!-- timings:start -->", "<!-- timings:end -->"

CHILD = r"""
import json, os, time
t0 = time.perf_counter()
from fusionlang.symmetry import coupling
from fusionlang.symmetry.groups import Irrep
t1 = time.perf_counter()
paths = coupling.warm_cache()
t2 = time.perf_counter()
coupling.cg("SU2", Irrep(15), Irrep(14), Irrep(3))
coupling.cg("O3", Irrep(16, 1), Irrep(10, -1), Irrep(8, -1))
t3 = time.perf_counter()
for _ in range(1000):
    coupling.cg("O3", Irrep(4, 1), Irrep(2, -1), Irrep(4, -1))
t4 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "tables": t2 - t1, "first_cg": (t3 - t2) / 2, "hit_cg": (t4 - t3) / 1000,
                  "bytes": {k: os.path.getsize(p) for k, p in paths.items() if os.path.exists(p)}}))
"""


def run_child(cache_dir: str) -> dict:
    env = dict(os.environ, FUSIONLANG_CACHE_DIR=cache_dir,
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def ms(x: float) -> str:
    return f"{x * 1e3:.1f} ms" if x >= 1e-3 else f"{x * 1e6:.1f} µs"


def measure(repeat: int) -> dict:
    cold, warm = [], []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as d:
            cold.append(run_child(d))
            warm.append(run_child(d))
    return {"cold": cold, "warm": warm}


def table(res: dict, repeat: int) -> str:
    def med(rows, key):
        return statistics.median(r[key] for r in rows)
    sizes = res["cold"][0]["bytes"]
    lines = [
        "| case | `warm_cache()` (all tables) | first `cg` after load | cached `cg` call | `import fusionlang.symmetry.coupling` |",
        "|---|---|---|---|---|",
    ]
    for name, label in (("cold", "cold (empty cache dir: compute + write)"), ("warm", "warm (read + sha256 check)")):
        rows = res[name]
        lines.append(f"| {label} | {ms(med(rows, 'tables'))} | {ms(med(rows, 'first_cg'))} | "
                     f"{ms(med(rows, 'hit_cg'))} | {ms(med(rows, 'import'))} |")
    lines.append("")
    lines.append("Table files: " + ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in sorted(sizes.items()))
                 + f". Median of {repeat} fresh processes each; "
                 f"{platform.python_implementation()} {platform.python_version()}, {platform.machine()}, "
                 f"{os.cpu_count()} CPUs.")
    lines.append("")
    lines.append("Reproduce: `python benchmarks/bench_coupling.py` (add `--no-write` to leave this file alone).")
    return "\n".join(lines)


def write_doc(text: str) -> None:
    with open(DOC, encoding="utf-8") as fh:
        doc = fh.read()
    pat = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
    if not pat.search(doc):
        raise SystemExit(f"{DOC} has no {START} ... {END} section")
    doc = pat.sub(lambda _: f"{START}\n{text}\n{END}", doc)
    with open(DOC, "w", encoding="utf-8") as fh:
        fh.write(doc)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-write", action="store_true", help="do not update docs/coupling.md")
    args = ap.parse_args(argv)
    res = measure(args.repeat)
    text = table(res, args.repeat)
    print(text)
    if not args.no_write:
        write_doc(text)
        print(f"\nwrote the table into {os.path.relpath(DOC, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
