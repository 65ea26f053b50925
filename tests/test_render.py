"""Pictures: golden DOT text, every example to svg/png/dot, the no-dot path, the CLI.

Golden files live in tests/golden_dot/<example>.dot.  After an intended change
to the drawing, regenerate them with

    FUSION_UPDATE_GOLDEN=1 python -m pytest tests/test_render.py -k golden

and review the diff (then look at the pictures: `make gallery`).
"""
from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fusionlang import render as R
from fusionlang.frontend import analyze, analyze_file

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples" / "diagrams").glob("*.fus"))
GOLDEN = Path(__file__).resolve().parent / "golden_dot"
GOLDEN_EXAMPLES = ["edge_message", "three_body", "radial_external", "recoupling", "su2_theta", "su2_tetrahedron"]
HAVE_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAVE_DOT, reason="the Graphviz `dot` binary is not installed "
                               "(apt-get install graphviz); CI installs it")


def load(stem: str):
    a = analyze_file(ROOT / "examples" / "diagrams" / f"{stem}.fus")
    assert a.ok, [d.render(a.source) for d in a.diagnostics]
    return a.diagrams


def run_cli(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "fusionlang", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd or ROOT, timeout=120)


# -- the examples ---------------------------------------------------------------

def test_enough_examples_and_all_clean():
    assert len(EXAMPLES) >= 12
    for path in EXAMPLES:
        a = analyze_file(path)
        assert a.ok and not a.diagnostics, (path.name, [d.render(a.source) for d in a.diagnostics])
        assert a.source.startswith("#"), f"{path.name} needs a header comment"


# -- golden DOT text -----------------------------------------------------------

