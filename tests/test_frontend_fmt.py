"""fmt: idempotent, meaning-preserving (parse(fmt(x)) == parse(x), spans ignored), comments kept."""
from __future__ import annotations

import contextlib
import io
import re
from collections import Counter

import pytest
from hypothesis import HealthCheck, assume, given, settings

from fusionlang import cli
from fusionlang.frontend.fmt import format_source
from fusionlang.frontend.syntax import ParseFailed, parse

from frontend_corpus import example_sources
from test_frontend_fuzz import PROGRAMS

N_GENERATED = 400


def comment_texts(text: str) -> Counter:
    return Counter(c.text.rstrip() for c in parse(text).comments)


def assert_fmt_properties(text: str) -> None:
    formatted = format_source(text)
    assert parse(formatted) == parse(text), f"meaning changed:\n{text}\n---\n{formatted}"
    assert format_source(formatted) == formatted, f"not idempotent:\n{formatted}\n---\n{format_source(formatted)}"
    assert comment_texts(formatted) == comment_texts(text), f"comments changed:\n{text}\n---\n{formatted}"
    assert formatted.endswith("\n") and not formatted.endswith("\n\n")
    assert all(line == line.rstrip() for line in formatted.split("\n"))


@pytest.mark.parametrize("name,text", example_sources(), ids=[n for n, _ in example_sources()])
def test_fmt_examples(name, text):
    assert_fmt_properties(text)


@settings(max_examples=N_GENERATED, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
@given(PROGRAMS)
def test_fmt_generated(text):
    try:
        parse(text)
    except ParseFailed:
        assume(False)
    assert_fmt_properties(text)


MESSY = """# header comment
group   O3   # the group

let H=16x(0e+1o)   # features
diagram  A{  # open
in x:H
  in y : sh(2)


    # about the output
    out m : H
m=fuse( x ,y )[ weights = uvu ]   # trailing
}   # after the brace
# the end
"""


def test_fmt_messy_exact():
    assert format_source(MESSY) == """# header comment
group O3  # the group

let H = 16x(0e + 1o)  # features

diagram A {  # open
    in x : H
    in y : sh(2)

    # about the output
    out m : H
    m = fuse(x, y) [weights=uvu]  # trailing
}  # after the brace
# the end
"""
    assert_fmt_properties(MESSY)


@pytest.mark.parametrize("text", [
    "group O3 # only\n",
    "group O3\ndiagram A { }\n",
    "group O3\ndiagram A { # c1\n # c2\n}\n",
    "group O3\ndiagram A {\n    in x : 0e # a\n    # b\n} # c\n# d\n",
    "group O3\nlet A = 0e # one\n# two\nlet B = A # three\n",
    "group SU2 convention condon_shortley diagram T { wire a : 1/2 wire b : 1/2 wire c : 1 "
    "c = fuse(a, b) (a, b) = split(c) }",
    "group O3\ndiagram A {\n    wire t : 0e = fuse(x, y) [external, weights=uvw]\n}\n",
    "# c\n\n\n# d\ngroup O3\n\n\n\n# e\n",
    "group O3\r\ndiagram A {\r\n    in x : 0e # crlf\r\n}\r\n",
    "group O3\nlet A = (((0e)))\nlet B = 2x(1o + (3x2e))\n",
])
def test_fmt_edge_cases(text):
    assert_fmt_properties(text)


def run_fmt(*args) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["fmt", *args])
    return code, out.getvalue(), err.getvalue()


def test_fmt_check_exit_codes(tmp_path):
    clean = tmp_path / "clean.fus"
    clean.write_text(format_source(MESSY))
    messy = tmp_path / "messy.fus"
    messy.write_text(MESSY)
    broken = tmp_path / "broken.fus"
    broken.write_text("group O3\ndiagram A {\n")
    assert run_fmt("--check", str(clean))[0] == 0
    code, _, err = run_fmt("--check", str(messy))
    assert code == 1 and "would reformat" in err
    assert messy.read_text() == MESSY                       # --check changes nothing
    code, _, err = run_fmt("--check", str(broken))
    assert code == 1 and "error[F002]" in err
    assert run_fmt("--check", str(tmp_path / "missing.fus"))[0] == 2
    assert run_fmt("--check", str(tmp_path))[0] == 2
    code, out, _ = run_fmt("--stdout", str(messy))
    assert code == 0 and out == format_source(MESSY)
    assert run_fmt(str(messy))[0] == 0 and messy.read_text() == format_source(MESSY)
    assert run_fmt("--check", str(messy))[0] == 0


def test_fmt_never_drops_a_comment_character():
    text = "group O3  #   spaced   out   \ndiagram A {\n    in x : 0e   #tab\there\n}\n"
    formatted = format_source(text)
    assert "#   spaced   out" in formatted and "#tab\there" in formatted
    assert re.search(r"out\n", formatted)
