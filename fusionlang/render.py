"""Pictures of diagrams: Diagram (+ the planner's contraction order) -> DOT text -> SVG / PNG / PDF.

The DOT text is built here by hand, deterministically (nodes and edges in a
fixed order, ids derived from the IR's own node ids), so that it can be
compared byte for byte in golden tests.  Images are made by the graphviz
``dot`` binary; without it, ``.dot`` output still works and image formats
raise :class:`GraphvizNotFound` with an install hint.

The visual legend (docs/rendering.md):

- ``in`` terminals: blue, pointing down into the diagram, on the top rank;
  ``out`` terminals: green, at the bottom rank.
- ``fuse``: an orange triangle pointing down (several wires in, one out);
  ``split``: a violet triangle pointing up (one wire in, two out);
  ``linear``: a grey box.  The vertex shows its operation and effective
  weight mode (``fuse uvu``, ``fuse none``); ``external`` weights are drawn
  as an extra dashed input.
- An arrow runs from the producer of a wire to each reader; it is labelled
  ``name : irreps`` (multiplicities included, long sums wrapped), and where
  a vertex has several arguments a small number at the arrow head gives the
  argument position.
- With ``plan_steps`` every vertex carries a red ``step k`` badge.
- Graph diagrams (docs/language.md section 9): the node part sits in a blue box
  labelled ``per node (V rows)``, the edge part in an orange box labelled
  ``per edge (E rows)``, and node wires are drawn blue, edge wires orange.
  ``gather`` is a teal trapezium widening from the nodes to the edges
  (``gather`` / ``at sender``), ``scatter`` a teal trapezium narrowing from the
  edges to the nodes (``scatter Σ`` / ``into receiver``); both sit between the
  two boxes.
"""
from __future__ import annotations

import html
import math
import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterable, Mapping

import networkx as nx

from . import names as pynames
from .diagnostics import FusionError
from .files import write_atomic
from .ir import Diagram, Vertex
from .symmetry.paths import TooManyPaths, separate_paths

IMAGE_FORMATS = ("svg", "png", "pdf")
FORMATS = IMAGE_FORMATS + ("dot",)
DOT_TIMEOUT_S = 60
WRAP = 30            # characters per line of an edge label

INSTALL_HINT = ("install Graphviz, which provides the `dot` binary: `apt-get install graphviz` (Debian/Ubuntu), "
                "`brew install graphviz` (macOS) or `conda install -c conda-forge graphviz`; "
                "or write `.dot` output, which needs no binary")

_STYLE = {
    "input": 'shape=invhouse, style="filled", fillcolor="#cfe2f3", color="#3d85c6", fontcolor="#073763"',
    "output": 'shape=house, style="filled", fillcolor="#d9ead3", color="#6aa84f", fontcolor="#274e13"',
    "fuse": 'shape=invtriangle, style="filled", fillcolor="#f6b26b", color="#b45f06", margin="0.02"',
    "split": 'shape=triangle, style="filled", fillcolor="#b4a7d6", color="#674ea7", margin="0.02"',
    "linear": 'shape=box, style="filled,rounded", fillcolor="#eeeeee", color="#666666"',
    "external": 'shape=note, style="dashed", color="#999999", fontcolor="#555555", fontsize=10',
    "gather": 'shape=trapezium, style="filled", fillcolor="#a2c4c9", color="#134f5c", margin="0.04"',
    "scatter": 'shape=invtrapezium, style="filled", fillcolor="#a2c4c9", color="#134f5c", margin="0.04"',
}
# Graph diagrams: wire colours and the boxes around each domain.
_DOMAIN_WIRE = {"node": '#3d85c6', "edge": '#e69138'}
_DOMAIN_BOX = {"node": ('per node (V rows)', '#eef4fb', '#9fc5e8'),
               "edge": ('per edge (E rows)', '#fdf3e7', '#f9cb9c')}


class RenderError(FusionError):
    """A picture could not be made (bad output path or format, or Graphviz failed)."""


class UnsupportedFormat(RenderError, ValueError):
    """The output path's extension is not one of FORMATS."""


class GraphvizNotFound(RenderError):
    """The Graphviz `dot` binary is needed for image output but is not installed."""

    def __init__(self, fmt: str = "svg"):
        super().__init__(f"cannot write .{fmt}: the Graphviz `dot` binary was not found on PATH; {INSTALL_HINT}")
        self.fmt = fmt


