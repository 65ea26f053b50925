"""Semantic checks on lowered diagrams: selection rules, multiplicities, dataflow.

A pure function from diagrams to diagnostics; see LANGUAGE.md section 5 and
docs/diagnostics.md for every code.
"""
from __future__ import annotations

import functools

import networkx as nx

from .budget import MAX_FUSE_INPUTS, PLAN_BATCH, UNITS_PER_LABELING, Cost, Limits, fuse_census, vertex_cost
from .diagnostics import Diagnostic
from .groups import MAX_TWO_J, Irreps
from .ir import Diagram
from .paths import MAX_PATHS, TooManyPaths, vertex_paths

# The checker enumerates a vertex's term combinations; this bounds that work before
# any path is built (a wire has at most ir.MAX_TERMS terms).  See docs/limits.md.
MAX_TERM_COMBINATIONS = 200_000


def weight_mode(data: dict, diagram: Diagram) -> str:
    """The effective weight mode of a vertex (LANGUAGE.md section 4 defaults)."""
    if data["kind"] == "linear":
        return "linear"
    if data["kind"] == "split":
        return "none"
    if data["weights"]:
        return data["weights"]
    wires = data["inputs"] + data["outputs"]
    all_single = all(t.mul == 1 for w in wires for t in diagram.irreps(w))
    return "none" if all_single else "uvw"


def check(diagrams: list[Diagram], file: str = "<input>", limits: Limits | None = None) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    usage = _Usage(Limits.of(limits))
    for diagram in diagrams:
        out.extend(_Checker(diagram, file, usage).run())
    return out


