"""The Diagram IR: a networkx MultiDiGraph per diagram (frontend/lower.py builds it from the AST).

Schema (also in docs/ir.md):

graph attributes
    name      diagram name              group    "O3" | "SO3" | "SU2"
    inputs    in-wire names, in order   outputs  out-wire names, in order
    wires     {name: Wire}              span     the diagram's Span
    graph     True for a graph diagram (a wire declared `per node` / `per edge`, or a gather / scatter);
              each Wire then has a domain, "node" or "edge" (docs/language.md section 9)
nodes
    "in:<wire>" / "out:<wire>"          kind "input" / "output", wire, irreps
    "v<k>"                              kind "fuse" | "split" | "linear" | "gather" | "scatter", index (written
                                        order), inputs, outputs (wire names, in argument order), weights,
                                        external, symmetric (and symmetric_span), per_path (and per_path_span; only
                                        when `paths=separate`), span (the statement), call_span, options_span,
                                        arg_spans / target_spans (one Span per input / output name);
                                        gather / scatter also endpoint ("sender" | "receiver"), endpoint_span
edges  producer -> reader, one per read (key "<wire>@<port>")
    wire, irreps, src_port (index among the producer's outputs), dst_port (argument index)

Every stage after the frontend reads diagrams through this module only; it imports
nothing above the symmetry layer (docs/architecture.md).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cached_property

import networkx as nx

from .diagnostics import InternalError, Span
from .symmetry.groups import GROUPS, Group, Irreps
from .symmetry.paths import Path, path_weight_shape, vertex_wiring, weight_numel

OPERATIONS = ("fuse", "split", "linear", "gather", "scatter")
DOMAINS = ("node", "edge")               # `per node` / `per edge` (graph diagrams, docs/language.md section 9)
ENDPOINTS = ("sender", "receiver")       # gather(x, sender) / scatter(m, receiver)
WEIGHT_MODES = ("uvw", "uvu", "uuu", "none")


@dataclass
class Wire:
    name: str
    kind: str                    # "in" | "out" | "wire"
    irreps: Irreps
    span: Span | None
    producer: str | None = None  # node id
    readers: list[str] = field(default_factory=list)
    resolved: bool = True        # False when its irreps expression had errors
    produced_span: Span | None = None
    # Set when a vertex that reads / produces the wire had errors and was left out of the
    # graph: follow-on diagnostics (never read, never produced) are then suppressed.
    read_by_invalid: bool = False
    produced_by_invalid: bool = False
    # Graph diagrams: the domain written after `per` (and where), and the domain the wire has:
    # the producer's for a produced wire (gather -> edge, scatter -> node, otherwise its inputs'),
    # the declared one where the producer gives none.  None outside graph diagrams.
    declared_domain: str | None = None
    domain_span: Span | None = None
    domain: str | None = None
    produced_domain: str | None = None    # what the producer gives (None: an input, or inputs that disagree)


class Diagram:
    """A checked-or-not diagram: a thin, typed view over its MultiDiGraph."""

    def __init__(self, graph: nx.MultiDiGraph):
        self.graph = graph

    name = property(lambda self: self.graph.graph["name"])
    group_name = property(lambda self: self.graph.graph["group"])
    group = property(lambda self: GROUPS[self.graph.graph["group"]])
    inputs = property(lambda self: self.graph.graph["inputs"])
    outputs = property(lambda self: self.graph.graph["outputs"])
    wires = property(lambda self: self.graph.graph["wires"])
    span = property(lambda self: self.graph.graph["span"])
    is_graph = property(lambda self: self.graph.graph.get("graph", False))

    def domain(self, wire: str) -> str | None:
        """"node", "edge", or None (not a graph diagram, or a wire whose domain is in error)."""
        return self.wires[wire].domain

    @property
    def is_closed(self) -> bool:
        return not self.inputs and not self.outputs

    def vertices(self) -> list[tuple[str, dict]]:
        """Vertex nodes in written order."""
        nodes = [(n, d) for n, d in self.graph.nodes(data=True) if d["kind"] in OPERATIONS]
        return sorted(nodes, key=lambda nd: nd[1]["index"])

    def vertex(self, node: str) -> "Vertex":
        """The typed record of one vertex, made once per diagram (its paths are computed once too)."""
        cache = self.__dict__.setdefault("_vertices", {})
        if node not in cache:
            cache[node] = Vertex.of(self, node)
        return cache[node]

    def typed_vertices(self) -> list["Vertex"]:
        """Every vertex as a typed record, in written order."""
        return [self.vertex(n) for n, _ in self.vertices()]

    def irreps(self, wire: str) -> Irreps:
        return self.wires[wire].irreps

    def to_json(self) -> dict:
        """Node-link JSON with irreps and spans as plain values (fusionc check --emit ir)."""
        def plain(value):
            if isinstance(value, Irreps):
                return str(value)
            if isinstance(value, Span):
                return {"line": value.line, "column": value.column,
                        "end_line": value.end_line, "end_column": value.end_column}
            if isinstance(value, Wire):
                return {"kind": value.kind, "irreps": str(value.irreps), "span": plain(value.span),
                        "producer": value.producer, "readers": value.readers, "domain": value.domain}
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [plain(v) for v in value]
            return value
        data = nx.node_link_data(self.graph, edges="edges")
        return plain(data)

    def __repr__(self) -> str:
        return f"<Diagram {self.name} ({self.group_name}): {len(self.vertices())} vertices>"

    def _repr_svg_(self):
        return Diagram.svg_renderer(self) if Diagram.svg_renderer is not None else None

    # render.py installs its to_svg here when the package is imported, so that Jupyter draws a
    # diagram while the IR never imports its renderer (imports go downward only).
    svg_renderer = None


def dump_ir(diagrams: list[Diagram]) -> str:
    return json.dumps([d.to_json() for d in diagrams], indent=2, sort_keys=True)


def weight_mode(data: dict, diagram: Diagram) -> str:
    """The effective weight mode of a vertex (docs/language.md section 4 defaults)."""
    if data["kind"] == "linear":
        return "linear"
    if data["kind"] in ("split", "gather", "scatter") or data.get("per_path"):
        return "none"
    if data["weights"]:
        return data["weights"]
    wires = data["inputs"] + data["outputs"]
    all_single = all(t.mul == 1 for w in wires for t in diagram.irreps(w))
    return "none" if all_single else "uvw"


@dataclass(frozen=True, eq=False)
class Vertex:
    """One operation of a checked diagram, typed: what the stages after the checker read.

    The weight mode is resolved (the defaults of docs/language.md section 4 applied), the irreps of
    the arguments and results are at hand, and the paths and the weight layout are computed once,
    on first use."""

    node: str
    kind: str                         # one of OPERATIONS
    index: int                        # written order
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    group: Group
    in_irreps: tuple[Irreps, ...]
    out_irreps: tuple[Irreps, ...]
    mode: str                         # "uvw" | "uvu" | "uuu" | "none" | "linear"
    external: bool
    symmetric: bool
    per_path: bool                    # `paths=separate`: each path its own block of the output
    endpoint: str | None              # gather / scatter: "sender" | "receiver"
    span: Span | None
    call_span: Span | None

    @classmethod
    def of(cls, diagram: Diagram, node: str) -> "Vertex":
        data = diagram.graph.nodes[node]
        return cls(node=node, kind=data["kind"], index=data["index"], inputs=tuple(data["inputs"]),
                   outputs=tuple(data["outputs"]), group=diagram.group,
                   in_irreps=tuple(diagram.irreps(w) for w in data["inputs"]),
                   out_irreps=tuple(diagram.irreps(w) for w in data["outputs"]),
                   mode=weight_mode(data, diagram), external=bool(data.get("external")),
                   symmetric=bool(data.get("symmetric")), per_path=bool(data.get("per_path")),
                   endpoint=data.get("endpoint"),
                   span=data.get("span"), call_span=data.get("call_span"))

    @cached_property
    def _wiring(self) -> tuple[tuple[Path, ...], tuple[Irreps, ...]]:
        if self.kind in ("gather", "scatter"):
            return (), self.out_irreps
        paths, outs = vertex_wiring(self.group, {"kind": self.kind, "per_path": self.per_path},
                                    list(self.in_irreps), list(self.out_irreps))
        return tuple(paths), tuple(outs)

    @property
    def paths(self) -> tuple[Path, ...]:
        """Every admissible path (symmetry/paths.py); none for gather and scatter."""
        return self._wiring[0]

    @property
    def path_out_irreps(self) -> tuple[Irreps, ...]:
        """The output irreps the paths index: the wires', or for `paths=separate` the per-path blocks."""
        return self._wiring[1]

    @cached_property
    def weight_shapes(self) -> tuple[tuple[int, ...], ...]:
        """The shape of each path's weights, in the flat (e3nn) order; () for a path without weights."""
        ins, out = self.in_irreps, self.path_out_irreps[0] if self.path_out_irreps else None
        return tuple(path_weight_shape(self.mode, [ins[r][t].mul for r, t in enumerate(p.ins)],
                                       out[p.outs[0]].mul if out is not None else 0) for p in self.paths)

    @property
    def weight_numel(self) -> int:
        """The weights of all paths (a symmetric fuse's unreduced ones)."""
        return sum(weight_numel(s) for s in self.weight_shapes)


