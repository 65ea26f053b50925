"""Fuzzing the whole pipeline (check, fmt, plan, compile) under time and memory caps.

CI runs FUSIONLANG_FUZZ_CASES cases (default 10,000) on every core; `make fuzz` runs
100,000.  The cases and the failure definition are in tests/fuzz_pipeline.py.
"""
from __future__ import annotations

import os

import fuzz_pipeline

CASES = int(os.environ.get("FUSIONLANG_FUZZ_CASES", "10000"))


def test_pipeline_fuzz(tmp_path):
    result = fuzz_pipeline.run_fuzz(CASES, max(2, min(os.cpu_count() or 2, 4)), tmp_path)
    assert result["cases"] == CASES, fuzz_pipeline.describe(result)
    assert not result["failures"], fuzz_pipeline.describe(result)


def test_hostile_cases_reach_every_stage():
    """The corpus is not vacuous: hostile programs include ones the checker accepts and ones it rejects."""
    from fusionlang.frontend import analyze_bytes
    verdicts = {analyze_bytes(c, "h.fus").ok for c in fuzz_pipeline.hostile_cases(200)}
    assert verdicts == {True, False}


def test_failures_are_caught(tmp_path, monkeypatch):
    """The harness itself reports a crash: a program that compiles, run through a broken compile stage."""
    case = b"group O3\ndiagram D {\n    in x : 2x0e\n    out y : 2x0e\n    y = linear(x)\n}\n"
    assert fuzz_pipeline.run_case(case, 1, tmp_path) is None
    import fusionlang.api
    monkeypatch.setattr(fusionlang.api, "compile_analysis", lambda analysis: 1 / 0)
    try:
        fuzz_pipeline.run_case(case, 1, tmp_path)
    except ZeroDivisionError:
        pass
    else:
        raise AssertionError("a broken compile stage went unnoticed")
