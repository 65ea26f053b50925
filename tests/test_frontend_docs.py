"""docs/diagnostics.md documents every code, and its examples produce exactly what it shows.

docs/ir.md documents the JSON that `fusionc check --emit ir` prints.

Regenerate the output blocks of docs/diagnostics.md after changing a message:

    python tests/test_frontend_docs.py --update
"""
from __future__ import annotations

import contextlib
import io
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fusionlang import cli  # noqa: E402
from fusionlang.frontend import analyze  # noqa: E402

DIAGNOSTICS_MD = ROOT / "docs" / "diagnostics.md"
IR_MD = ROOT / "docs" / "ir.md"
CODE_PATTERN = re.compile(r"""["'](F\d{3})["']""")
# Sections: "## Fxxx", then an optional ```fus example and its ```text output.
SECTION = re.compile(r"^## (F\d{3})\n(.*?)(?=^## F\d{3}\n|\Z)", re.S | re.M)
EXAMPLE = re.compile(r"```fus\n(.*?)```\n\n```text\n(.*?)```", re.S)


def codes_in_sources() -> set[str]:
    codes = set()
    for path in (ROOT / "fusionlang").rglob("*.py"):
        codes |= set(CODE_PATTERN.findall(path.read_text(encoding="utf-8")))
    return codes


def sections() -> dict[str, str]:
    return {code: body for code, body in SECTION.findall(DIAGNOSTICS_MD.read_text(encoding="utf-8"))}


def render_all(example: str) -> str:
    analysis = analyze(example, "example.fus")
    return "\n\n".join(d.render(example) for d in analysis.diagnostics) + "\n"


def test_every_code_is_documented():
    documented = set(sections())
    missing = codes_in_sources() - documented
    assert not missing, f"codes used in fusionlang/ but not documented in docs/diagnostics.md: {sorted(missing)}"
    assert len(codes_in_sources()) >= 30


def test_every_documented_code_is_used():
    stale = set(sections()) - codes_in_sources()
    assert not stale, f"documented but no longer emitted: {sorted(stale)}"


def test_every_section_has_meaning_and_fix():
    for code, body in sections().items():
        assert "**" in body and "Fix:" in body, code


NOT_RUNNABLE = {"F005", "F008"}   # need a 2 MiB file / non-UTF-8 bytes: see the robustness and golden tests


@pytest.mark.parametrize("code", sorted(sections()))
def test_documented_example_triggers_its_code(code):
    body = sections()[code]
    match = EXAMPLE.search(body)
    if code in NOT_RUNNABLE:
        assert match is None
        return
    assert match, f"{code}: no ```fus example with its ```text output"
    example, shown = match.groups()
    codes = [d.code for d in analyze(example, "example.fus").diagnostics]
    assert code in codes, f"{code}: the example gives {codes}"
    assert render_all(example) == shown, f"{code}: output changed; run python tests/test_frontend_docs.py --update"


def update() -> None:
    text = DIAGNOSTICS_MD.read_text(encoding="utf-8")
    text = EXAMPLE.sub(lambda m: f"```fus\n{m.group(1)}```\n\n```text\n{render_all(m.group(1))}```", text)
    DIAGNOSTICS_MD.write_text(text, encoding="utf-8")


# ----------------------------------------------------------------------------- docs/ir.md

IR_EXAMPLE = """group O3

diagram EdgeMessage {
    in  h : 16x(0e + 1o)
    in  y : sh(1)
    out m : 16x(0e + 1o)
    m = fuse(h, y) [weights=uvu]
}
"""
GRAPH_KEYS = {"name", "group", "inputs", "outputs", "wires", "span", "graph"}
TOP_KEYS = {"directed", "multigraph", "graph", "nodes", "edges"}
VERTEX_KEYS = {"id", "kind", "index", "inputs", "outputs", "weights", "external", "symmetric", "symmetric_span",
               "span", "call_span",
               "options_span", "arg_spans", "target_spans"}
END_KEYS = {"id", "kind", "wire", "irreps", "span"}
EDGE_KEYS = {"source", "target", "key", "wire", "irreps", "src_port", "dst_port"}
WIRE_KEYS = {"kind", "irreps", "span", "producer", "readers", "domain"}


def emit_ir(path: Path) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = cli.main(["check", "--emit", "ir", str(path)])
    return code, out.getvalue()


def test_emit_ir_json_has_documented_keys(tmp_path):
    path = tmp_path / "edge.fus"
    path.write_text(IR_EXAMPLE)
    code, out = emit_ir(path)
    assert code == 0
    diagrams = json.loads(out)
    assert isinstance(diagrams, list) and len(diagrams) == 1
    d = diagrams[0]
    assert set(d) == TOP_KEYS and d["directed"] and d["multigraph"]
    assert set(d["graph"]) == GRAPH_KEYS
    assert d["graph"]["inputs"] == ["h", "y"] and d["graph"]["outputs"] == ["m"]
    for wire in d["graph"]["wires"].values():
        assert set(wire) == WIRE_KEYS
    kinds = {n["kind"] for n in d["nodes"]}
    assert kinds == {"input", "output", "fuse"}
    for n in d["nodes"]:
        assert set(n) == (VERTEX_KEYS if n["kind"] == "fuse" else END_KEYS), n
    for e in d["edges"]:
        assert set(e) == EDGE_KEYS
    assert d["graph"]["wires"]["m"]["irreps"] == "16x0e + 16x1o"
    # Every documented key is named in docs/ir.md.
    doc = IR_MD.read_text(encoding="utf-8")
    for key in GRAPH_KEYS | VERTEX_KEYS | END_KEYS | EDGE_KEYS | WIRE_KEYS | TOP_KEYS:
        assert f"`{key}`" in doc, key


def test_ir_md_example_is_current(tmp_path):
    path = tmp_path / "edge.fus"
    path.write_text(IR_EXAMPLE)
    _, out = emit_ir(path)
    doc = IR_MD.read_text(encoding="utf-8")
    shown = re.search(r"```json\n(.*?)```", doc, re.S).group(1)
    assert json.loads(shown) == json.loads(out), "docs/ir.md example is stale: regenerate it (see docs/ir.md)"


if __name__ == "__main__":
    if "--update" not in sys.argv[1:]:
        sys.exit("usage: python tests/test_frontend_docs.py --update")
    update()
    print(f"updated {DIAGNOSTICS_MD.relative_to(ROOT)}")