def find_dot() -> str | None:
    """Path of the `dot` binary, or None.  (Tests monkeypatch this.)"""
    return shutil.which("dot")


# -- DOT text -----------------------------------------------------------------

def _q(text: str) -> str:
    """A DOT double-quoted id or string."""
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _h(text: str) -> str:
    return html.escape(str(text), quote=True)


def format_irreps(irreps) -> str:
    """`16x0e + 16x1o`, with multiplicity-1 terms written bare (`1/2`, not `1x1/2`)."""
    terms = [str(t.irrep) if t.mul == 1 else f"{t.mul}x{t.irrep}" for t in irreps]
    return " + ".join(terms) if terms else "0"


def _wrap_terms(text: str, width: int = WRAP) -> list[str]:
    """Break an irreps sum at its ` + ` joints into lines of about `width` characters."""
    lines: list[str] = []
    for term in text.split(" + "):
        if lines and len(lines[-1]) + 3 + len(term) <= width:
            lines[-1] += " + " + term
        else:
            lines.append(term if not lines else "+ " + term)
    return lines


def _wire_label(name: str, irreps) -> str:
    """HTML-like edge label: `name : irreps`, the name bold, long sums wrapped."""
    text = f"{name} : {format_irreps(irreps)}"
    lines = _wrap_terms(text)
    head, rest = lines[0], lines[1:]
    first = f"<b>{_h(name)}</b>{_h(head[len(name):])}"
    return "<" + "<br/>".join([first] + [_h(line) for line in rest]) + ">"


def _vertex_label(v: Vertex, diagram) -> str:
    kind = v.kind
    if kind == "fuse":
        text = f"<b>fuse</b><br/>{_h(v.mode)}" + ("<br/><i>symmetric</i>" if v.symmetric else "")
        if v.per_path:   # every path its own output block: say how many
            text = f"<b>fuse</b><br/><i>paths separate</i><br/>{_per_path_blocks(diagram.graph.nodes[v.node], diagram)}"
    elif kind == "gather":
        text = f"<b>gather</b><br/>at {_h(v.endpoint)}"
    elif kind == "scatter":
        text = f"<b>scatter &#931;</b><br/>into {_h(v.endpoint)}"
    elif kind == "split":
        text = "<b>split</b>"
    else:
        text = "<b>linear</b>"
    return "<" + text + ">"


def _per_path_blocks(data: dict, diagram) -> str:
    """`6 blocks` for a `paths=separate` fuse (its paths into the declared irreps), or "" if unknown."""
    ins, out = [diagram.irreps(w) for w in data["inputs"]], diagram.irreps(data["outputs"][0])
    try:
        paths, _ = separate_paths(diagram.group, ins, set(out.irreps))
    except TooManyPaths:
        return ""
    return f"{len(paths)} block{'s' * (len(paths) != 1)}"


def _is_closed(diagram) -> bool:
    return not diagram.inputs and not diagram.outputs


def _hamiltonian_cycle(graph, nodes: list[str], limit: int = 12) -> list[str] | None:
    """A Hamiltonian cycle found by depth-first search in written order (small graphs only), or None."""
    if len(nodes) > limit or len(nodes) < 3:
        return None
    rank = {n: i for i, n in enumerate(nodes)}
    path, on_path = [nodes[0]], {nodes[0]}

    def extend() -> bool:
        if len(path) == len(nodes):
            return graph.has_edge(path[-1], path[0])
        for m in sorted(graph[path[-1]], key=rank.get):
            if m not in on_path:
                path.append(m)
                on_path.add(m)
                if extend():
                    return True
                on_path.discard(path.pop())
        return False

    return list(path) if extend() else None


