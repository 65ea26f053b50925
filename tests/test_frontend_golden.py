"""Golden tests for diagnostics: tests/golden/NAME.fus -> NAME.expected (exact text).

Each .expected file is what `fusionc check NAME.fus` prints on stderr when run
inside tests/golden (the same renderer, called in-process), followed by a last
line `exit: N`.

To regenerate after an intended change to a message, run

    python tests/test_frontend_golden.py --update      (or FUSION_UPDATE_GOLDEN=1 pytest tests)

and review the diff with `git diff tests/golden` before committing.
"""
from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parent / "golden"
sys.path.insert(0, str(GOLDEN.parents[1]))

from fusionlang.cli.common import EXIT_ERRORS, EXIT_OK, _report  # noqa: E402
from fusionlang.frontend import analyze_bytes  # noqa: E402

UPDATE = os.environ.get("FUSION_UPDATE_GOLDEN") == "1"


def render(path: Path) -> str:
    analysis = analyze_bytes(path.read_bytes(), path.name)
    buf = io.StringIO()
    errors = _report([analysis], "text", out=buf)
    return buf.getvalue() + f"exit: {EXIT_ERRORS if errors else EXIT_OK}\n"


def cases() -> list[Path]:
    return sorted(GOLDEN.glob("*.fus"))


def test_golden_cases_exist():
    assert len(cases()) >= 12
    stray = {p.stem for p in GOLDEN.glob("*.expected")} - {p.stem for p in cases()}
    assert not stray, f"expected files without a .fus: {stray}"


@pytest.mark.parametrize("path", cases(), ids=lambda p: p.stem)
def test_golden(path: Path):
    actual = render(path)
    expected_path = path.with_suffix(".expected")
    if UPDATE or not expected_path.exists():
        expected_path.write_text(actual, encoding="utf-8")
        if not UPDATE:
            pytest.fail(f"{expected_path.name} was missing and has been written: review it")
    assert actual == expected_path.read_text(encoding="utf-8")


def test_every_golden_case_has_a_located_error_or_warning():
    for path in cases():
        analysis = analyze_bytes(path.read_bytes(), path.name)
        assert analysis.diagnostics, path.name
        for d in analysis.diagnostics:
            assert d.message and d.code.startswith("F")


def test_several_errors_reported_in_one_run():
    path = GOLDEN / "many_errors.fus"
    analysis = analyze_bytes(path.read_bytes(), path.name)
    codes = [d.code for d in analysis.diagnostics if d.is_error]
    # duplicate let, label in the wrong group, undefined wire, undeclared target,
    # duplicate option: five independent errors in two diagrams.
    assert sorted(codes) == sorted(["F030", "F020", "F031", "F033", "F042"]), codes
    lines = [d.span.line for d in analysis.diagnostics if d.is_error]
    assert lines == sorted(lines)


if __name__ == "__main__":
    if "--update" not in sys.argv[1:]:
        sys.exit("usage: python tests/test_frontend_golden.py --update")
    for p in cases():
        p.with_suffix(".expected").write_text(render(p), encoding="utf-8")
        print(f"wrote {p.with_suffix('.expected').relative_to(GOLDEN.parents[1])}")
