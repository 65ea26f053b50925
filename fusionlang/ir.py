"""The Diagram IR: a networkx MultiDiGraph per diagram (frontend/lower.py builds it from the AST).

Schema (also in docs/ir.md):

graph attributes
    name      diagram name              group    "O3" | "SO3" | "SU2"
    inputs    in-wire names, in order   outputs  out-wire names, in order
    wires     {name: Wire}              span     the diagram's Span
    graph     True for a graph diagram (a wire declared `per node` / `per edge`, or a gather / scatter);
              each Wire then has a domain, "node" or "edge" (LANGUAGE.md section 9)
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
from dataclasses import dataclass, field

import networkx as nx

from .diagnostics import Span
from .symmetry.groups import GROUPS, Irreps

OPERATIONS = ("fuse", "split", "linear", "gather", "scatter")
DOMAINS = ("node", "edge")               # `per node` / `per edge` (graph diagrams, LANGUAGE.md section 9)
ENDPOINTS = ("sender", "receiver")       # gather(x, sender) / scatter(m, receiver)


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
    """The effective weight mode of a vertex (LANGUAGE.md section 4 defaults)."""
    if data["kind"] == "linear":
        return "linear"
    if data["kind"] in ("split", "gather", "scatter") or data.get("per_path"):
        return "none"
    if data["weights"]:
        return data["weights"]
    wires = data["inputs"] + data["outputs"]
    all_single = all(t.mul == 1 for w in wires for t in diagram.irreps(w))
    return "none" if all_single else "uvw"


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