class _Usage:
    """What a compile of the file would allocate and compute so far (budget.py), against the limits."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.weights = self.constants = self.literals = self.work = self.check_work = 0


@functools.lru_cache(maxsize=4096)
def _paths(group, kind: str, ins: tuple, outs: tuple):
    """paths.vertex_paths, once per distinct vertex (files repeat their blocks)."""
    return vertex_paths(group, kind, list(ins), list(outs))


def _product(values) -> int:
    out = 1
    for v in values:
        out *= v
    return out


def _mode_weights(mode: str, in_muls: list[int]) -> int:
    """Weights of one path in a mode without an output channel (uvu, uuu, none)."""
    return {"uvu": _product(in_muls), "uuu": in_muls[0]}.get(mode, 0)


def _sum(irreps: list) -> str:
    return " + ".join(str(i) for i in irreps) if irreps else "nothing"


class _Checker:
    def __init__(self, diagram: Diagram, file: str, usage: _Usage | None = None):
        self.d = diagram
        self.file = file
        self.diagnostics: list[Diagnostic] = []
        self.usage = usage or _Usage(Limits())
        self.intermediates = 0          # of this diagram's forward, at the planning batch
        self.census_work = 0            # of the fuse being checked, until its budget is taken

    def error(self, code, message, span, help=None, severity="error"):
        self.diagnostics.append(Diagnostic(code, message, span, help, severity, self.file))

    def run(self) -> list[Diagnostic]:
        d = self.d
        for node, data in d.vertices():
            wires = [d.wires[w] for w in data["inputs"] + data["outputs"]]
            if all(w.resolved and w.producer is not None for w in wires):
                self.vertex(node, data)
        self.dataflow()
        self.unused()
        return self.diagnostics

    # -- one vertex -------------------------------------------------------------

    def vertex(self, node: str, data: dict) -> None:
        d, g = self.d, self.d.group
        ins = [d.irreps(w) for w in data["inputs"]]
        outs = [d.irreps(w) for w in data["outputs"]]
        span = data["call_span"]
        combinations = 1
        for w in ins + outs:
            combinations *= max(1, len(w))
        if combinations > MAX_TERM_COMBINATIONS:
            self.error("F054", f"this vertex's {len(ins + outs)} wires have {' x '.join(str(len(w)) for w in ins + outs)} "
                       f"irreps terms: "
                       f"{combinations:,} combinations, over the limit of {MAX_TERM_COMBINATIONS:,}", span,
                       "use fewer terms per wire (write `16x0e`, not `0e + 0e + ...`), or fuse in smaller steps")
            return
        if data["kind"] == "fuse" and not self.fuse_bounds(ins, outs[0], span):
            return
        try:
            paths = _paths(g, data["kind"], tuple(ins), tuple(outs))
        except TooManyPaths:
            self.error("F054", f"this vertex has more than {MAX_PATHS:,} paths, the limit for one vertex", span,
                       "use fewer irreps per wire, or fuse in smaller steps")
            return
        kind = data["kind"]
        errors_before = len(self.diagnostics)
        if kind == "linear":
            if self.linear(data, ins[0], outs[0], paths, span):
                self.budget(data, ins, outs, paths, span)
            return
        if kind == "fuse":
            reachable = self.fuse_reachable(ins)
            names = " x ".join(f"({_sum(w.irreps)})" if len(w) > 1 else str(w[0].irrep) for w in ins)
            if not paths:
                self.error("F050", f"no admissible path: {names} gives {_sum(reachable)}, "
                           f"and `{data['outputs'][0]}` has only {_sum(outs[0].irreps)}", span,
                           f"declare `{data['outputs'][0]}` with irreps from {_sum(reachable)}")
                return
            reached = {outs[0][p.outs[0]].irrep for p in paths}
            missing = [t.irrep for t in outs[0] if t.irrep not in reached]
            if missing:
                self.error("F051", f"output irrep{'s' * (len(missing) > 1)} {_sum(missing)} of `{data['outputs'][0]}` "
                           f"cannot be reached: "
                           f"{names} gives {_sum(reachable)}", span,
                           f"remove {_sum(missing)} from `{data['outputs'][0]}`, or add inputs that reach it")
        else:
            if not paths:
                a, b = outs
                self.error("F050", f"no admissible path: `{data['inputs'][0]}` ({_sum(ins[0].irreps)}) cannot split "
                           f"into {_sum(a.irreps)} and {_sum(b.irreps)}", span,
                           "each irrep of the source must occur in a product of the two outputs")
                return
            for w, irreps, side in zip(data["outputs"], outs, (0, 1)):
                reached = {irreps[p.outs[side]].irrep for p in paths}
                missing = [t.irrep for t in irreps if t.irrep not in reached]
                if missing:
                    self.error("F051", f"irreps {_sum(missing)} of `{w}` cannot be reached by this split", span,
                               f"remove {_sum(missing)} from `{w}`")
        if self.multiplicities(data, ins, outs, paths, span) and kind == "fuse" \
                and len(self.diagnostics) == errors_before:
            self.default_mode(data, ins, outs, paths)
            self.budget(data, ins, outs, paths, span)

    # -- what a compile would allocate (budget.py) --------------------------------

    def fuse_bounds(self, ins: list[Irreps], out: Irreps, span) -> bool:
        """Before any path is enumerated: the number of inputs, paths, inner irreps and the work of
        enumerating them, counted (budget.fuse_census).  False after reporting an error."""
        if len(ins) > MAX_FUSE_INPUTS:
            self.error("F054", f"this fuse has {len(ins)} inputs; the limit is {MAX_FUSE_INPUTS}", span,
                       "fuse in steps: name partial products with `wire` declarations")
            return False
        census = fuse_census(self.d.group, ins, out)
        self.census_work = census.steps * UNITS_PER_LABELING
        for name in ("check_work", "work"):
            if getattr(self.usage, name) + self.census_work > getattr(self.usage.limits, name):
                self.over(name, self.census_work, getattr(self.usage, name), span,
                          "fuse in steps: name partial products with `wire` declarations, so each fuse has "
                          "fewer inputs")
                return False
        if census.paths > MAX_PATHS:
            self.error("F054", f"this vertex has {census.paths:,} paths; the limit for one vertex is {MAX_PATHS:,}",
                       span, "use fewer irreps per wire, or fuse in smaller steps")
            return False
        if census.inner_beyond is not None:
            inner = census.inner_beyond
            spin = f"l = {inner.two_j // 2}" if inner.two_j % 2 == 0 else f"j = {inner.two_j}/2"
            self.error("F055", f"a coupling tree of this fuse passes through the irrep {inner} ({spin}), beyond the "
                       f"limit l, j <= {MAX_TWO_J // 2} of the coupling coefficients", span,
                       "fuse in steps, declaring the partial product with only the irreps you need "
                       "(`wire t : ...` and `t = fuse(a, b)`), or remove the output irreps reached through it")
            return False
        return True

    def budget(self, data, ins, outs, paths, span) -> None:
        """Weights, constants, planning work and intermediates of the vertex, against the limits."""
        mode = weight_mode(data, self.d)
        usage, limits = self.usage, self.usage.limits
        room = Cost(limits.weights - usage.weights, limits.constants - usage.constants,
                    limits.intermediates - self.intermediates, limits.work - usage.work - self.census_work,
                    limits.check_work - usage.check_work - self.census_work, literals=limits.literals - usage.literals)
        cost = vertex_cost(self.d.group, data["kind"], mode, data["external"], ins, outs, paths, limits, room)
        cost.work += self.census_work
        cost.check_work += self.census_work
        self.census_work = 0
        fixes = {
            "weights": self.weights_help(data, ins, outs, paths, mode),
            "constants": "use fewer irreps terms per wire, or fuse in smaller steps",
            "literals": "use fewer or smaller irreps, or fuse in smaller steps",
            "work": "use fewer irreps terms per wire, or fuse in smaller steps",
            "check_work": "split the file, or use fewer irreps terms per wire",
        }
        for name in ("check_work", "weights", "constants", "literals", "work"):
            amount, before = getattr(cost, name), getattr(usage, name)
            if before + amount > getattr(limits, name):
                self.over(name, amount, before, span, fixes[name], mode, cost.exact)
                return
        if self.intermediates + cost.intermediates > limits.intermediates:
            self.over("intermediates", cost.intermediates, self.intermediates, span,
                      "use fewer channels, or fuse in smaller steps", mode, cost.exact)
            return
        for name in ("weights", "constants", "literals", "work", "check_work"):
            setattr(usage, name, getattr(usage, name) + getattr(cost, name))
        self.intermediates += cost.intermediates

    def over(self, name: str, amount: int, before: int, span, fix: str, mode: str = "", exact: bool = True) -> None:
        """An F056 error: the vertex needs `amount`, the file (or diagram) already `before`."""
        limit = getattr(self.usage.limits, name)
        scope = "one diagram" if name == "intermediates" else "one file"
        bound = "" if exact else "up to "
        what = {
            "weights": f"{amount:,} weights" + (f" (`weights={mode}`)" if mode else ""),
            "constants": f"{bound}{amount:,} elements of constant tensors (coupling coefficients, scatter and "
                         "index tensors) in the compiled module",
            "literals": f"{bound}{amount:,} numbers (nonzero coupling coefficients and index lists) written "
                        "out in the generated source",
            "work": f"about {amount:,} units of work to plan (a unit is about a microsecond)",
            "check_work": f"about {amount:,} units of work to check (a unit is about a microsecond)",
            "intermediates": f"{bound}{amount:,} elements of intermediate tensors in its forward at batch "
                             f"{PLAN_BATCH:,}",
        }[name]
        others = f" (with the {before:,} of the vertices before it: {before + amount:,})" if before else ""
        self.error("F056", f"this vertex needs {what}{others}; the limit `{name}` for {scope} is {limit:,}", span,
                   f"{fix}; or, if you mean it, raise the limit: "
                   f"{self.usage.limits.raise_hint(name, before + amount)}")

    def default_mode(self, data, ins, outs, paths) -> None:
        """F063: no mode written, the default rule gave `uvw`, but `none` fits the multiplicities too:
        two different maps, so say which one was chosen and how to write either."""
        if data["weights"] is not None or weight_mode(data, self.d) != "uvw" or \
                not self.mode_fits("none", ins, outs, paths):
            return
        count = sum(_product([ins[r][t].mul for r, t in enumerate(p.ins)]) * outs[0][p.outs[0]].mul for p in paths)
        self.error("F063", f"no weight mode given, so this fuse takes `weights=uvw`: {count:,} learned "
                   f"weight{'s' * (count != 1)}{' (external)' if data['external'] else ''}; its multiplicities "
                   "also fit `weights=none`, the plain coupling with no weights", data["call_span"],
                   "say which you mean: write `[weights=uvw]` to keep the learned weights, or `[weights=none]` "
                   "for the plain coupling", severity="warning")

    def weights_help(self, data, ins, outs, paths, mode) -> str:
        """Other weight modes the multiplicities allow, with their counts."""
        if data["kind"] != "fuse":
            return "use fewer channels"
        options = []
        for other in ("uvu", "uuu", "none"):
            if other == mode or not self.mode_fits(other, ins, outs, paths):
                continue
            count = sum(_mode_weights(other, [ins[r][t].mul for r, t in enumerate(p.ins)]) for p in paths)
            if data["external"] and other != "none" or self.usage.weights + count > self.usage.limits.weights:
                continue
            options.append(f"`weights={other}` ({count:,} weights)")
        return ("use " + " or ".join(options) + ", or fewer channels") if options else "use fewer channels"

    def mode_fits(self, mode, ins, outs, paths) -> bool:
        for p in paths:
            in_muls = [ins[r][t].mul for r, t in enumerate(p.ins)]
            out_mul = outs[0][p.outs[0]].mul
            if mode == "none" and out_mul != _product(in_muls):
                return False
            if mode == "uvu" and (out_mul != in_muls[0] or (len(in_muls) > 2 and any(m != 1 for m in in_muls[1:]))):
                return False
            if mode == "uuu" and len(set(in_muls + [out_mul])) != 1:
                return False
        return True

    def fuse_reachable(self, ins: list[Irreps]) -> list:
        g = self.d.group
        acc = set(ins[0].irreps)
        for w in ins[1:]:
            acc = {c for a in acc for b in set(w.irreps) for c in g.product(a, b)}
            if len(acc) > 200:
                break
        return sorted(acc)

    def linear(self, data, src: Irreps, dst: Irreps, paths, span) -> None:
        have = set(src.irreps)
        missing = [t.irrep for t in dst if t.irrep not in have]
        if missing:
            self.error("F053", f"`linear` cannot make {_sum(missing)}: `{data['inputs'][0]}` has only "
                       f"{_sum(sorted(have))}", span,
                       f"remove {_sum(missing)} from `{data['outputs'][0]}`; linear mixes channels within each irrep")
            return False
        return True

    def multiplicities(self, data, ins, outs, paths, span) -> None:
        mode = weight_mode(data, self.d)
        n = len(ins)
        for p in paths:
            if data["kind"] == "split":
                in_muls = [outs[0][p.outs[0]].mul, outs[1][p.outs[1]].mul]
                out_mul = ins[0][p.ins[0]].mul
            else:
                in_muls = [ins[i][p.ins[i]].mul for i in range(n)]
                out_mul = outs[0][p.outs[0]].mul
            product = 1
            for m in in_muls:
                product *= m
            rule = None
            out_name = data["outputs"][0]
            if mode == "none" and out_mul != product:
                rule = (f"with no weights the output multiplicity is the product of the inputs': "
                        f"{' x '.join(map(str, in_muls))} = {product}, not {out_mul}",
                        f"use multiplicity {product} on that irrep, or add weights: `[weights=uvw]`")
            elif mode == "uvu" and out_mul != in_muls[0]:
                rule = (f"`weights=uvu` keeps the first input's channels: `{out_name}` needs multiplicity "
                        f"{in_muls[0]} here, not {out_mul}",
                        f"declare that irrep of `{out_name}` with multiplicity {in_muls[0]}, "
                        "or use `weights=uvw` to mix channels freely")
            elif mode == "uvu" and n > 2 and any(m != 1 for m in in_muls[1:]):
                rule = ("n-ary `weights=uvu` needs multiplicity 1 on every input but the first "
                        f"(here {', '.join(map(str, in_muls))})",
                        "use `weights=uvw`, or give the other inputs multiplicity 1")
            elif mode == "uuu" and len(set(in_muls + [out_mul])) != 1:
                rule = (f"`weights=uuu` pairs channels one to one, so every multiplicity must be equal; "
                        f"here they are {' x '.join(map(str, in_muls))} -> {out_mul}",
                        "make the multiplicities equal, or use `weights=uvw` to mix channels freely")
            if rule:
                if data["kind"] == "split":
                    path = (f"{ins[0][p.ins[0]]} -> "
                            f"{' , '.join(str(outs[i][k]) for i, k in enumerate(p.outs))}")
                else:
                    path = f"{' x '.join(str(ins[i][p.ins[i]]) for i in range(n))} -> {outs[0][p.outs[0]]}"
                self.error("F052", rule[0], span, rule[1])
                self.diagnostics[-1].notes.append((f"on the path {path}", None))
                return False
        return True

    # -- the whole diagram ------------------------------------------------------

    def dataflow(self) -> None:
        d = self.d
        vertices = d.vertices()
        if d.is_closed:
            for name, wire in d.wires.items():
                if wire.producer is not None and len(wire.readers) > 1:
                    reads = [(data["index"], port, data["arg_spans"][port]) for node, data in vertices
                             for port, arg in enumerate(data["inputs"]) if arg == name]
                    reads.sort(key=lambda r: (r[2].start, r[0], r[1]) if r[2] else (r[0], r[1]))
                    self.error("F037", f"in a closed diagram each wire joins two vertices, but `{name}` is read "
                               f"{len(reads)} times", reads[1][2],
                               f"declare one wire per connection: `wire {name}2 : ...`, produced by its own vertex")
                    self.diagnostics[-1].notes.append(("first read here", reads[0][2]))
            for node, data in vertices:
                if data["external"]:
                    self.error("F043", "a closed diagram has no inputs, so its weights cannot be `external`",
                               data["call_span"], "remove `external`")
            return
        graph = nx.DiGraph((u, v) for u, v in d.graph.edges())
        graph.add_nodes_from(d.graph.nodes())
        if not nx.is_directed_acyclic_graph(graph):
            cycle = nx.find_cycle(graph)
            loop = [next(iter(d.graph.get_edge_data(u, v).values()))["wire"] for u, v in cycle]
            node = max((u for u, _ in cycle), key=lambda n: d.graph.nodes[n].get("index", -1))
            self.error("F038", f"this open diagram has a cycle: {' -> '.join(f'`{w}`' for w in loop + loop[:1])}",
                       d.graph.nodes[node]["call_span"],
                       "an open diagram computes its outputs from its inputs, so wires cannot loop back; "
                       "only a closed diagram (no `in`, no `out`) may loop")
        for node, data in vertices:
            if data["kind"] == "split":
                self.error("F039", "`split` is supported in closed diagrams only (in version 1)", data["call_span"],
                           "in an open diagram, couple with `fuse`; a split's two outputs are not independent values")

    def unused(self) -> None:
        d = self.d
        for name, wire in d.wires.items():
            if wire.kind == "out" or wire.readers or wire.read_by_invalid or not wire.resolved:
                continue
            if wire.kind == "in":
                self.error("F061", f"input `{name}` is never read", wire.span,
                           "remove it, or read it in a vertex", severity="warning")
            elif wire.producer is not None:
                self.error("F060", f"wire `{name}` is produced but never read", wire.span,
                           f"remove it, or declare it `out {name}`", severity="warning")
            else:
                self.error("F062", f"wire `{name}` is declared but never produced or read", wire.span,
                           "remove the declaration", severity="warning")