def rebuild(diagram: Diagram, vertices: list[dict], new_wires: list[Wire] = ()) -> Diagram:
    """An equivalent diagram with other vertices (the planner's rewrites, e.g. a `linear` moved across
    a `gather`): vertices are node-data dicts (kind, inputs, outputs, ... as lowering makes them), in
    evaluation order; new_wires are the internal wires they introduce.  Inputs, outputs and every
    other wire keep their names and irreps; producers, readers and edges are derived afresh."""
    g = nx.MultiDiGraph(**{k: v for k, v in diagram.graph.graph.items() if k != "wires"})
    wires: dict[str, Wire] = {}
    for name, w in list(diagram.wires.items()) + [(w.name, w) for w in new_wires]:
        wires[name] = Wire(name, w.kind, w.irreps, w.span, resolved=w.resolved, declared_domain=w.declared_domain,
                           domain_span=w.domain_span, domain=w.domain, produced_domain=w.produced_domain)
    g.graph["wires"] = wires
    for node, data in diagram.graph.nodes(data=True):
        if data["kind"] in ("input", "output"):
            g.add_node(node, **data)
            if data["kind"] == "input":
                wires[data["wire"]].producer = node
    for index, data in enumerate(vertices):
        node = f"v{index}"
        g.add_node(node, **dict(data, index=index))
        for w in data["outputs"]:
            wires[w].producer = node
    for node, data in list(g.nodes(data=True)):
        if data["kind"] not in OPERATIONS:
            continue
        for port, arg in enumerate(data["inputs"]):
            wire = wires[arg]
            wire.readers.append(node)
            src_port = g.nodes[wire.producer].get("outputs", [arg]).index(arg)
            g.add_edge(wire.producer, node, key=f"{arg}@{port}", wire=arg, irreps=wire.irreps,
                       src_port=src_port, dst_port=port)
    for name in g.graph["outputs"]:
        wire = wires[name]
        g.add_edge(wire.producer, f"out:{name}", key=f"{name}@0", wire=name, irreps=wire.irreps,
                   src_port=g.nodes[wire.producer].get("outputs", [name]).index(name), dst_port=0)
    return Diagram(g)


