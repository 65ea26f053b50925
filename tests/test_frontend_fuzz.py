"""Fuzzing the front end (reproducible: derandomized hypothesis and seeded mutations).

(a) programs generated from fusionlang/frontend/grammar/fusion.lark with hypothesis' from_lark;
(b) token- and byte-level mutations of every example (LANGUAGE.md blocks and
    examples/diagrams/*.fus).

Properties: analysis never raises; every diagnostic's span lies inside the
file (or there is none); `fusionc check` exits 0 or 1, never with an internal
error; text generated from the grammar never gets a syntax error.
"""
from __future__ import annotations

import contextlib
import io
import random
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark

from fusionlang import cli
from fusionlang.frontend import analyze, analyze_bytes
from fusionlang.frontend.syntax import KEYWORDS, parser

from frontend_corpus import example_sources, span_problems

N_GRAMMAR = 700
N_MUTATIONS_PER_EXAMPLE = 90   # x ~20 examples, half token- and half byte-level
N_CLI = 150

NAMES = ["a", "b", "c", "x", "y", "h", "t", "m", "H", "Edge", "A1", "_p", "in", "fuse", "__z", "alpah"]
LABELS = ["0e", "1o", "2e", "1e", "0o", "3o", "0", "1", "2", "1/2", "3/2", "5/2", "13e", "2/2", "1q", "7"]


def _terminal_strategies() -> dict:
    """Every terminal padded with spaces, so generated tokens do not glue together."""
    explicit = {}
    for t in parser().terminals:
        if t.pattern.type == "str":
            explicit[t.name] = st.just(f" {t.pattern.value} ")
    explicit.update(
        NAME=st.one_of(st.sampled_from(["O3", "SO3", "SU2"]), st.sampled_from(NAMES)).map(lambda s: f" {s} "),
        LABEL=st.sampled_from(LABELS).map(lambda s: f" {s}"),
        MULX=st.sampled_from(["1x", "2x", "4x", "16x", "0x"]).map(lambda s: f" {s}"),
        COMMENT=st.sampled_from(["# note", "#", "#  two  words", "# ü"]).map(lambda s: f" {s}\n"),
        WS=st.sampled_from([" ", "\n", "\n\n", "\t"]),
    )
    return explicit


PROGRAMS = from_lark(parser(), start="start", explicit=_terminal_strategies())


def assert_sane(text: str, analysis) -> None:
    problems = span_problems(text, analysis.diagnostics)
    assert not problems, problems
    for d in analysis.diagnostics:
        assert re.fullmatch(r"F\d{3}", d.code) and d.severity in ("error", "warning")
        d.render(text)            # renders without raising
        d.to_json()


@settings(max_examples=N_GRAMMAR, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
@given(PROGRAMS)
def test_grammar_generated_programs(text):
    analysis = analyze(text)
    assert_sane(text, analysis)
    # Text drawn from the grammar is syntactically valid: only limit and name
    # diagnostics (F003 keyword as name, F004 `__`) may come from the parser.
    if analysis.program is None:
        assert {d.code for d in analysis.diagnostics} <= {"F003", "F004", "F010", "F021"}, \
            [d.render(text) for d in analysis.diagnostics]


_TOKEN = re.compile(r"\s+|#[^\n]*|[0-9]+x|[0-9][0-9A-Za-z_]*(?:/[0-9]+)?|[A-Za-z_][A-Za-z0-9_]*|.", re.S)


def mutate_tokens(text: str, rng: random.Random) -> str:
    tokens = _TOKEN.findall(text)
    for _ in range(rng.randint(1, 3)):
        if not tokens:
            break
        i = rng.randrange(len(tokens))
        op = rng.choice(["delete", "duplicate", "swap", "replace", "keyword"])
        if op == "delete":
            del tokens[i]
        elif op == "duplicate":
            tokens.insert(i, tokens[i])
        elif op == "swap" and i + 1 < len(tokens):
            tokens[i], tokens[i + 1] = tokens[i + 1], tokens[i]
        elif op == "replace":
            tokens[i] = rng.choice(tokens)
        else:
            tokens[i] = rng.choice(KEYWORDS + ("(", ")", "{", "}", "[", "]", "=", ",", ":", "+", "16x", "1/2", "0e"))
    return "".join(tokens)


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(buf) + 1)
        op = rng.choice(["delete", "insert", "flip"])
        if op == "delete" and i < len(buf):
            del buf[i]
        elif op == "insert":
            buf.insert(i, rng.choice([rng.randrange(256), ord("("), ord("\n"), ord("#"), 0xC3, 0x80]))
        elif i < len(buf):
            buf[i] ^= 1 << rng.randrange(8)
    return bytes(buf)


def mutants():
    """Seeded, so every run checks the same cases."""
    out = []
    for name, text in example_sources():
        rng = random.Random(f"fusionlang:{name}")
        data = text.encode("utf-8")
        for k in range(N_MUTATIONS_PER_EXAMPLE):
            if k % 2:
                out.append((name, mutate_tokens(text, rng).encode("utf-8")))
            else:
                out.append((name, mutate_bytes(data, rng)))
    return out


MUTANTS = mutants()


def test_enough_cases():
    assert len(example_sources()) >= 4
    assert N_GRAMMAR + len(MUTANTS) >= 2000, len(MUTANTS)


def test_examples_themselves_are_clean():
    for name, text in example_sources():
        analysis = analyze(text, name)
        assert_sane(text, analysis)


def test_mutations_never_crash():
    failures = []
    for name, data in MUTANTS:
        try:
            analysis = analyze_bytes(data, name)
            text = analysis.shown_source or ""
            assert_sane(text, analysis)
        except Exception as exc:  # collect them all, then report a few
            failures.append(f"{name}: {type(exc).__name__}: {exc}\n--- input ---\n{data[:400]!r}")
    assert not failures, f"{len(failures)} failing mutants; first:\n" + "\n\n".join(failures[:3])


def test_mutations_cli_exit_codes(tmp_path):
    rng = random.Random(7)
    for k, (name, data) in enumerate(rng.sample(MUTANTS, min(N_CLI, len(MUTANTS)))):
        path = tmp_path / f"m{k}.fus"
        path.write_bytes(data)
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = cli.main(["check", str(path)])
        assert code in (0, 1), (name, data[:400], err.getvalue()[-2000:])
        assert "Traceback" not in err.getvalue()
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            code = cli.main(["check", "--format", "json", "--emit", "ir", str(path)])
        assert code in (0, 1)
