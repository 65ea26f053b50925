"""Issue 10, item 12: where the default weight rule picks `uvw` but the multiplicities also fit `none`,
a warning says which mode was chosen, how many weights that makes, and how to write either."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from fusionlang import analyze

ROOT = Path(__file__).resolve().parents[1]
SQUARE = """group O3
diagram Square {
    in  x : 4x(0e + 1o)
    out s : 16x0e + 16x1e
    s = fuse(x, x)%s
}
"""


def codes(text):
    return [d.code for d in analyze(text).diagnostics]


def test_cormorant_square_warns_with_the_mode_the_count_and_both_spellings():
    result = analyze(SQUARE % "")
    assert result.ok
    (d,) = result.diagnostics
    assert d.code == "F063" and d.severity == "warning"
    assert "`weights=uvw`" in d.message and "768 learned weights" in d.message and "`weights=none`" in d.message
    assert "[weights=uvw]" in d.help and "[weights=none]" in d.help
    assert (d.span.line, d.span.column) == (5, 9)


@pytest.mark.parametrize("mode", ["uvw", "none"])
def test_an_explicit_mode_is_not_warned(mode):
    assert codes(SQUARE % f" [weights={mode}]") == []


def test_no_warning_where_only_one_mode_fits():
    # Multiplicity 1 everywhere: the default is `none` itself.
    assert codes("group O3\ndiagram D {\n in a : 0e + 1o\n out b : 0e\n b = fuse(a, a)\n}\n") == []
    # Output multiplicities that are not the product: only `uvw` fits.
    assert codes("group O3\ndiagram D {\n in a : 4x0e\n out b : 3x0e\n b = fuse(a, a)\n}\n") == []


def test_examples_say_their_weight_mode():
    """Every fuse in examples/diagrams says its mode: none relies on the default rule."""
    for path in sorted((ROOT / "examples" / "diagrams").glob("*.fus")):
        code = re.sub(r"#[^\n]*", "", path.read_text())
        for call in re.findall(r"=\s*fuse\([^)]*\)[^\n]*", code):
            # `paths=separate` says it too: it has no weights (LANGUAGE.md, per-path output)
            assert "weights=" in call or "paths=separate" in call, \
                f"{path.name}: `{call.strip()}` relies on the default weight mode"