# ----------------------------------------------------------------------------- the spec check


def verify_ir(diagram: Diagram, checked: bool = True) -> None:
    """Raise InternalError listing every way `diagram` breaks the schema above (a broken IR is a bug,
    never the user's fault).  checked: the diagram passed check.py without errors, so every wire is
    produced, the dataflow is acyclic, and a graph diagram's wires all have a domain.  Runs between
    the passes in debug mode (debug_verify) and in the tests.  (A closed network may have cycles.)"""
    problems = _ir_problems(diagram, checked)
    if problems:
        raise InternalError(f"diagram {diagram.graph.graph.get('name')!r} breaks the IR spec: " + "; ".join(problems))


def debug_verify(diagrams, stage: str, checked: bool = True) -> None:
    """verify_ir on each diagram after `stage` when FUSIONLANG_DEBUG=1 (the test suite sets it)."""
    if os.environ.get("FUSIONLANG_DEBUG") != "1":
        return
    for d in diagrams:
        try:
            verify_ir(d, checked)
        except InternalError as exc:
            raise InternalError(f"after {stage}: {exc}") from None


def _ir_problems(diagram: Diagram, checked: bool) -> list[str]:
    attrs = diagram.graph.graph
    missing = [key for key in ("name", "group", "inputs", "outputs", "wires", "span") if key not in attrs]
    if missing:
        return [f"graph attribute `{key}` is missing" for key in missing]
    out = _terminal_problems(diagram)
    vertices = [(n, d) for n, d in diagram.graph.nodes(data=True) if d.get("kind") in OPERATIONS]
    if sorted(d.get("index") for _, d in vertices) != list(range(len(vertices))):
        out.append("vertex indices are not 0..n-1 in written order")
    for node, data in vertices:
        out += _vertex_problems(diagram, node, data, checked)
    return out + _wire_problems(diagram, checked)


