"""Compile time of every example, with a cold and a warm coupling-coefficient cache.

    python benchmarks/bench_compile.py      # writes the table into docs/performance.md

Each measurement runs in a fresh process (so Python-level caches start empty);
"cold" points FUSIONLANG_CACHE_DIR at an empty folder, "warm" at the same folder
again.  The time is `compile_file` alone (parse, check, plan, generate, exec),
after imports.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.bench_tensor_product import write_section  # noqa: E402

CODE = """
import sys, time
sys.path.insert(0, {root!r})
import torch  # imported first: the generated module imports it, and that is not compile time
from fusionlang.api import compile_file
start = time.perf_counter()
compile_file({path!r})
print(time.perf_counter() - start)
"""


def compile_seconds(path: Path, cache: str) -> float:
    env = {"FUSIONLANG_CACHE_DIR": cache, "PATH": "/usr/bin:/bin", "HOME": tempfile.gettempdir()}
    res = subprocess.run([sys.executable, "-c", CODE.format(root=str(ROOT), path=str(path))],
                         capture_output=True, text=True, env=env, timeout=300)
    if res.returncode:
        raise RuntimeError(res.stderr)
    return float(res.stdout.strip().splitlines()[-1])


def main() -> None:
    rows = []
    for path in sorted((ROOT / "examples" / "diagrams").glob("*.fus")):
        print(f"{path.name} ...", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory() as cache:
            cold = compile_seconds(path, cache)
            warm = statistics.median(compile_seconds(path, cache) for _ in range(3))
        rows.append((path.name, cold, warm))
    lines = ["| example | cold cache (ms) | warm cache (ms) |", "|---|---|---|"]
    lines += [f"| {name} | {cold * 1e3:.0f} | {warm * 1e3:.0f} |" for name, cold, warm in rows]
    text = "\n".join(lines) + "\n\nReproduce with `python benchmarks/bench_compile.py`.\n"
    print(text)
    write_section("compile-time", text)


if __name__ == "__main__":
    main()