@pytest.mark.parametrize("stem", GOLDEN_EXAMPLES)
def test_golden_dot(stem):
    text = R.to_dot_file(load(stem))
    golden = GOLDEN / f"{stem}.dot"
    if os.environ.get("FUSION_UPDATE_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert golden.exists(), f"missing {golden}; regenerate with FUSION_UPDATE_GOLDEN=1"
    assert text == golden.read_text(encoding="utf-8"), \
        f"DOT for {stem} changed; if intended, regenerate with FUSION_UPDATE_GOLDEN=1 (see module docstring)"


def test_dot_content_edge_message():
    (d,) = load("edge_message")
    text = R.to_dot(d)
    assert '"in:h" -> "v0"' in text and '"v0" -> "out:m"' in text      # producer -> reader
    assert "<b>h</b> : 16x0e + 16x1o + 16x2e" in text                 # name : irreps with multiplicities
    assert "<b>y</b> : 0e + 1o + 2e" in text                            # multiplicity 1 written bare
    assert "<b>fuse</b><br/>uvu" in text
    assert "shape=invhouse" in text and "shape=house" in text and "shape=invtriangle" in text
    assert "{rank=same; \"in:h\" \"in:y\"}" in text


def test_split_linear_external_and_closed():
    (theta,) = load("su2_theta")
    text = R.to_dot(theta)
    assert "shape=triangle" in text and "shape=invtriangle" in text   # split and fuse differ
    assert "layout=neato" in text and text.count('pos="') == 2
    assert text.count(" -> ") == 3 and "<b>a</b> : 1/2" in text and "<b>c</b> : 1" in text
    (ext,) = load("radial_external")
    text = R.to_dot(ext)
    assert "m_weights" in text and "external" in text and "style=dashed" in text
    (inter,) = load("interaction_block")
    assert "<b>linear</b>" in R.to_dot(inter) and "shape=box" in R.to_dot(inter)


def test_closed_layout_tetrahedron_is_triangle_around_centre():
    (d,) = load("su2_tetrahedron")
    pos = R.closed_layout(d)
    assert len(pos) == 4
    centre = [n for n, (x, y) in pos.items() if abs(x) < 1e-6 and abs(y) < 1e-6]
    assert len(centre) == 1


def test_closed_layout_ninej_is_hexagon():
    (d,) = load("su2_ninej")
    pos = R.closed_layout(d)
    assert all(abs((x * x + y * y) ** 0.5 - 1.6) < 1e-2 for x, y in pos.values())
    order = sorted(pos, key=lambda n: __import__("math").atan2(pos[n][1], pos[n][0]))
    linked = {frozenset((u, v)) for u, v in d.graph.edges()}
    assert all(frozenset((order[i], order[i - 1])) in linked for i in range(6))   # the rim is a cycle
    assert "xlabel=<<b>x12</b> : 1/2>" in R.to_dot(d)     # wire labels placed clear of each other


def test_long_labels_wrap():
    text = """group O3
diagram Wide {
    in  x : 8x0e + 8x1o + 8x1e + 8x2e + 8x2o + 8x3o
    out y : 8x0e + 8x1o
    y = linear(x)
}
"""
    (d,) = analyze(text).diagrams
    dot = R.to_dot(d)
    label = next(line for line in dot.splitlines() if '"in:x" -> "v0"' in line)
    assert "<br/>+ " in label


def test_file_with_several_diagrams_and_selection():
    diagrams = load("recoupling")
    both = R.to_dot_file(diagrams)
    assert 'subgraph "cluster_LeftTree"' in both and 'subgraph "cluster_RightTree"' in both
    assert '"LeftTree/v0"' in both and '"RightTree/v0"' in both
    one = R.to_dot_file(diagrams, ["RightTree"])
    assert one == R.to_dot(diagrams[1]) and "LeftTree" not in one
    with pytest.raises(KeyError, match="LeftTree, RightTree"):
        R.to_dot_file(diagrams, ["Middle"])


def test_deterministic():
    for path in EXAMPLES:
        first = R.to_dot_file(analyze_file(path).diagrams).encode()
        second = R.to_dot_file(analyze_file(path).diagrams).encode()
        assert first == second, path.name


def test_plan_steps_badges(tmp_path):
    (d,) = load("interaction_block")
    text = R.to_dot(d, plan_steps={"v0": 1, "v1": 2})
    assert "step 1" in text and "step 2" in text and text.count("xlabel=") == 2
    assert "step" not in R.to_dot(d)
    diagrams = load("recoupling")
    text = R.to_dot_file(diagrams, plan_steps={"RightTree": {"v1": 1, "v0": 2}})
    assert text.count("step ") == 2
    out = R.render(d, tmp_path / "p.dot", plan_steps={"v0": 2, "v1": 1})
    assert "step 2" in out.read_text()


# -- images ----------------------------------------------------------------------

@needs_dot
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_renders(path, tmp_path):
    diagrams = analyze_file(path).diagrams
    for ext, magic in (("svg", b"<svg"), ("png", b"\x89PNG"), ("dot", b"digraph")):
        out = R.render(diagrams, tmp_path / f"{path.stem}.{ext}")
        data = out.read_bytes()
        assert magic in data[:2000], (path.name, ext)


@needs_dot
def test_pdf_and_jupyter_svg(tmp_path):
    (d,) = load("su2_theta")
    assert R.render(d, tmp_path / "t.pdf").read_bytes().startswith(b"%PDF")
    svg = d._repr_svg_()
    assert svg is not None and "<svg" in svg and "Theta" in svg


def test_unknown_extension(tmp_path):
    (d,) = load("su2_theta")
    with pytest.raises(R.UnsupportedFormat, match=r"\.jpg.*\.svg, \.png, \.pdf, \.dot"):
        R.render(d, tmp_path / "t.jpg")
    with pytest.raises(R.UnsupportedFormat, match="no extension"):
        R.render(d, tmp_path / "t")


def test_without_dot(monkeypatch, tmp_path):
    monkeypatch.setattr(R, "find_dot", lambda: None)
    (d,) = load("su2_theta")
    with pytest.raises(R.GraphvizNotFound, match="apt-get install graphviz") as info:
        R.render(d, tmp_path / "t.png")
    assert "brew install graphviz" in str(info.value) and "conda" in str(info.value)
    assert isinstance(info.value, R.RenderError)
    assert not (tmp_path / "t.png").exists()
    assert R.render(d, tmp_path / "t.dot").read_text().startswith("digraph")
    assert R.to_svg(d) is None and d._repr_svg_() is None


# -- fusionc render ----------------------------------------------------------------

def test_cli_render(tmp_path):
    out = tmp_path / "r.dot"
    r = run_cli("render", "examples/diagrams/recoupling.fus", "-o", out)
    assert r.returncode == 0, r.stderr
    assert str(out) in r.stdout and "cluster_LeftTree" in out.read_text()
    r = run_cli("render", "examples/diagrams/recoupling.fus", "--diagram", "LeftTree", "--diagram", "RightTree",
                "-o", out)
    assert r.returncode == 0 and "cluster_RightTree" in out.read_text()
    r = run_cli("render", "examples/diagrams/recoupling.fus", "--diagram", "RightTree", "-o", out)
    assert r.returncode == 0 and "LeftTree" not in out.read_text()


@needs_dot
def test_cli_render_images(tmp_path):
    for ext in ("svg", "png"):
        out = tmp_path / f"theta.{ext}"
        r = run_cli("render", "examples/diagrams/su2_theta.fus", "-o", out)
        assert r.returncode == 0, r.stderr
        assert out.stat().st_size > 100


def test_cli_unknown_diagram(tmp_path):
    r = run_cli("render", "examples/diagrams/recoupling.fus", "--diagram", "Middle", "-o", tmp_path / "x.svg")
    assert r.returncode == 2
    assert "no diagram named `Middle`" in r.stderr and "LeftTree, RightTree" in r.stderr
    assert "Traceback" not in r.stderr


def test_cli_errors_in_file(tmp_path):
    bad = tmp_path / "bad.fus"
    bad.write_text("group SU2\ndiagram Bad {\n    in a : 1/2\n    in b : 1/2\n    out c : 1/2\n"
                   "    c = fuse(a, b)\n}\n")
    r = run_cli("render", bad, "-o", tmp_path / "bad.dot")
    assert r.returncode == 1
    assert "error[F05" in r.stderr and "bad.fus:6:" in r.stderr
    assert not (tmp_path / "bad.dot").exists()


def test_cli_usage_errors(tmp_path):
    r = run_cli("render", "examples/diagrams/su2_theta.fus", "-o", tmp_path / "t.jpg")
    assert r.returncode == 2 and "unknown output format" in r.stderr
    r = run_cli("render", tmp_path / "missing.fus", "-o", tmp_path / "t.svg")
    assert r.returncode == 2 and "no such file" in r.stderr
    r = run_cli("render")
    assert r.returncode == 2


def test_cli_without_dot(tmp_path):
    env = dict(os.environ, PATH=str(tmp_path / "empty-bin"))
    r = run_cli("render", "examples/diagrams/su2_theta.fus", "-o", tmp_path / "t.png", env=env)
    assert r.returncode == 2 and "apt-get install graphviz" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("render", "examples/diagrams/su2_theta.fus", "-o", tmp_path / "t.dot", env=env)
    assert r.returncode == 0 and (tmp_path / "t.dot").exists()


def test_cli_plan(tmp_path):
    out = tmp_path / "p.dot"
    r = run_cli("render", "examples/diagrams/interaction_block.fus", "--plan", "-o", out)
    try:
        plan = importlib.import_module("fusionlang.backend.plan")
        available = hasattr(plan, "plan_steps")
    except ImportError:
        available = False
    if available:
        assert r.returncode == 0, r.stderr
        assert "step 1" in out.read_text()
    else:
        assert r.returncode == 2 and "planner overlay" in r.stderr and "not available" in r.stderr