def _terminal_problems(diagram: Diagram) -> list[str]:
    """The group, the wire table, and a node per input and output."""
    g, attrs, out = diagram.graph, diagram.graph.graph, []
    if attrs["group"] not in GROUPS:
        out.append(f"unknown group {attrs['group']!r}")
    for name, w in attrs["wires"].items():
        if not isinstance(w, Wire) or w.name != name:
            out.append(f"wire entry `{name}` is not a Wire of that name")
        elif not isinstance(w.irreps, Irreps):
            out.append(f"wire `{name}` has no Irreps")
    for end, kind, prefix in (("inputs", "input", "in"), ("outputs", "output", "out")):
        for name in attrs[end]:
            data = g.nodes.get(f"{prefix}:{name}")
            if name not in attrs["wires"]:
                out.append(f"{kind} `{name}` is not a wire")
            if data is None or data.get("kind") != kind or data.get("wire") != name:
                out.append(f"node `{prefix}:{name}` for {kind} `{name}` is missing or wrong")
    others = [n for n, d in g.nodes(data=True) if d.get("kind") not in OPERATIONS + ("input", "output")]
    if others:
        out.append(f"nodes of no known kind: {sorted(others)}")
    return out


def _vertex_problems(diagram: Diagram, node: str, d: dict, checked: bool) -> list[str]:
    """One vertex: its wires exist, it produces its outputs, one edge per argument from the producer."""
    wires, out = diagram.wires, []
    if any(key not in d for key in ("inputs", "outputs")):
        return [f"vertex `{node}` has no `inputs` or no `outputs`"]
    unknown = [w for w in d["inputs"] + d["outputs"] if w not in wires]
    if unknown:
        return [f"vertex `{node}` names unknown wires {unknown}"]
    for w in d["outputs"]:
        if wires[w].producer != node:
            out.append(f"wire `{w}` is an output of `{node}` but its producer is {wires[w].producer!r}")
    if d["kind"] in ("gather", "scatter") and d.get("endpoint") not in ENDPOINTS:
        out.append(f"{d['kind']} `{node}` has no endpoint")
    if d["kind"] == "fuse" and "weights" in d and weight_mode(d, diagram) not in WEIGHT_MODES:
        out.append(f"vertex `{node}` has weight mode {weight_mode(d, diagram)!r}")
    ports = {e.get("dst_port"): (u, key, e) for u, _, key, e in diagram.graph.in_edges(node, keys=True, data=True)}
    for port, w in enumerate(d["inputs"]):
        if port not in ports:
            if checked or wires[w].producer is not None:
                out.append(f"argument {port} (`{w}`) of `{node}` has no edge")
            continue
        u, key, e = ports.pop(port)
        if e.get("wire") != w or key != f"{w}@{port}" or u != wires[w].producer:
            out.append(f"the edge into argument {port} of `{node}` does not carry `{w}` from its producer")
        elif e.get("irreps") != wires[w].irreps:
            out.append(f"the edge of `{w}` into `{node}` has irreps {e.get('irreps')} instead of {wires[w].irreps}")
    if ports:
        out.append(f"`{node}` has edges into ports it does not have: {sorted(ports, key=str)}")
    return out


def _wire_problems(diagram: Diagram, checked: bool) -> list[str]:
    """Producers exist; in a checked diagram what is read is produced, open dataflow is acyclic, domains set."""
    g, out = diagram.graph, []
    for name, w in diagram.wires.items():
        if w.producer is not None and w.producer not in g:
            out.append(f"wire `{name}` names a producer `{w.producer}` that is not a node")
        # (The planner's rewrites may leave a wire that nothing reads any more: dead, not broken.)
        if checked and w.producer is None and (w.readers or name in diagram.outputs):
            out.append(f"wire `{name}` is read but never produced")
    if checked and not diagram.is_closed and not nx.is_directed_acyclic_graph(g):
        out.append("the dataflow of an open diagram has a cycle")
    if checked and diagram.is_graph:
        missing = sorted(n for n, w in diagram.wires.items() if w.domain not in DOMAINS)
        if missing:
            out.append(f"wires without a domain in a graph diagram: {missing}")
    return out
