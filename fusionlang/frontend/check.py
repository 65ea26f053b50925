"""Semantic checks on lowered diagrams: selection rules, multiplicities, dataflow.

A pure function from diagrams to diagnostics; see docs/language.md section 5 and
docs/diagnostics.md for every code.
"""
from __future__ import annotations

import functools

import networkx as nx

from ..cost.budget import (EDGES_PER_NODE, MAX_FUSE_INPUTS, PLAN_BATCH, UNITS_PER_LABELING, Cost, Limits, fuse_census,
                     vertex_cost)
from ..diagnostics import Diagnostic
from ..ir import Diagram, weight_mode
from ..symmetry.groups import MAX_TWO_J, Irreps
from ..symmetry.paths import MAX_PATHS, TooManyPaths, merged, separate_paths, vertex_paths
from ..symmetry.symmetric import symmetric_basis

# The checker enumerates a vertex's term combinations; this bounds that work before
# any path is built (a wire has at most ir.MAX_TERMS terms).  See docs/limits.md.
MAX_TERM_COMBINATIONS = 200_000


def check(diagrams: list[Diagram], file: str = "<input>", limits: Limits | None = None) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    usage = _Usage(Limits.of(limits))
    for diagram in diagrams:
        out.extend(_Checker(diagram, file, usage).run())
    for name, (first, more) in usage.reported.items():
        if more:
            first.notes.append((f"{more:,} more {'vertex' if more == 1 else 'vertices'} after it would go over this limit too "
                                "(reported once per file)", None))
    return out