def closed_layout(diagram, radius: float = 1.6) -> dict[str, tuple[float, float]]:
    """Fixed positions (inches) for the vertices of a closed network, so that it looks like itself.

    Two vertices (the theta graph) sit side by side; a planar, biconnected
    network gets a Tutte embedding (its largest face on a regular polygon,
    every other vertex at the mean of its neighbours: the tetrahedron is a
    triangle around its centre); anything else goes round a circle in
    written order (the 9j network's hexagon).  Deterministic.
    """
    nodes = [n for n, _ in diagram.vertices()]
    if len(nodes) <= 2:
        return {n: (1.5 * radius * i, 0.0) for i, n in enumerate(nodes)}
    simple = nx.Graph()
    simple.add_nodes_from(nodes)
    simple.add_edges_from(sorted((u, v) for u, v in diagram.graph.edges() if u != v and u in simple and v in simple))
    outer = _hamiltonian_cycle(simple, nodes) or nodes
    planar, embedding = nx.check_planarity(simple)
    if planar and nx.is_biconnected(simple):
        seen: set = set()
        faces = []
        for u, v in sorted(embedding.edges()):
            if (u, v) not in seen:
                faces.append(embedding.traverse_face(u, v, mark_half_edges=seen))
        outer = max(faces, key=len)   # the first of the largest faces
    k = len(outer)
    pos = {n: (radius * math.cos(math.pi / 2 + 2 * math.pi * i / k), radius * math.sin(math.pi / 2 + 2 * math.pi * i / k))
           for i, n in enumerate(outer)}
    inner = [n for n in nodes if n not in pos]
    if inner:   # Tutte: solve for barycentres (Gauss-Seidel; the graphs are tiny)
        cur = {n: (0.0, 0.0) for n in inner}
        for _ in range(500):
            for n in inner:
                nbrs = list(simple[n]) or [n]
                pts = [pos.get(m, cur.get(m, (0.0, 0.0))) for m in nbrs]
                cur[n] = (sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts))
        pos.update(cur)
    return {n: (round(x, 3) + 0.0, round(y, 3) + 0.0) for n, (x, y) in pos.items()}


def _body(diagram, plan_steps: Mapping[str, int] | None, prefix: str, indent: str, pin: bool = False) -> list[str]:
    """Node and edge statements for one diagram; node ids are `prefix + IR node id`."""
    g = diagram.graph
    pid = lambda node: _q(prefix + node)  # noqa: E731
    lines: list[str] = []
    add = lambda s: lines.append(indent + s)  # noqa: E731
    steps = dict(plan_steps or {})
    pinned = closed_layout(diagram) if pin and _is_closed(diagram) else {}

    # Terminals, in declaration order; each group on one rank.
    for kind, names, tag in (("input", diagram.inputs, "in"), ("output", diagram.outputs, "out")):
        if not names:
            continue
        for name in names:
            add(f'{pid(f"{tag}:{name}")} [label=<<font point-size="9">{tag}</font> <b>{_h(name)}</b>>, '
                f'{_STYLE[kind]}];')
        add("{rank=same; " + " ".join(pid(f"{tag}:{n}") for n in names) + "}")
        if len(names) > 1:   # keep the written order left to right
            add(" -> ".join(pid(f"{tag}:{n}") for n in names) + " [style=invis];")

    # Vertices, in written order.
    # The note of an [external] vertex names the forward argument, as the generated module does.
    python = pynames.ModuleNames(diagram.name, list(diagram.wires), diagram.is_graph,
                                 external=[v.outputs[0] for v in diagram.typed_vertices() if v.external])
    for v in diagram.typed_vertices():
        node = v.node
        attrs = [f"label={_vertex_label(v, diagram)}", _STYLE[v.kind]]
        if node in pinned:
            attrs.insert(0, f'pos="{pinned[node][0]:.3f},{pinned[node][1]:.3f}!"')
        if node in steps:
            attrs.append(f'xlabel=<<font color="#cc0000" point-size="10"><b>step {int(steps[node])}</b></font>>')
        add(f"{pid(node)} [{', '.join(attrs)}];")
        if v.external:
            wname = python.weight_arguments[v.outputs[0]]
            add(f'{pid("ext:" + node)} [label=<{_h(wname)}<br/><i>external</i>>, {_STYLE["external"]}];')
            add(f'{pid("ext:" + node)} -> {pid(node)} [style=dashed, color="#999999", arrowhead=empty];')

    # Wire edges: one per read, producer -> reader, in a fixed order.
    order = {n: i for i, n in enumerate(
        [f"in:{w}" for w in diagram.inputs] + [n for n, _ in diagram.vertices()] + [f"out:{w}" for w in diagram.outputs])}
    edges = sorted(g.edges(keys=True, data=True),
                   key=lambda e: (order.get(e[1], len(order)), e[3]["dst_port"], order.get(e[0], len(order)), e[2]))
    closed = _is_closed(diagram)
    for src, dst, _key, data in edges:
        # In a pinned closed network wire labels are xlabels, which Graphviz places clear of each other.
        attrs = [f"{'xlabel' if pinned else 'label'}={_wire_label(data['wire'], data['irreps'])}"]
        dst_data = g.nodes[dst]
        if len(dst_data.get("inputs", ())) > 1:
            attrs.append(f'headlabel=<<font point-size="8" color="#b45f06">{data["dst_port"] + 1}</font>>')
        src_data = g.nodes[src]
        if len(src_data.get("outputs", ())) > 1:
            attrs.append(f'taillabel=<<font point-size="8" color="#674ea7">{data["src_port"] + 1}</font>>')
        if len(attrs) > 1:
            attrs.append("labeldistance=1.6")
        if closed:
            attrs.append('color="#444444"')
        domain = diagram.wires[data["wire"]].domain if diagram.is_graph else None
        if domain:
            attrs.append(f'color="{_DOMAIN_WIRE[domain]}", penwidth=1.4')
        add(f"{pid(src)} -> {pid(dst)} [{', '.join(attrs)}];")
    if diagram.is_graph:
        lines += _domain_boxes(diagram, prefix, indent)
    return lines


