"""Hostile input through the CLI: a clear located error, exit 1 (bad content) or
2 (missing file / directory), no traceback, and a quick finish.  Limits: docs/limits.md."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TIME_LIMIT_S = 10.0       # generous for slow CI; each case takes well under a second here


def run_check(path: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "fusionlang", "check", str(path), *extra], capture_output=True,
                          text=True, cwd=path.parent if path.parent.exists() else ROOT, env=env,
                          timeout=60)
    proc.elapsed = time.perf_counter() - start
    return proc


CONTENT_CASES = {
    # name: (bytes, expected code, expected line or None for a file-level error)
    "empty": (b"", "F002", 1),
    "only_comments": (b"# a comment\n# another\n", "F002", 1),
    "binary": (bytes(range(256)) * 4, "F008", 1),
    "nul_byte": (b"group O3\n\x00\n", "F008", 2),
    "latin1": ("group O3\n# caf\u00e9\n".encode("latin-1"), "F008", 2),
    "five_megabytes": (b"group O3\n" + b"# " + b"x" * 97 + b"\n" * 1 + (b"# " + b"y" * 97 + b"\n") * 52_000,
                       "F005", None),
    "nested_parens": (b"group O3\nlet A = " + b"(" * 10_000 + b"0e" + b")" * 10_000 + b"\n", "F006", 2),
    "long_name": (b"group O3\nlet " + b"a" * 10_000 + b" = 0e\n", "F007", 2),
    "huge_multiplicity": (b"group O3\nlet A = 1000000000000x0e\n", "F021", 2),
    "huge_l": (b"group O3\nlet A = 1000000e\n", "F020", 2),
    "huge_j_su2": (b"group SU2\nlet A = 2000001/2\n", "F020", 2),
    "huge_sh": (b"group O3\nlet A = sh(1000000)\n", "F023", 2),
    "huge_wire": (b"group O3\nlet A = 65536x12e\n", "F022", 2),
    "many_terms": (b"group O3\nlet A = 5000x(" + b" + ".join([b"0e"] * 1000) + b")\nlet B = A + A + A + A + A\n",
                   "F022", 3),
    "term_explosion": (b"group O3\nlet A = " + b" + ".join([b"0e"] * 4000) + b"\ndiagram D {\n    in a : A\n"
                       b"    out b : 1o\n    b = fuse(a, a, a)\n}\n", "F054", 6),
    "path_explosion": (b"group O3\nlet A = " + b" + ".join(f"{l}{p}".encode() for l in range(13) for p in "eo")
                       + b"\ndiagram D {\n    in a : A\n    out b : A\n    b = fuse(a, a, a)\n}\n", "F054", 6),
    "long_line": (b"group O3\nlet A = " + b" + ".join([b"0e"] * 2_000) + b" + 1q\n", "F020", 2),
    "control_chars": (b"group O3\n\x1b[31m\n", "F001", 2),
}


@pytest.mark.parametrize("name", sorted(CONTENT_CASES))
def test_bad_content(name, tmp_path):
    data, code, line = CONTENT_CASES[name]
    path = tmp_path / f"{name}.fus"
    path.write_bytes(data)
    proc = run_check(path)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    assert proc.elapsed < TIME_LIMIT_S, proc.elapsed
    assert f"error[{code}]" in proc.stderr, proc.stderr[-2000:]
    where = f"{path.name}:{line}:" if line else f"{path.name}\n"
    assert where in proc.stderr, proc.stderr[-2000:]
    assert len(proc.stderr) < 20_000        # long lines are clipped, not echoed whole
    # The JSON form agrees and stays valid.
    proc = run_check(path, "--format", "json")
    assert proc.returncode == 1
    records = [json.loads(x) for x in proc.stdout.splitlines()]
    assert any(r["code"] == code for r in records)


def test_five_megabytes_reports_real_size(tmp_path):
    path = tmp_path / "big.fus"
    path.write_bytes(CONTENT_CASES["five_megabytes"][0])
    proc = run_check(path)
    assert f"{path.stat().st_size:,} bytes" in proc.stderr


def test_missing_file(tmp_path):
    proc = run_check(tmp_path / "nope.fus")
    assert proc.returncode == 2
    assert "no such file" in proc.stderr and "Traceback" not in proc.stderr


def test_directory(tmp_path):
    proc = run_check(tmp_path)
    assert proc.returncode == 2
    assert "is a directory" in proc.stderr and "Traceback" not in proc.stderr


def test_clean_file_exit_zero(tmp_path):
    path = tmp_path / "ok.fus"
    path.write_text("group SU2\ndiagram Theta {\n    wire a : 1/2\n    wire b : 1/2\n    wire c : 1\n"
                    "    c = fuse(a, b)\n    (a, b) = split(c)\n}\n")
    proc = run_check(path)
    assert proc.returncode == 0, proc.stderr
    assert "ok: 1 file, 1 diagram" in proc.stderr
