"""Issue 10, item 11: every syntax error's caret sits under the offending token, marked «like this» in
each broken input below (`in x : 1x` used to be reported on the following statement's line)."""
from __future__ import annotations

import pytest

from fusionlang import analyze

HEAD = "group O3\ndiagram D {\n    in a : 0e\n    in b : 1o\n    out y : 1o\n"
CASES = {
    "multiplicity_without_irrep": HEAD + "    in x : «1x»\n    y = fuse(a, b)\n}\n",
    "multiplicity_without_irrep_at_eof": "group O3\nlet A = «16x»",
    "multiplicity_then_comment": HEAD + "    in x : «4x»   # four channels of what?\n    y = fuse(a, b)\n}\n",
    "plus_at_end_of_line": HEAD + "    in x : 0e «+»\n    y = fuse(a, b)\n}\n",
    "colon_at_end_of_line": HEAD + "    in x «:»\n    y = fuse(a, b)\n}\n",
    "equals_at_end_of_line": HEAD + "    y «=»\n}\n",
    "comma_at_end_of_line": HEAD + "    y = fuse(a«,»\n}\n",
    "keyword_alone": HEAD + "    «wire»\n    y = fuse(a, b)\n}\n",
    "unclosed_call": HEAD + "    y = fuse«(»a, b\n}\n",
    "unclosed_options": HEAD + "    y = fuse(a, b) «[»weights=uvw\n}\n",
    "missing_colon": HEAD + "    in x «0e»\n    y = fuse(a, b)\n}\n",
    "missing_comma": HEAD + "    y = fuse(a «b»)\n}\n",
    "empty_option_value": HEAD + "    y = fuse(a, b) [weights=«]»\n}\n",
    "semicolon": HEAD + "    y = fuse(a, b)«;»\n}\n",
    "stray_character": HEAD + "    y = fuse(a, b) «@»\n}\n",
    "keyword_as_wire": HEAD + "    in «out» : 0e\n    y = fuse(a, b)\n}\n",
    "keyword_as_diagram": "group O3\ndiagram «split» {\n}\n",
    "brace_instead_of_paren": HEAD + "    y = fuse«{»a, b)\n}\n",
    "assignment_without_call": HEAD + "    y = «a»\n}\n",
    "two_arrows": HEAD + "    y = fuse(a, b) «=» fuse(a, b)\n}\n",
    "unexpected_close": HEAD + "    y = fuse(a, b)«)»\n}\n",
    "label_with_dot": HEAD + "    in x : 1«.»5\n    y = fuse(a, b)\n}\n",
    "statement_outside_diagram": "group O3\n«in» a : 0e\n",
    "missing_group": "«diagram» D {\n}\n",
    "diagram_without_brace": "group O3\ndiagram D «in» a : 0e\n",
    "multiline_paren_then_error": "group O3\nlet A = (0e +\n         1o «2e»)\n",
    "plus_before_close": "group O3\nlet A = (0e «+»\n)\n",
    "tuple_unclosed": HEAD + "    (c, d «=» split(b)\n}\n",
    "tuple_unclosed_line": HEAD + "    «(»c, d\n}\n",
    "call_unclosed_next_statement": HEAD + "    y = fuse«(»a, b\n    y = fuse(a, b)\n}\n",
    "statement_cannot_start_with_fuse": HEAD + "    «fuse»(a, b)\n}\n",
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_caret_under_offending_token(name):
    marked = CASES[name]
    start = marked.index("«")
    end = marked.index("»") - 1
    text = marked.replace("«", "").replace("»", "")
    result = analyze(text, "broken.fus")
    assert result.program is None, f"{name} should not parse"
    d = result.diagnostics[0]
    assert d.code in ("F001", "F002", "F003"), d.render(text)
    assert (d.span.start, d.span.end) == (start, end), d.render(text)
    # The excerpt shows the caret under those characters.
    shown = d.render(text).splitlines()
    caret = next(line for line in shown if line.strip().startswith("|") and "^" in line)
    source_line = text.split("\n")[d.span.line - 1]
    column = caret.index("^") - caret.index("|") - 2
    assert source_line[column:column + (end - start)] == text[start:end]


def test_span_lines_agree_with_offsets():
    """Every span's (line, column) names the same character as its offset."""
    for name, marked in CASES.items():
        text = marked.replace("«", "").replace("»", "")
        for d in analyze(text).diagnostics:
            if d.span is None:
                continue
            line_start = sum(len(line) + 1 for line in text.split("\n")[:d.span.line - 1])
            assert line_start + d.span.column - 1 == d.span.start, (name, d)


def test_line_numbers_cost_one_pass_however_many_comments(monkeypatch):
    """Issue 10, item 13: offsets become line/column by bisection over the line starts, computed once
    per parse, not by counting newlines from the start for every comment (quadratic: 100k comment
    lines took two minutes).  The work is counted: characters scanned for newlines."""
    from fusionlang.frontend import syntax
    scanned = []
    real = syntax._line_starts
    monkeypatch.setattr(syntax, "_line_starts", lambda text: scanned.append(len(text)) or real(text))
    for n in (100, 4000):
        scanned.clear()
        text = "group O3\n" + "# a comment line\n" * n + "let A = 0e\n"
        program = syntax.parse(text)
        assert len(program.comments) == n and program.comments[-1].span.line == n + 1
        assert sum(scanned) <= 2 * len(text)