def _domain_boxes(diagram, prefix: str, indent: str) -> list[str]:
    """One box per domain around its terminals and vertices (gather and scatter stay between them)."""
    members: dict[str, list[str]] = {"node": [], "edge": []}
    for name in diagram.inputs:
        members.setdefault(diagram.domain(name), []).append(f"in:{name}")
    for v in diagram.typed_vertices():
        if v.kind not in ("gather", "scatter"):
            # External weights have one row per node or edge of the vertex's domain: inside its box.
            members.setdefault(diagram.domain(v.outputs[0]), []).extend(
                [v.node] + (["ext:" + v.node] if v.external else []))
    for name in diagram.outputs:
        members.setdefault(diagram.domain(name), []).append(f"out:{name}")
    lines = []
    for domain in ("node", "edge"):
        if not members.get(domain):
            continue
        label, fill, border = _DOMAIN_BOX[domain]
        lines.append(indent + f"subgraph {_q('cluster_' + prefix + domain)} {{")
        lines.append(indent + f'    label=<<font point-size="10" color="{_DOMAIN_WIRE[domain]}"><b>{label}</b></font>>; '
                     f'style="filled,rounded"; fillcolor="{fill}"; color="{border}";')
        lines.append(indent + "    " + " ".join(_q(prefix + n) for n in members[domain]) + ";")
        lines.append(indent + "}")
    return lines


_HEADER = [
    'graph [fontname="Helvetica", fontsize=12, labelloc=t, nodesep=0.5, ranksep=0.55, newrank=true];',
    'node [fontname="Helvetica", fontsize=11];',
    'edge [fontname="Helvetica", fontsize=9, arrowsize=0.7, labelfloat=false];',
]


def _title(diagram) -> str:
    kind = "closed network" if _is_closed(diagram) else \
        f"{'graph diagram, ' if diagram.is_graph else ''}{len(diagram.inputs)} in, {len(diagram.outputs)} out"
    return f"<<b>{_h(diagram.name)}</b>  <font point-size=\"10\">({_h(diagram.group_name)}; {kind})</font>>"


def to_dot(diagram, plan_steps: Mapping[str, int] | None = None) -> str:
    """Deterministic DOT text for one diagram.

    ``plan_steps`` maps vertex node ids (``"v0"``...) to their 1-based step in
    the planner's contraction order; each such vertex gets a ``step k`` badge.
    """
    lines = [f"digraph {_q(diagram.name)} {{"]
    lines += ["    " + s for s in _HEADER]
    lines.append(f"    label={_title(diagram)};")
    if _is_closed(diagram):   # a closed network: pinned positions (closed_layout), curved wires
        lines.append("    layout=neato; splines=true; overlap=true; forcelabels=true;")
    lines += _body(diagram, plan_steps, "", "    ", pin=True)
    lines.append("}")
    return "\n".join(lines) + "\n"


