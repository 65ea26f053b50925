"""Every example in LANGUAGE.md behaves as written there."""
import re
from pathlib import Path

import pytest

from fusionlang.frontend import analyze

LANGUAGE = Path(__file__).resolve().parents[2] / "shared" / "LANGUAGE.md"
DOCS_COPY = Path(__file__).resolve().parents[1] / "docs" / "language.md"


def language_blocks():
    source = LANGUAGE if LANGUAGE.exists() else DOCS_COPY
    blocks = re.findall(r"```\n(.*?)```", source.read_text(), re.S)
    return [b for b in blocks if b.lstrip().startswith(("group", "#"))]


def test_language_examples_found():
    assert len(language_blocks()) >= 4


@pytest.mark.parametrize("text", language_blocks())
def test_language_example(text):
    result = analyze(text)
    if "# error here" not in text:
        assert result.ok, [d.render(text) for d in result.diagnostics]
        # The one warning allowed: F063, a fuse that relies on the default weight rule where both
        # `uvw` and `none` fit (issue 10, item 12 names LANGUAGE.md's CG square as its example).
        assert all(d.code == "F063" for d in result.diagnostics), [d.render(text) for d in result.diagnostics]
        return
    errors = [d for d in result.diagnostics if d.is_error]
    assert len(errors) == 1, [d.render(text) for d in errors]
    marked = next(i for i, line in enumerate(text.split("\n"), 1) if "# error here" in line)
    assert errors[0].span.line == marked
    rendered = errors[0].render(text)
    assert "^" in rendered and f":{marked}:" in rendered
