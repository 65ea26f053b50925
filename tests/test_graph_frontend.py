"""Graph diagrams (LANGUAGE.md section 9) through the front end: parse, lower, check, fmt, render.

The located diagnostics F070-F078 are also exercised, with their exact text, by
docs/diagnostics.md through tests/test_frontend_docs.py; here each is checked
to point at the right place and to carry a help line.
"""
from __future__ import annotations

import pytest

from fusionlang import render as R
from fusionlang.frontend.fmt import format_source
from fusionlang.frontend import analyze
from fusionlang.frontend.syntax import parse

INTERACTION = """group O3

diagram Interaction {                       # a MACE / NequIP interaction
    in  h : 32x(0e + 1o) per node
    in  y : sh(3) per edge                  # spherical harmonics of the edge vectors
    out a : 32x(0e + 1o + 2e + 3o) per node
    wire hs : 32x(0e + 1o) = gather(h, sender)
    wire m  : 32x(0e + 1o + 2e + 3o) = fuse(hs, y) [weights=uvu, external]
    a = scatter(m, receiver)
}
"""


def diagnostics(text):
    return analyze(text, "t.fus").diagnostics


def test_interaction_checks_clean_with_domains():
    a = analyze(INTERACTION)
    assert a.ok and not a.diagnostics
    (d,) = a.diagrams
    assert d.is_graph
    assert {w: d.domain(w) for w in d.wires} == {"h": "node", "y": "edge", "a": "node", "hs": "edge", "m": "edge"}
    kinds = {data["kind"]: data for _, data in d.vertices()}
    assert kinds["gather"]["inputs"] == ["h"] and kinds["gather"]["endpoint"] == "sender"
    assert kinds["scatter"]["inputs"] == ["m"] and kinds["scatter"]["endpoint"] == "receiver"


def test_plain_diagram_is_not_a_graph():
    a = analyze("group O3\ndiagram D {\n    in x : 0e\n    out y : 0e\n    y = fuse(x, x)\n}\n")
    (d,) = a.diagrams
    assert not d.is_graph and d.domain("x") is None


def test_fmt_round_trip_keeps_domains_and_comments():
    out = format_source(INTERACTION)
    assert "in h : 32x(0e + 1o) per node" in out
    assert "wire hs : 32x(0e + 1o) = gather(h, sender)" in out
    assert "# spherical harmonics of the edge vectors" in out
    assert parse(out) == parse(INTERACTION)
    assert format_source(out) == out


def test_keywords_of_version_1_1():
    for word in ("per", "gather", "scatter"):
        codes = [d.code for d in diagnostics(f"group O3\ndiagram D {{\n    in {word} : 0e\n}}\n")]
        assert codes and codes[0] in ("F001", "F003"), (word, codes)
    # node, edge, sender and receiver are special only in their positions: fine as wire names.
    text = """group O3
diagram D {
    in  node : 4x0e per node
    out edge : 4x0e per edge
    edge = gather(node, receiver)
}
"""
    assert analyze(text).ok


CASES = {
    # code: (source, the text under the caret)
    "F070": ("""group O3
diagram A {
    in  h : 8x0e per node
    in  y : sh(1) per edge
    out m : 8x(0e + 1o) per edge
    m = fuse(h, y) [weights=uvu]
}
""", "h"),
    "F071": ("""group O3
diagram A {
    in  y : sh(1) per edge
    out z : sh(1) per edge
    z = gather(y, sender)
}
""", "y"),
    "F072": ("""group O3
diagram A {
    in  h : 8x0e per node
    out a : 8x0e per node
    a = scatter(h, receiver)
}
""", "h"),
    "F073": ("""group O3
diagram A {
    in  m : 8x0e per edge
    out a : 8x0e per edge
    a = scatter(m, receiver)
}
""", "edge"),
    "F074": ("""group O3
diagram A {
    in  h : 8x0e per node
    in  y : 0e
    out a : 8x0e per node
    a = fuse(h, y)
}
""", "y"),
    "F075": ("""group O3
diagram A {
    in  h : 8x0e per node
    out e : 8x0e per edge
    e = gather(h, sendr)
}
""", "sendr"),
    "F076": ("""group O3
diagram A {
    in  h : 8x0e per nodes
    out a : 8x0e per node
    a = linear(h)
}
""", "nodes"),
    "F077": ("""group SU2
diagram A {
    wire a : 1/2 per node
    wire b : 1/2
    wire c : 1
    c = fuse(a, b)
    (a, b) = split(c)
}
""", "node"),
    "F078": ("""group O3
diagram A {
    in  h : 8x0e per node
    out e : 4x0e per edge
    e = gather(h, sender)
}
""", "gather(h, sender)"),
}