def select(diagrams: Iterable, names: Iterable[str] | None = None) -> list:
    """The diagrams named (in the order asked), or all of them; KeyError lists the names there are."""
    diagrams = list(diagrams)
    if not names:
        return diagrams
    by_name = {d.name: d for d in diagrams}
    out = []
    for name in names:
        if name not in by_name:
            have = ", ".join(d.name for d in diagrams) or "none"
            raise KeyError(f"no diagram named `{name}`; the diagrams are: {have}")
        if by_name[name] not in out:
            out.append(by_name[name])
    return out


def to_dot_file(diagrams: list, names: list[str] | None = None,
                plan_steps: Mapping[str, Mapping[str, int]] | None = None, title: str | None = None) -> str:
    """Several diagrams of a file in one picture, one cluster each (all, or those named).

    ``plan_steps`` maps diagram names to that diagram's ``{node id: step}``.
    A single diagram is drawn exactly as :func:`to_dot` draws it.
    """
    chosen = select(diagrams, names)
    plan_steps = plan_steps or {}
    if len(chosen) == 1:
        return to_dot(chosen[0], plan_steps.get(chosen[0].name))
    lines = [f"digraph {_q(title or 'diagrams')} {{"]
    lines += ["    " + s for s in _HEADER]
    if title:
        lines.append(f"    label=<<b>{_h(title)}</b>>;")
    for d in chosen:
        lines.append(f"    subgraph {_q('cluster_' + d.name)} {{")
        lines.append(f'        label={_title(d)}; style="rounded"; color="#bbbbbb";')
        lines += _body(d, plan_steps.get(d.name), d.name + "/", "        ")
        lines.append("    }")
    lines.append("}")
    return "\n".join(lines) + "\n"


# -- images -------------------------------------------------------------------

def _format_of(path: str | os.PathLike) -> str:
    ext = Path(path).suffix.lower().lstrip(".")
    if ext in ("gv",):
        ext = "dot"
    if ext not in FORMATS:
        what = f"unknown output format `.{ext}`" if ext else "the path has no extension"
        raise UnsupportedFormat(f"cannot render to `{path}`: {what}; use one of "
                                + ", ".join("." + f for f in FORMATS))
    return ext


def dot_to(fmt: str, dot_text: str) -> bytes:
    """Run the `dot` binary on DOT text; the image bytes."""
    exe = find_dot()
    if exe is None:
        raise GraphvizNotFound(fmt)
    try:
        proc = subprocess.run([exe, f"-T{fmt}"], input=dot_text.encode("utf-8"), capture_output=True,
                              timeout=DOT_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise RenderError(f"Graphviz `dot` took longer than {DOT_TIMEOUT_S} s") from None
    except OSError as exc:
        raise RenderError(f"could not run Graphviz `dot` ({exe}): {exc}") from None
    if proc.returncode != 0:
        raise RenderError(f"Graphviz `dot` failed (exit {proc.returncode}): "
                          f"{proc.stderr.decode('utf-8', 'replace').strip()}")
    return proc.stdout


def render(diagrams, path: str | os.PathLike, names: list[str] | None = None,
           plan_steps: Mapping | None = None) -> Path:
    """Write a picture of `diagrams` (one Diagram or a list) to `path`: .dot, .svg, .png or .pdf.

    ``plan_steps`` is ``{node id: step}`` when one diagram is drawn, or
    ``{diagram name: {node id: step}}``.  Returns the path written.
    """
    fmt = _format_of(path)
    if not isinstance(diagrams, (list, tuple)):
        diagrams = [diagrams]
    chosen = select(diagrams, names)
    if not chosen:
        raise RenderError("there is no diagram to draw")
    if plan_steps and all(isinstance(v, int) for v in plan_steps.values()):
        if len(chosen) != 1:
            raise ValueError("plan_steps as {node: step} needs exactly one diagram; "
                             "give {diagram name: {node: step}} for several")
        plan_steps = {chosen[0].name: plan_steps}
    text = to_dot_file(chosen, None, plan_steps)
    path = Path(path)
    write_atomic(path, text if fmt == "dot" else dot_to(fmt, text))
    return path


def to_svg(diagram, plan_steps: Mapping[str, int] | None = None) -> str | None:
    """SVG text for Jupyter (Diagram._repr_svg_); None when Graphviz is missing or fails."""
    try:
        return dot_to("svg", to_dot(diagram, plan_steps)).decode("utf-8")
    except RenderError:
        return None


# Jupyter's display hook: see ir.Diagram.svg_renderer.
Diagram.svg_renderer = to_svg