class _Usage:
    """What a compile of the file would allocate and compute so far (budget.py), against the limits."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.weights = self.constants = self.literals = self.work = self.check_work = 0
        # A limit of the file, once gone over, is reported at the first vertex only (with a count).
        self.reported: dict[str, list] = {}


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
        if d.is_graph:
            self.domains()
        self.unused()
        return self.diagnostics

    # -- one vertex -------------------------------------------------------------

    def vertex(self, node: str, data: dict) -> None:
        d, g = self.d, self.d.group
        ins = [d.irreps(w) for w in data["inputs"]]
        outs = [d.irreps(w) for w in data["outputs"]]
        span = data["call_span"]
        if data["kind"] in ("gather", "scatter"):
            self.moved_irreps(data, ins[0], outs[0], span)
            self.moved_budget(data, outs[0], span)
            return
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
            if data.get("per_path"):
                self.per_path(data, ins, outs[0], span)
                return
            paths = _paths(g, data["kind"], tuple(ins), tuple(outs))
        except TooManyPaths:
            self.error("F054", f"this vertex has more than {MAX_PATHS:,} paths, the limit for one vertex", span,
                       "use fewer irreps per wire, or fuse in smaller steps")
            return
        kind = data["kind"]
        errors_before = len(self.diagnostics)
        if data.get("symmetric") and not self.symmetric_allowed(data):
            return
        if kind == "linear":
            if self.linear(data, ins[0], outs[0], paths, span):
                self.budget(data, ins, outs, paths, span)
            return
        if kind == "fuse":
            names = " x ".join(f"({_sum(w.irreps)})" if len(w) > 1 else str(w[0].irrep) for w in ins)
            if not paths:
                reachable = self.fuse_reachable(ins)
                self.error("F050", f"no admissible path: {names} gives {_sum(reachable)}, "
                           f"and `{data['outputs'][0]}` has only {_sum(outs[0].irreps)}", span,
                           f"declare `{data['outputs'][0]}` with irreps from {_sum(reachable)}")
                return
            reached = {outs[0][p.outs[0]].irrep for p in paths}
            missing = [t.irrep for t in outs[0] if t.irrep not in reached]
            if missing:
                reachable = self.fuse_reachable(ins)
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
        if self.multiplicities(data, ins, outs, paths, span) and kind == "fuse":
            if data.get("symmetric"):
                self.symmetric_reachable(data, ins, outs[0], paths, span)
            if len(self.diagnostics) == errors_before:
                self.default_mode(data, ins, outs, paths)
                self.budget(data, ins, outs, paths, span)

    def per_path(self, data, ins, out: Irreps, span) -> None:
        """`paths=separate`: the declared output must have the layout of the blocks of the paths into
        its irreps (F085); paths into other irreps are left out, as e3nn's filter_ir_out does."""
        paths, blocks = separate_paths(self.d.group, ins, set(out.irreps))
        if not paths or merged(blocks) != merged(out):
            every = merged(separate_paths(self.d.group, ins)[1])

            def bare(irreps):
                return " + ".join(str(t.irrep) if t.mul == 1 else str(t) for t in irreps) or "nothing"
            want = bare(merged(blocks) if paths else every)
            name = data["outputs"][0]
            wire = self.d.wires[name]
            found = (f"the paths of this `paths=separate` fuse into its irreps give {want} (dim {blocks.dim})"
                     if paths else f"no path of this `paths=separate` fuse reaches its irreps; its paths give "
                     f"{want} (dim {every.dim})")
            self.error("F085", f"`{name}` is declared {bare(out)} (dim {out.dim}), but {found}", span,
                       f"declare `{wire.kind} {name} : {want}`" +
                       (f" (every path kept: `{bare(every)}`)" if paths and merged(blocks) != every else ""))
            self.diagnostics[-1].notes.append((f"`{name}` is declared here", wire.span))
            return
        self.budget(data, ins, [blocks], paths, span)

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
        # Graph diagrams are planned for V = PLAN_BATCH nodes and E = EDGES_PER_NODE * V edges, and
        # rewritten as a whole (plan.plan_graph); symmetric fuses are planned over their basis
        # functions, at most as many as the paths.  For both, the bounds are the answer.
        edge = self.d.is_graph and self.d.domain(data["outputs"][0]) == "edge"
        batch = PLAN_BATCH * (EDGES_PER_NODE if edge else 1)
        bounds_only = self.d.is_graph or bool(data.get("symmetric"))
        room = Cost(limits.weights - usage.weights, limits.constants - usage.constants,
                    limits.intermediates - self.intermediates, limits.work - usage.work - self.census_work,
                    limits.check_work - usage.check_work - self.census_work, literals=limits.literals - usage.literals)
        cost = vertex_cost(self.d.group, data["kind"], mode, data["external"], ins, outs, paths, limits, room,
                           batch, bounds_only)
        cost.work += self.census_work
        cost.check_work += self.census_work
        self.census_work = 0
        fixes = {
            "weights": None,        # worked out only for the message
            "constants": "use fewer irreps terms per wire, or fuse in smaller steps",
            "literals": "use fewer or smaller irreps, or fuse in smaller steps",
            "work": "use fewer irreps terms per wire, or fuse in smaller steps",
            "check_work": "split the file, or use fewer irreps terms per wire",
        }
        for name in ("check_work", "weights", "constants", "literals", "work"):
            amount, before = getattr(cost, name), getattr(usage, name)
            if before + amount > getattr(limits, name):
                fix = fixes[name] or self.weights_help(data, ins, outs, paths, mode)
                self.over(name, amount, before, span, fix, mode, cost.exact)
                return
        if self.intermediates + cost.intermediates > limits.intermediates:
            self.over("intermediates", cost.intermediates, self.intermediates, span,
                      "use fewer channels, or fuse in smaller steps", mode, cost.exact)
            return
        for name in ("weights", "constants", "literals", "work", "check_work"):
            setattr(usage, name, getattr(usage, name) + getattr(cost, name))
        self.intermediates += cost.intermediates

    def moved_budget(self, data, out: Irreps, span) -> None:
        """A gather writes [E, dim], a scatter [V, dim]: the diagram's intermediates at the planning batch."""
        rows = PLAN_BATCH * (EDGES_PER_NODE if data["kind"] == "gather" else 1)
        amount = rows * out.dim
        if self.intermediates + amount > self.usage.limits.intermediates:
            self.over("intermediates", amount, self.intermediates, span,
                      "use fewer channels on the wires that move between nodes and edges")
        else:
            self.intermediates += amount

    def over(self, name: str, amount: int, before: int, span, fix: str, mode: str = "", exact: bool = True) -> None:
        """An F056 error: the vertex needs `amount`, the file (or diagram) already `before`."""
        limit = getattr(self.usage.limits, name)
        if name != "intermediates" and name in self.usage.reported:
            self.usage.reported[name][1] += 1
            return
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
        if name != "intermediates":
            self.usage.reported[name] = [self.diagnostics[-1], 0]

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

    def symmetric_allowed(self, data) -> bool:
        """`symmetric` (docs/language.md section 10): one wire read by every input, and uuu weights."""
        first = data["inputs"][0]
        for k, (name, arg_span) in enumerate(zip(data["inputs"], data["arg_spans"])):
            if name != first:
                self.error("F080", f"`symmetric` needs every input of the fuse to be the same wire, but input "
                           f"{k + 1} is `{name}`, not `{first}`", arg_span,
                           f"write `fuse({', '.join([first] * len(data['inputs']))})`, or remove `symmetric`: "
                           "the inputs of a symmetric fuse are interchangeable")
                self.diagnostics[-1].notes.append((f"the first input is `{first}`", data["arg_spans"][0]))
                return False
        mode = weight_mode(data, self.d)
        if mode != "uuu":
            how = f"`weights={mode}`" + (" (the default here)" if data["weights"] is None else "")
            self.error("F081", f"`symmetric` needs `weights=uuu`, not {how}",
                       data.get("symmetric_span") or data["call_span"],
                       "write `[weights=uuu, symmetric]`: the symmetric basis replaces the per-channel weights "
                       "of each complete path")
            return False
        return True

    def symmetric_reachable(self, data, ins, out: Irreps, paths, span) -> None:
        """An output irrep that the symmetric power Sym^n of one channel lacks gets only zero functions."""
        n = len(ins)
        reached = {out[p.outs[0]].irrep for p in paths}     # the others have F051 already
        missing = [t.irrep for t in out if t.irrep in reached
                   and symmetric_basis(self.d.group_name, ins[0].irreps, n, t.irrep).rank == 0]
        if missing:
            missing = list(dict.fromkeys(missing))
            self.error("F082", f"output irrep{'s' * (len(missing) > 1)} {_sum(missing)} of `{data['outputs'][0]}` "
                       f"cannot be reached by a symmetric fuse: the symmetric power Sym^{n} of "
                       f"({_sum(ins[0].irreps)}) has no {_sum(missing)}", span,
                       f"remove {_sum(missing)} from `{data['outputs'][0]}`: with one wire on every input, each path "
                       "into it gives the zero function")

    def moved_irreps(self, data, src: Irreps, dst: Irreps, span) -> None:
        """gather / scatter move values between nodes and edges: the irreps stay as they are."""
        if src != dst:
            op, (a,), (b,) = data["kind"], data["inputs"], data["outputs"]
            self.error("F078", f"`{op}` keeps the irreps of `{a}` ({src}), but `{b}` is declared {dst}", span,
                       f"declare `{b}` as {src}; to change irreps, use `linear` or `fuse` before or after the {op}")

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

    def multiplicities(self, data, ins, outs, paths, span) -> bool:
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

    # -- graph diagrams (docs/language.md section 9) -----------------------------------

    def domains(self) -> None:
        d = self.d
        if d.is_closed:
            where = next((w.domain_span for w in d.wires.values() if w.domain_span), None) or \
                next((data["call_span"] for _, data in d.vertices() if data["kind"] in ("gather", "scatter")), None)
            self.error("F077", "a closed diagram has no inputs, so it cannot live on a graph", where,
                       "remove `per node` / `per edge`, gather and scatter; a graph diagram has inputs and outputs")
            return
        for name in d.inputs + d.outputs:
            wire = d.wires[name]
            if wire.declared_domain is None and wire.domain_span is None and wire.resolved:
                place = "a node" if wire.domain == "node" else "an edge" if wire.domain == "edge" else "a node or an edge"
                self.error("F074", f"`{name}` has no domain, but `{d.name}` is a graph diagram "
                           "(it uses `per`, `gather` or `scatter`), where every input and output says where it lives",
                           wire.span, f"write `{wire.kind} {name} : {wire.irreps} per "
                           f"{wire.domain or 'node'}` ({place} wire)" if wire.domain
                           else f"add `per node` or `per edge` after its irreps")
        for node, data in d.vertices():
            kind, span = data["kind"], data["call_span"]
            wires = [d.wires[w] for w in data["inputs"]]
            if kind in ("gather", "scatter"):
                src = wires[0]
                want, other = ("node", "edge") if kind == "gather" else ("edge", "node")
                if src.domain == other:
                    code = "F071" if kind == "gather" else "F072"
                    help = (f"`{src.name}` already lives on the edges: read it directly, or sum it into the nodes "
                            f"with `scatter({src.name}, receiver)`" if kind == "gather" else
                            f"`{src.name}` already lives on the nodes: read it directly, or read it on the edges "
                            f"with `gather({src.name}, sender)`")
                    self.error(code, f"`{kind}` reads {want} wires, but `{src.name}` is per {other}",
                               data["arg_spans"][0], help)
                continue
            known = [(w, s) for w, s in zip(wires, data["arg_spans"]) if w.domain is not None]
            if len({w.domain for w, _ in known}) > 1:
                # Blame the node wires: the usual intent is an edge vertex that reads a node's features.
                node_wire, where = next((w, s) for w, s in known if w.domain == "node")
                edges = next(w.name for w, _ in known if w.domain == "edge")
                self.error("F070", f"`{kind}` reads `{node_wire.name}` per node and `{edges}` per edge: "
                           "a vertex reads wires of one domain", where,
                           f"read `{node_wire.name}` on the edges first: `wire {node_wire.name}_sender : "
                           f"{node_wire.irreps} per edge = gather({node_wire.name}, sender)` (or `receiver`), "
                           f"and use `{node_wire.name}_sender` here; or sum `{edges}` into the nodes with "
                           f"`scatter({edges}, receiver)`")
        for name, wire in d.wires.items():
            if wire.declared_domain and wire.produced_domain and wire.declared_domain != wire.produced_domain:
                data = d.graph.nodes[wire.producer]
                why = {"gather": "`gather` produces an edge wire", "scatter": "`scatter` produces a node wire"}.get(
                    data["kind"], f"`{data['kind']}` reads {wire.produced_domain} wires, so it produces one")
                self.error("F073", f"`{name}` is declared per {wire.declared_domain}, but {why}", wire.domain_span,
                           f"write `per {wire.produced_domain}`")

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