@pytest.mark.parametrize("code", sorted(CASES))
def test_domain_diagnostic_is_located_with_help(code):
    text, under = CASES[code]
    found = [d for d in diagnostics(text) if d.is_error]
    assert [d.code for d in found] == [code], [d.render(text) for d in found]
    d = found[0]
    line = text.split("\n")[d.span.line - 1]
    assert line[d.span.column - 1:d.span.end_column - 1] == under
    assert d.help
    rendered = d.render(text)
    assert f"error[{code}]" in rendered and "^" in rendered and "help:" in rendered


def test_mixing_help_names_the_gather_to_write():
    text, _ = CASES["F070"]
    (d,) = [d for d in diagnostics(text) if d.is_error]
    assert "gather(h, sender)" in d.help and "per edge" in d.help
    assert "receiver" in diagnostics(CASES["F075"][0])[0].help or "sender" in diagnostics(CASES["F075"][0])[0].help


def test_mixed_vertex_does_not_cascade():
    """A vertex in error gives its output no domain, so nothing downstream is blamed twice."""
    text = """group O3
diagram A {
    in  h : 8x0e per node
    in  y : 0e per edge
    out a : 8x0e per node
    wire m : 8x0e = fuse(h, y)
    a = scatter(m, receiver)
}
"""
    assert [d.code for d in diagnostics(text) if d.is_error] == ["F070"]


def test_gather_and_scatter_take_no_options():
    text = """group O3
diagram A {
    in  h : 8x0e per node
    out e : 8x0e per edge
    e = gather(h, sender) [weights=uvu]
}
"""
    assert [d.code for d in diagnostics(text) if d.is_error] == ["F043"]
    for bad in ("gather(h)", "gather(h, sender, receiver)"):
        text2 = text.replace("gather(h, sender) [weights=uvu]", bad)
        assert [d.code for d in diagnostics(text2) if d.is_error] == ["F040"], bad


def test_render_shows_domains_and_gather_scatter():
    (d,) = analyze(INTERACTION).diagrams
    dot = R.to_dot(d)
    assert 'subgraph "cluster_node"' in dot and 'subgraph "cluster_edge"' in dot
    assert "per node (V rows)" in dot and "per edge (E rows)" in dot
    assert "shape=trapezium" in dot and "shape=invtrapezium" in dot
    assert "at sender" in dot and "into receiver" in dot
    # node wires and edge wires in their own colours
    h_edge = next(l for l in dot.splitlines() if '"in:h" -> "v0"' in l)
    m_edge = next(l for l in dot.splitlines() if '"v1" -> "v2"' in l)
    assert R._DOMAIN_WIRE["node"] in h_edge and R._DOMAIN_WIRE["edge"] in m_edge
    # gather and scatter sit between the boxes; the fuse and its external weights inside the edge box
    edge_box = dot.split('subgraph "cluster_edge"')[1].split("}")[0]
    assert '"v1"' in edge_box and '"ext:v1"' in edge_box and '"in:y"' in edge_box
    assert '"v0"' not in edge_box and '"v2"' not in edge_box
    node_box = dot.split('subgraph "cluster_node"')[1].split("}")[0]
    assert '"in:h"' in node_box and '"out:a"' in node_box


def test_render_plain_diagram_has_no_domain_boxes():
    (d,) = analyze("group O3\ndiagram D {\n    in x : 0e\n    out y : 0e\n    y = fuse(x, x)\n}\n").diagrams
    assert "cluster_" not in R.to_dot(d)


def test_ir_json_has_domains():
    (d,) = analyze(INTERACTION).diagrams
    data = d.to_json()
    assert data["graph"]["graph"] is True
    assert data["graph"]["wires"]["hs"]["domain"] == "edge"
    gather = next(n for n in data["nodes"] if n["kind"] == "gather")
    assert gather["endpoint"] == "sender" and gather["inputs"] == ["h"]
