"""The planner: paths, weights, normalisation and contraction order for every vertex.

A fuse vertex is evaluated as a few batched contractions instead of one per
path.  Each input wire is cut into *segments* (maximal runs of terms with one
multiplicity, viewed as ``[batch, mul, sum of irrep dims]``, or one term each),
and paths that read the same segments form one contraction::

    out[z, channels, k] = sum  x_1[z, u1, i1] ... x_n[z, un, in] K[i1..in, p, k] W[p, u.., w]

K stacks the paths' isometric coupling tensors (n-ary trees contracted ahead of
time, normalisation folded in) and W their weights; for uvu/uuu one contraction
may serve every output term through a 0/1 scatter matrix.  contract_order.py
finds each contraction's pairwise order under a CPU cost model, and the
grouping with the lowest total cost wins.

A binary uvu/uvw fuse whose second input has only multiplicity-1 terms may
instead take the operator form (OperatorBlock): three kernels per term of
the first input, whatever the number of paths.  See docs/planner.md.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from ..cost.contract_order import (BMM_FLOP_WEIGHT, COPY_WEIGHT, MULSUM_WEIGHT, WRITE_WEIGHT, Step, left_to_right,
                             order_for)
from ..ir import Diagram, Wire, debug_verify, rebuild, weight_mode
from ..symmetry.groups import Irreps
from ..symmetry.paths import Path, path_weight_shape, vertex_paths, vertex_wiring
from ..symmetry.paths import weight_numel as _numel
from ..symmetry.symmetric import vertex_bases
from ..symmetry.trees import coupling

PLAN_BATCH = 1024     # the batch size the contraction order is optimised for
# Graph diagrams are planned for V = batch nodes and E = EDGES_PER_NODE * V edges (a molecule with a
# 5 A cutoff has about 20 to 40 neighbours per atom).
EDGES_PER_NODE = 20
# What one more kernel call costs, in GEMM FLOPs, when choosing how to batch paths: about
# 5 microseconds of eager dispatch (Python, permutes, allocation) on a 2-core CPU.
OP_OVERHEAD_FLOPS = 300_000
# The operator form (OperatorBlock) writes a few large contiguous tensors where the pairwise plans
# write many small permuted ones; the cost model, calibrated on single kernels, misses that
# difference (allocation, page faults, permuted copies).  Its modelled cost is scaled by this
# factor, fitted on the grid of benchmarks/bench_operator.py (measured time ratios 0.4-1.2).
OPERATOR_COST_SCALE = 0.6
# The same for the symmetric pair form (SymmetricPairs): the model overestimates it 2.5-5x against the
# contractions (measured time ratios 0.2-0.4 where the model says 0.9-1.6, on four order-3 cases of
# docs/planner.md); 0.5 keeps a margin.
SYMMETRIC_PAIRS_COST_SCALE = 0.5


@dataclass(frozen=True, kw_only=True)
class Segment:
    wire: str
    index: int
    terms: tuple[int, ...]      # term indices of the wire, consecutive
    mul: int
    dim: int                    # sum of the terms' irrep dimensions
    start: int                  # offset of the first term in the flat wire
    end: int

    def offset(self, irreps: Irreps, term: int) -> int:
        """Where a term's irrep components start inside the segment's last axis."""
        return sum(irreps[t].irrep.dim for t in self.terms[: self.terms.index(term)])


def segments(wire: str, irreps: Irreps, by_term: bool = False) -> list[Segment]:
    """Maximal runs of equal multiplicity (or, with by_term, one segment per term)."""
    out, start, k = [], 0, 0
    while k < len(irreps):
        j = k
        while not by_term and j + 1 < len(irreps) and irreps[j + 1].mul == irreps[k].mul:
            j += 1
        terms = tuple(range(k, j + 1))
        size = sum(irreps[t].dim for t in terms)
        out.append(Segment(wire=wire, index=len(out), terms=terms, mul=irreps[k].mul,
                           dim=sum(irreps[t].irrep.dim for t in terms), start=start, end=start + size))
        start += size
        k = j + 1
    return out


def segment_of(segs: list[Segment], term: int) -> Segment:
    return next(s for s in segs if term in s.terms)


@dataclass
class Contraction:
    """All paths of one vertex that read the same segments and write the same output term."""
    out_term: int
    segments: list[Segment]
    equation: str                          # e.g. "zai,zbj,ijpk,pab->zak"
    constant: np.ndarray                   # K (float64), normalisation folded in
    weight_index: np.ndarray | None        # indices into the flat weight vector, or None
    weight_shape: tuple[int, ...] | None   # W's shape without the batch axis
    steps: list[Step] = field(default_factory=list)
    flops: int = 0
    paths: list[int] = field(default_factory=list)
    # A contraction that serves several output terms at once ends with a 0/1 scatter matrix and
    # returns [z, mul, O]; term out_terms[k] is the slice out_offsets[k]:out_offsets[k+1] of O.
    out_terms: tuple[int, ...] = ()
    out_offsets: tuple[int, ...] = ()
    scatter: np.ndarray | None = None
    written: int = 0                       # elements of all intermediates and the result
    cost: int = 0                          # the cost model's estimate (contract_order.py)
    # Graph diagrams, weights applied after the scatter (VertexPlan.weights_on_nodes): the equation is
    # cut in two, the part without the weights on the edges and the rest on the nodes, where
    # node_equation's first operand is the edge part's result summed into the nodes.
    edge_equation: str | None = None
    edge_steps: list[Step] = field(default_factory=list)
    edge_shape: tuple[int, ...] = ()       # the edge part's result without its row axis
    node_equation: str | None = None
    node_steps: list[Step] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class OutputGroup:
    """Output terms of one multiplicity, accumulated together as [z, rows, mul] (operator plans)."""
    mul: int
    terms: tuple[int, ...]
    offsets: tuple[int, ...]    # row where each term starts, then the total number of rows


@dataclass(kw_only=True)
class OperatorBlock:
    """The paths from one term of the first input into one output group, evaluated through the
    coupling operator of the second input, whose terms all have multiplicity 1 (e.g. sh(l)):

        Z[z, o, q]   = y[z, j] K[j, o, q]                       one GEMM, q = (path, i) or (i, path)
        xw[z, q, w]  = x[z, u, i] W[path, u]                     uvu: a broadcast multiply
                     = sum_u x[z, u, i] W[u, path, w]            uvw: one GEMM
        acc[z, o, w] += Z[z, o, q] xw[z, q, w]                   one batched GEMM per block

    x is read transposed ([z, i, u]), so every multiply runs along the channels; the weights enter
    before the batched GEMM, which writes the output directly (no per-path intermediates).
    """
    term: int                   # term of the first input
    mul: int
    dim: int                    # irrep dimension of the term
    group: int                  # index into VertexPlan.output_groups
    operator: np.ndarray        # K as [dim of the second input, rows of the group, q], normalisation folded in
    weight_index: np.ndarray    # flat weight positions: uvu [paths, mul]; uvw [mul, paths * out mul]
    paths: list[int]
    equation: str               # the same contraction as one einsum (for FLOP-optimal comparisons)
    operand_shapes: list[tuple[int, ...]]
    flops: int = 0
    cost: int = 0


@dataclass(kw_only=True)
class SymmetricPairs:
    """A symmetric fuse of order 3 (docs/language.md section 10) on the products of one channel's D
    components x_i (all input terms, in written order), channels outermost:

        P_u[a, (i, j), z]  = x[a, i, z] x[a, j, z]                 j in input term u, i before its end:
                                                                   one broadcast product per term
        Kw_t[a, (k, O), s] = sum_q K_t[(k, O), s, q] w[q, a]       K: each sorted monomial's coefficient in
                                                                   basis function q (the weights go in first)
        out[a, O, z]       = sum_t sum_k x[a, k, z] sum_(u <= t) Kw_t[a, (k, O), s in u] P_u[a, s, z]
                                                                   batched GEMMs (k: the components of term t)

    Each monomial x_i x_j x_k (i <= j <= k) is counted once, at the pair slot (i, j) (slots with i > j,
    within one term, have zero coefficients); term t needs the slots of the terms up to t, a prefix of
    the slots (slot_starts).  O: one channel's components of every output term.  The pair products
    are broadcast products kept per term and the GEMMs accumulate (baddbmm): gathers (index_select)
    or slices of one concatenated P made the backward slow (index_add, zero-filled slice gradients).
    Measured 2.5-5x faster forward than the contractions on order-3 vertices (MACE's product basis:
    docs/performance.md); for order 2 the contractions were faster, so it is not used there.
    """
    mul: int
    dim: int                          # D
    starts: tuple[int, ...]           # where each input term's components start, then D
    slot_starts: tuple[int, ...]      # where each term's pair slots start in P, then their number
    # Per batched GEMM (input term): (k0, k1, prefix, K_t as [(k, O, prefix), rank]), k0:k1 its components.
    blocks: list[tuple[int, int, int, np.ndarray]]
    out_dim: int                      # O
    rank: int                         # rank of all output terms' bases together; weights [rank, mul]
    flops: int = 0
    cost: int = 0


@dataclass(kw_only=True)
class VertexPlan:
    node: str
    kind: str
    mode: str                   # uvw | uvu | uuu | none | linear
    inputs: list[str]
    outputs: list[str]
    out_irreps: Irreps | None
    paths: list[Path]
    coefficients: list[float]
    weight_shapes: list[tuple[int, ...]]   # one per path, in the flat weight order
    external: bool
    contractions: list[Contraction]
    flops: int
    naive_flops: int
    line: int
    cost: int = 0          # the cost model's estimate of the chosen plan (contract_order.py)
    naive_cost: int = 0    # and of one einsum per path, left to right
    # Set instead of contractions when the operator form (OperatorBlock) is the cheaper plan.
    operator_blocks: list[OperatorBlock] = field(default_factory=list)
    output_groups: list[OutputGroup] = field(default_factory=list)
    # A symmetric fuse (docs/language.md section 10): `paths` are then its basis functions, one symmetric.py
    # basis per output term; the unreduced uuu vertex's counts are kept for `fusionc plan`.
    symmetric_bases: list = field(default_factory=list)
    unreduced_paths: int = 0
    unreduced_weight_numel: int = 0
    symmetric_pairs: SymmetricPairs | None = None     # set instead of contractions where cheaper
    # Graph diagrams: the domain the vertex runs on ("node" | "edge"; for gather / scatter that of its
    # output), the rows it was planned for, and for gather / scatter the end of the edges it uses.
    domain: str | None = None
    rows: int = 0
    endpoint: str | None = None
    # The wire whose name the internal weights take (`<wire>_weight`): the output, except for a vertex
    # the planner moved (a linear across a gather or scatter), which keeps its written name.
    weight_owner: str = ""
    # Graph planning (plan_graph): a fuse whose only reader is a scatter writes the scatter's node
    # wire itself (scatter_into), its partial results added into the nodes without the edge message
    # being assembled; with weights_on_nodes the shared weights are applied after that sum, on V rows
    # instead of E.  An operator-form fuse whose first input is only a gather's result reads the node
    # wire itself (gathered_from), transposed on the nodes and gathered term by term.  The gather or
    # scatter such a fuse performs is absorbed_by it (its node id) and emits nothing itself.
    scatter_into: str | None = None
    gathered_from: str | None = None
    absorbed_by: str | None = None
    weights_on_nodes: bool = False
    peak_bytes: int = 0        # estimate: the step's largest transient plus its result (float32)
    # `paths=separate`: out_irreps are the per-path blocks (one term per path), laid out as the wire.
    per_path: bool = False

    @property
    def weight_numel(self) -> int:
        return sum(_numel(s) for s in self.weight_shapes)

    @property
    def absorbed(self) -> bool:
        return self.absorbed_by is not None


@dataclass
class Plan:
    diagram: Diagram
    vertices: list[VertexPlan]
    batch: int
    nodes: int = 0        # graph diagrams: the V and E planned for
    edges: int = 0
    # Graph diagrams: the equivalent diagram the vertices belong to after the planner's rewrites
    # (None: the diagram as written), and what was rewritten, in words.
    rewritten: Diagram | None = None
    rewrites: list[str] = field(default_factory=list)

    @property
    def emitted(self) -> Diagram:
        """The diagram the vertices plan: the rewritten one, or the diagram as written."""
        return self.rewritten or self.diagram

    flops = property(lambda self: sum(v.flops for v in self.vertices))
    naive_flops = property(lambda self: sum(v.naive_flops for v in self.vertices))
    cost = property(lambda self: sum(v.cost for v in self.vertices))
    naive_cost = property(lambda self: sum(v.naive_cost for v in self.vertices))

    @property
    def weight_numel(self) -> int:
        return sum(v.weight_numel for v in self.vertices if not v.external)

    @property
    def n_paths(self) -> int:
        return sum(len(v.paths) for v in self.vertices)


# ----------------------------------------------------------------------------- weights and normalisation


def num_elements(mode: str, in_muls: list[int]) -> int:
    """How many products each output component sums over (e3nn's element normalisation)."""
    if mode == "uvw":
        return math.prod(in_muls)
    if mode == "uvu":
        return math.prod(in_muls[1:])
    if mode == "linear":
        return in_muls[0]
    return 1


def coefficients(mode: str, kind: str, paths: list[Path], in_muls_of) -> list[float]:
    if kind == "split":
        return [1.0] * len(paths)
    totals: dict[int, int] = {}
    for p in paths:
        totals[p.outs[0]] = totals.get(p.outs[0], 0) + num_elements(mode, in_muls_of(p))
    return [1.0 / math.sqrt(totals[p.outs[0]]) if totals[p.outs[0]] else 1.0 for p in paths]


# ----------------------------------------------------------------------------- planning


# Index letters of a fuse's inputs: channels and irrep components, disjoint from each other and from
# z (batch), p (path), o (output component), q (path component), w (output channel).  The first
# eight channels are a..h and the first six components i..n, as always; past them, other letters
# (einsum accepts A-Z too), so that a fuse of up to MAX_FUSE_INPUTS inputs names every index once.
_CHANNEL_LETTERS = "abcdefgh" + "ABCDEFGHIJKL"
_COMPONENT_LETTERS = "ijklmn" + "rstuvxy" + "MNOPQRS"
MAX_FUSE_INPUTS = len(_CHANNEL_LETTERS)


def _order(equation: str, shapes: list[tuple[int, ...]]):
    steps, flops, written, cost = order_for(equation, shapes)
    return steps, flops, written, cost


def _naive_cost(equation: str, shapes: list[tuple[int, ...]]) -> tuple[int, int]:
    """(flops, modelled cost) of one einsum per path, operands left to right, one call each."""
    flops, cost = left_to_right(equation, shapes)
    return flops, cost + OP_OVERHEAD_FLOPS * (len(shapes) - 1)


def plan_vertex(diagram: Diagram, node: str, data: dict, batch: int, form: str = "cheaper") -> VertexPlan:
    """form: "cheaper" (by the cost model), or "operator" / "symmetric-pairs" / "pairwise" to force one
    form where it applies (for benchmarks/bench_operator.py, bench_product_basis.py and comparisons)."""
    group = diagram.group
    kind, mode = data["kind"], weight_mode(data, diagram)
    ins = [diagram.irreps(w) for w in data["inputs"]]
    paths, outs = vertex_wiring(group, data, ins, [diagram.irreps(w) for w in data["outputs"]])
    line = data["span"].line if data.get("span") else 0
    if kind in ("gather", "scatter"):
        # A row copy (gather) or a row sum (scatter) of the whole wire: no paths, no weights.
        plan = VertexPlan(node=node, kind=kind, mode=mode, inputs=data["inputs"], outputs=data["outputs"],
                          out_irreps=outs[0], paths=[], coefficients=[], weight_shapes=[], external=False,
                          contractions=[], flops=0, naive_flops=0, line=line, endpoint=data["endpoint"],
                          weight_owner=data["outputs"][0])
        plan.flops = plan.naive_flops = outs[0].dim * batch if kind == "scatter" else 0
        plan.cost = plan.naive_cost = move_cost(kind, batch, outs[0].dim)
        return plan
    if kind == "split":
        # Only in closed diagrams (check.py), which the reference evaluator handles; no kernel.
        return VertexPlan(node=node, kind=kind, mode=mode, inputs=data["inputs"], outputs=data["outputs"],
                          out_irreps=None, paths=paths, coefficients=[1.0] * len(paths), weight_shapes=[],
                          external=False, contractions=[], flops=0, naive_flops=0, line=line,
                          weight_owner=data["outputs"][0])

    def in_muls_of(p: Path) -> list[int]:
        return [ins[r][t].mul for r, t in enumerate(p.ins)]

    coeffs = coefficients(mode, kind, paths, in_muls_of)
    shapes = [path_weight_shape(mode, in_muls_of(p), outs[0][p.outs[0]].mul) for p in paths]
    tensors, bases, unreduced = None, [], (0, 0)
    if data.get("symmetric"):
        unreduced = (len(paths), sum(_numel(s) for s in shapes))
        bases, paths, coeffs, shapes, tensors = symmetric_paths(diagram.group_name, ins, outs[0])
    offsets = list(np.cumsum([0] + [_numel(s) for s in shapes]))
    best = None
    # Batch paths by runs of equal multiplicity or term by term, input by input: the cheapest wins.
    choices = [(True,)] if kind == "linear" else itertools.product((False, True), repeat=len(ins))
    # uvu and uuu keep the first input's channels on every path, so one contraction can serve every
    # output term at once (a scatter matrix sums paths into their output components).
    shared_outputs = (False, True) if mode in ("uvu", "uuu") else (False,)
    for by_term, across in itertools.product(list(choices), shared_outputs):
        segs = [segments(w, irreps, t) for w, irreps, t in zip(data["inputs"], ins, by_term)]
        contractions = _group_contractions(group, kind, mode, ins, outs[0], segs, paths, coeffs, shapes,
                                           offsets, data["external"], batch, across, tensors)
        cost = sum(c.cost + OP_OVERHEAD_FLOPS * len(c.steps) for c in contractions)
        if best is None or cost < best[0]:
            best = (cost, contractions)
    cost, contractions = best
    blocks, groups = [], []
    operator = None if form == "pairwise" else \
        _operator_plan(group, kind, mode, ins, outs[0], paths, coeffs, offsets, data["external"], batch)
    if operator is not None and (form == "operator" or operator[0] * OPERATOR_COST_SCALE < cost):
        cost, blocks, groups = operator
        contractions = []
    pairs = None
    if bases and form != "pairwise" and len(ins) == 3 and not data["external"]:
        pairs = symmetric_pair_form(ins[0], outs[0], bases, batch)
        if form == "symmetric-pairs" or pairs.cost * SYMMETRIC_PAIRS_COST_SCALE < cost:
            cost, contractions = pairs.cost, []
        else:
            pairs = None
    naive = [_naive_path_cost(kind, mode, ins, outs[0], p, shapes[k], data["external"], batch)
             for k, p in enumerate(paths)]
    flops = sum(c.flops for c in contractions) + sum(b.flops for b in blocks) + (pairs.flops if pairs else 0)
    return VertexPlan(node=node, kind=kind, mode=mode, inputs=data["inputs"], outputs=data["outputs"],
                      out_irreps=outs[0], paths=paths, coefficients=coeffs, weight_shapes=shapes,
                      external=data["external"], contractions=contractions, flops=flops,
                      naive_flops=sum(f for f, _ in naive), line=line, cost=cost,
                      naive_cost=sum(c for _, c in naive), operator_blocks=blocks, output_groups=groups,
                      weight_owner=data.get("weight_owner", data["outputs"][0]),
                      symmetric_bases=bases, unreduced_paths=unreduced[0], unreduced_weight_numel=unreduced[1],
                      symmetric_pairs=pairs, per_path=bool(data.get("per_path")))


def symmetric_paths(group_name: str, ins: list[Irreps], out: Irreps):
    """A symmetric fuse as a uuu fuse over its basis functions (fusionlang/symmetry/symmetric.py): one pseudo-path
    per (output term, basis vector), reading the sorted input terms of its multiset, with the basis
    block (normalisation folded in) as its coupling tensor.  Only sorted term choices are evaluated:
    for MACE's product basis 20 of the 64 ordered ones, with 20 weights per channel instead of 74.

    Weights: for each output term in written order, [rank, mul] (basis vector outer, channel inner).
    Returns (bases, paths, coefficients, weight shapes, tensors)."""
    bases = vertex_bases(group_name, ins[0], len(ins), out)
    paths, coeffs, shapes, tensors = [], [], [], []
    for c, (term, basis) in enumerate(zip(out, bases)):
        norm = 1.0 / math.sqrt(len(basis.paths))     # uuu's normalisation of the unreduced paths
        for terms, block in zip(basis.terms, basis.blocks):
            paths.append(Path(terms, (c,)))
            coeffs.append(norm)
            shapes.append((term.mul,))
            tensors.append(block * norm)
    return bases, paths, coeffs, shapes, tensors


def symmetric_pair_form(wire: Irreps, out: Irreps, bases, batch: int) -> SymmetricPairs:
    """The SymmetricPairs form of fuse(wire, wire, wire) [weights=uuu, symmetric], with its cost."""
    starts = [int(v) for v in np.cumsum([0] + [t.irrep.dim for t in wire])]
    D, mul = starts[-1], wire[0].mul
    # Slot of the pair (i, j), j in term u: the slots of the terms before u, then i * d_u + (j - start of u).
    term_of = np.repeat(np.arange(len(wire)), np.diff(starts))
    slot_start = np.cumsum([0] + [starts[u + 1] * (starts[u + 1] - starts[u]) for u in range(len(wire))])
    S = int(slot_start[-1])
    o_starts = list(np.cumsum([0] + [t.irrep.dim for t in out]))
    r_starts = list(np.cumsum([0] + [b.rank for b in bases]))
    O, R = o_starts[-1], r_starts[-1]
    # K[s, k, o, q]: the coefficient of the sorted monomial x_i x_j x_k in basis function q, component o.
    K = np.zeros((S, D, O, R))
    for c, basis in enumerate(bases):
        norm = 1.0 / math.sqrt(len(basis.paths))   # uuu's normalisation of the unreduced paths
        for q, (terms, block) in enumerate(zip(basis.terms, basis.blocks), start=r_starts[c]):
            grids = np.meshgrid(*[np.arange(starts[t], starts[t + 1]) for t in terms], indexing="ij")
            comps = np.sort(np.stack([g.reshape(-1) for g in grids]), axis=0)    # every term of the block,
            values = block.reshape(-1, block.shape[-1]) * norm                    # its monomial sorted
            u = term_of[comps[1]]
            s = slot_start[u] + comps[0] * (np.diff(starts)[u]) + comps[1] - np.asarray(starts)[u]
            o = slice(o_starts[c], o_starts[c + 1])
            np.add.at(K, (s, comps[2], o, q), values)
    rows = batch * mul
    cost = COPY_WEIGHT * rows * D + (WRITE_WEIGHT + 1) * rows * S + (len(wire) + 2) * OP_OVERHEAD_FLOPS  # x^T, P
    flops = rows * S
    blocks = []
    for t in range(len(wire)):
        k0, k1 = starts[t], starts[t + 1]
        prefix = int(slot_start[t + 1])
        part = K[:prefix, k0:k1]
        if part.any():
            blocks.append((k0, k1, prefix, np.ascontiguousarray(part.transpose(1, 2, 0, 3).reshape(-1, R))))
    for k0, k1, prefix, const in blocks:
        width = const.shape[0] // prefix                          # (k, O)
        gemm = 2 * rows * width * prefix
        flops += gemm + 2 * const.size * mul + 2 * rows * width
        cost += int(BMM_FLOP_WEIGHT * gemm) + WRITE_WEIGHT * rows * width + 2 * const.size * mul \
            + COPY_WEIGHT * const.shape[0] * mul + MULSUM_WEIGHT * rows * width + 4 * OP_OVERHEAD_FLOPS
    cost += COPY_WEIGHT * rows * O + OP_OVERHEAD_FLOPS * len(out)                     # back to mul_ir
    return SymmetricPairs(mul=mul, dim=D, starts=tuple(starts), slot_starts=tuple(int(v) for v in slot_start),
                          blocks=blocks, out_dim=O, rank=R, flops=flops, cost=cost)


def _operator_plan(group, kind, mode, ins, out, paths, coeffs, offsets, external, batch):
    """(unscaled cost, blocks, output groups) of the operator form (see OperatorBlock), or None where it does
    not apply: a binary uvu or internal uvw fuse whose second input has only multiplicity-1 terms.

    n-ary fuses keep the pairwise plans: with y1 (x) y2 as the second input, the operator GEMM and
    its gradient cost more than the pairwise plan saves (a version that tried it was slower on the
    three-body block of benchmarks/bench_tensor_product.py; see docs/planner.md)."""
    if kind != "fuse" or len(ins) != 2 or mode not in ("uvu", "uvw") or (mode == "uvw" and external):
        return None
    x, y = ins
    if any(t.mul != 1 for t in y):
        return None
    groups: list[OutputGroup] = []
    for mul in dict.fromkeys(t.mul for t in out):
        terms = tuple(k for k, t in enumerate(out) if t.mul == mul)
        offs = [0]
        for k in terms:
            offs.append(offs[-1] + out[k].irrep.dim)
        groups.append(OutputGroup(mul=mul, terms=terms, offsets=tuple(offs)))
    group_of = {k: g for g, og in enumerate(groups) for k in og.terms}
    y_offsets = list(np.cumsum([0] + [t.dim for t in y]))
    B, d_y = batch, y.dim
    blocks, total = [], 0
    for a, term in enumerate(x):
        u, d = term.mul, term.irrep.dim
        if d > 1:
            total += COPY_WEIGHT * B * u * d + OP_OVERHEAD_FLOPS    # the transposed copy of x
        for g, og in enumerate(groups):
            members = [k for k, p in enumerate(paths) if p.ins[0] == a and group_of[p.outs[0]] == g]
            if not members:
                continue
            n, w, rows = len(members), og.mul, og.offsets[-1]
            q = n * d
            K = np.zeros((d_y, rows, n, d) if mode == "uvu" else (d_y, rows, d, n))
            for slot, k in enumerate(members):
                b, c = paths[k].ins[1], paths[k].outs[0]
                C = coupling(group, (term.irrep, y[b].irrep), (), out[c].irrep) * coeffs[k]   # [i, j, o]
                o0 = og.offsets[og.terms.index(c)]
                where = (slice(y_offsets[b], y_offsets[b] + y[b].irrep.dim), slice(o0, o0 + out[c].irrep.dim))
                K[where + ((slot, slice(None)) if mode == "uvu" else (slice(None), slot))] += C.transpose(1, 2, 0)
            z_flops = 2 * B * d_y * rows * q
            cost = z_flops + WRITE_WEIGHT * B * rows * q
            if mode == "uvu":
                index = np.array([offsets[k] + np.arange(u) for k in members], dtype=np.int64)
                w_flops = B * q * u
                cost += w_flops + WRITE_WEIGHT * B * q * u
                eq, w_shape = "zai,zj,jopi,pa->zoa", (n, u)
            else:
                index = np.array([[offsets[k] + r * w + np.arange(w) for k in members] for r in range(u)],
                                 dtype=np.int64).reshape(u, n * w)
                w_flops = 2 * B * d * u * n * w
                cost += w_flops + WRITE_WEIGHT * B * q * w
                eq, w_shape = "zai,zj,joip,apw->zow", (u, n, w)
            # Both operands of this batched GEMM are contiguous, so PyTorch's per-element loop for tiny
            # matrices (contract_order.SMALL_BMM) does not apply: measured, benchmarks/bench_operator.py.
            bmm_flops = 2 * B * rows * q * w
            cost += int(BMM_FLOP_WEIGHT * bmm_flops) + WRITE_WEIGHT * B * rows * w + 3 * OP_OVERHEAD_FLOPS
            shapes = [(B, u, d), (B, d_y), K.shape, w_shape]
            blocks.append(OperatorBlock(term=a, mul=u, dim=d, group=g, operator=K.reshape(d_y, rows, q),
                                        weight_index=index, paths=members, equation=eq, operand_shapes=shapes,
                                        flops=z_flops + w_flops + bmm_flops, cost=cost))
            total += cost
    for og in groups:   # each group's accumulator is transposed back into the output's layout
        total += COPY_WEIGHT * B * og.offsets[-1] * og.mul + OP_OVERHEAD_FLOPS
    return total, blocks, groups


def _group_contractions(group, kind, mode, ins, out, segs, paths, coeffs, shapes, offsets, external, batch,
                        across_outputs=False, tensors=None):
    """tensors: the paths' coupling tensors with normalisation folded in, where they are not the
    trees' (symmetric_paths); None computes them from the paths."""
    groups: dict[tuple, list[int]] = {}
    for k, p in enumerate(paths):
        key = (-1 if across_outputs else p.outs[0], tuple(segment_of(segs[r], t).index for r, t in enumerate(p.ins)))
        groups.setdefault(key, []).append(k)
    contractions = []
    for (out_term, seg_ids), members in sorted(groups.items()):
        chosen = [segs[r][s] for r, s in enumerate(seg_ids)]
        build = _shared_contraction if across_outputs else _contraction
        c = build(group, kind, mode, ins, out, chosen, out_term, [paths[k] for k in members],
                  [coeffs[k] for k in members], [shapes[k] for k in members],
                  [offsets[k] for k in members], external, batch,
                  None if tensors is None else [tensors[k] for k in members])
        c.paths = members
        contractions.append(c)
    return contractions


def _channel_letters(mode: str, n: int) -> list[str]:
    return ["a"] * n if mode == "uuu" else [_CHANNEL_LETTERS[r] for r in range(n)]


def _contraction(group, kind, mode, ins, out, segs, out_term, paths, coeffs, shapes, offsets, external, batch,
                 tensors=None):
    n = len(segs)
    d_out = out[out_term].irrep.dim
    if kind == "linear":
        # One input term per path (segments are single terms): x[z, u, k] W[u, w] -> [z, w, k], scaled.
        (p,), (c,) = paths, coeffs
        eq = "zak,zaw->zwk" if external else "zak,aw->zwk"
        op_shapes = [(batch, segs[0].mul, d_out), ((batch,) if external else ()) + shapes[0]]
        steps, flops, written, cost = _order(eq, op_shapes)
        index = offsets[0] + np.arange(math.prod(shapes[0]))
        return Contraction(out_term, segs, eq, np.array(c), index.astype(np.int64), shapes[0],
                           steps, flops, written=written, cost=cost)
    # fuse
    P = len(paths)
    idx = [_COMPONENT_LETTERS[r] for r in range(n)]          # i, j, k, ... irrep components
    chan = _channel_letters(mode, n)
    K = np.zeros(tuple(s.dim for s in segs) + (P, d_out))
    for q, (p, c) in enumerate(zip(paths, coeffs)):
        irreps = tuple(ins[r][t].irrep for r, t in enumerate(p.ins))
        block = coupling(group, irreps, p.inner, out[out_term].irrep) * c if tensors is None else tensors[q]
        where = tuple(slice(s.offset(ins[r], p.ins[r]), s.offset(ins[r], p.ins[r]) + irreps[r].dim)
                      for r, s in enumerate(segs))
        K[where + (q, slice(None))] += block
    x_terms = [f"z{chan[r]}{idx[r]}" for r in range(n)]
    x_shapes = [(batch, s.mul, s.dim) for s in segs]
    zw = "z" if external else ""
    if mode == "none":
        K = K.sum(axis=-2)
        eq = ",".join(x_terms + ["".join(idx) + "o"]) + "->z" + "".join(chan) + "o"
        op_shapes = x_shapes + [K.shape]
        weight_shape = None
    else:
        wl = {"uvw": "p" + "".join(chan) + "w", "uvu": "p" + "".join(chan), "uuu": "pa"}[mode]
        res = {"uvw": "zwo", "uvu": "z" + chan[0] + "o", "uuu": "zao"}[mode]
        eq = ",".join(x_terms + ["".join(idx) + "po", zw + wl]) + "->" + res
        weight_shape = (P,) + shapes[0]
        op_shapes = x_shapes + [K.shape, ((batch,) if external else ()) + weight_shape]
    steps, flops, written, cost = _order(eq, op_shapes)
    index = None
    if mode != "none":
        index = np.concatenate([off + np.arange(math.prod(s)) for off, s in zip(offsets, shapes)]).astype(np.int64)
    return Contraction(out_term, segs, eq, K, index, weight_shape, steps, flops, written=written, cost=cost)


def _shared_contraction(group, kind, mode, ins, out, segs, _, paths, coeffs, shapes, offsets, external, batch,
                        tensors=None):
    """uvu / uuu paths of one segment choice into all their output terms:

        out[z, a, O] = x_1[z,a,i] x_2[z,b,j] ... K[i,j,..,Q] W[a,b,..,Q] S[Q,O]

    Q enumerates (path, output component); W repeats each path's weight over its components.
    """
    n = len(segs)
    terms = sorted({p.outs[0] for p in paths})
    term_offsets = [0]
    for t in terms:
        term_offsets.append(term_offsets[-1] + out[t].irrep.dim)
    Q = sum(out[p.outs[0]].irrep.dim for p in paths)
    K = np.zeros(tuple(s.dim for s in segs) + (Q,))
    S = np.zeros((Q, term_offsets[-1]))
    chan_shape = tuple(s.mul for s in segs) if mode == "uvu" else (segs[0].mul,)
    W_index = np.zeros(chan_shape + (Q,), dtype=np.int64)
    q = 0
    for k, (p, c, off) in enumerate(zip(paths, coeffs, offsets)):
        irreps = tuple(ins[r][t].irrep for r, t in enumerate(p.ins))
        d_o = out[p.outs[0]].irrep.dim
        where = tuple(slice(s.offset(ins[r], p.ins[r]), s.offset(ins[r], p.ins[r]) + irreps[r].dim)
                      for r, s in enumerate(segs))
        K[where + (slice(q, q + d_o),)] += \
            coupling(group, irreps, p.inner, out[p.outs[0]].irrep) * c if tensors is None else tensors[k]
        base = term_offsets[terms.index(p.outs[0])]
        S[np.arange(q, q + d_o), base + np.arange(d_o)] = 1.0
        W_index[..., q:q + d_o] = (off + np.arange(math.prod(chan_shape)).reshape(chan_shape))[..., None]
        q += d_o
    idx = [_COMPONENT_LETTERS[r] for r in range(n)]
    chan = _channel_letters(mode, n)
    zw = "z" if external else ""
    x_terms = [f"z{chan[r]}{idx[r]}" for r in range(n)]
    w_letters = ("".join(chan) if mode == "uvu" else "a") + "q"
    eq = ",".join(x_terms + ["".join(idx) + "q", zw + w_letters, "qo"]) + "->z" + chan[0] + "o"
    op_shapes = [(batch, s.mul, s.dim) for s in segs] + [K.shape, ((batch,) if external else ()) + W_index.shape,
                                                         S.shape]
    steps, flops, written, cost = _order(eq, op_shapes)
    return Contraction(-1, segs, eq, K, W_index.reshape(-1), W_index.shape, steps, flops, out_terms=tuple(terms), out_offsets=tuple(term_offsets), scatter=S, written=written, cost=cost)


def _naive_path_cost(kind, mode, ins, out, p: Path, wshape, external, batch) -> int:
    """The cost of this path alone, contracted left to right (one einsum per path, no sharing)."""
    n = len(p.ins)
    d = [ins[r][t].irrep.dim for r, t in enumerate(p.ins)]
    muls = [ins[r][t].mul for r, t in enumerate(p.ins)]
    d_out = out[p.outs[0]].irrep.dim
    if kind == "linear":
        eq = "zuk,uw->zwk" if not external else "zuk,zuw->zwk"
        return _naive_cost(eq, [(batch, muls[0], d_out), ((batch,) if external else ()) + wshape])
    idx = [_COMPONENT_LETTERS[r] for r in range(n)]
    chan = _channel_letters(mode, n)
    x = [f"z{chan[r]}{idx[r]}" for r in range(n)]
    shapes = [(batch, muls[r], d[r]) for r in range(n)] + [tuple(d) + (d_out,)]
    if mode == "none":
        eq = ",".join(x + ["".join(idx) + "o"]) + "->z" + "".join(chan) + "o"
    else:
        wl = {"uvw": "".join(chan) + "w", "uvu": "".join(chan), "uuu": "a"}[mode]
        res = {"uvw": "zwo", "uvu": "z" + chan[0] + "o", "uuu": "zao"}[mode]
        eq = ",".join(x + ["".join(idx) + "o", ("z" if external else "") + wl]) + "->" + res
        shapes.append(((batch,) if external else ()) + wshape)
    return _naive_cost(eq, shapes)


def plan_diagram(diagram: Diagram, batch: int = PLAN_BATCH, form: str = "cheaper", graph: bool = True) -> Plan:
    """Plan every vertex of a checked open diagram, in an order where inputs come first.

    A graph diagram is planned as a whole (plan_graph) for V = batch nodes and E = EDGES_PER_NODE *
    batch edges; graph=False plans it vertex by vertex as written (for comparisons and tests)."""
    debug_verify([diagram], "check")
    if not diagram.is_graph:
        order = _topological_vertices(diagram)
        plan = Plan(diagram, [plan_vertex(diagram, n, diagram.graph.nodes[n], batch, form) for n in order], batch)
    else:
        plan = plan_graph(diagram, batch, form, rewrite=graph)
    for v in plan.vertices:
        v.peak_bytes = _peak_bytes(plan.emitted, v, v.rows or batch, plan.nodes)
    debug_verify([plan.emitted], "the planner's rewrites")
    return plan


# ----------------------------------------------------------------------------- graph diagrams

# The cost of moving one element between nodes and edges, in GEMM FLOPs (contract_order.py's units):
# a gather is an indexed copy; a scatter reads each edge row and adds it into a node row (random
# access on both sides), after zeroing the V rows, on one thread (PyTorch's CPU index_add does not
# split the rows between threads).  With twice COPY_WEIGHT the planner applied the shared uvw
# weights of a 32-channel edge-feature product on the nodes, and that measured 15% slower with
# 2 threads (benchmarks/bench_graph.py); timing index_add against a GEMM on the (shared)
# development machine gave 90 to 360 GEMM FLOPs per element.
GATHER_WEIGHT = COPY_WEIGHT
SCATTER_WEIGHT = 4 * COPY_WEIGHT


def move_cost(kind: str, edges: int, dim: int, nodes: int | None = None) -> int:
    """Modelled cost of a gather or scatter of a [*, dim] wire over `edges` edges."""
    if kind == "gather":
        return GATHER_WEIGHT * edges * dim + OP_OVERHEAD_FLOPS
    nodes = edges // EDGES_PER_NODE if nodes is None else nodes
    return SCATTER_WEIGHT * edges * dim + WRITE_WEIGHT * nodes * dim + OP_OVERHEAD_FLOPS


def plan_graph(diagram: Diagram, batch: int = PLAN_BATCH, form: str = "cheaper", rewrite: bool = True) -> Plan:
    """The whole message-passing block at once.  With rewrite, equivalent cheaper orders are taken:

    - a `linear` with shared weights commutes with gather and scatter (it mixes channels; they move
      rows), so one that reads a gathered wire runs on the V node rows before the gather, and one
      whose result is only scattered runs after the scatter, where the cost model says so;
    - a fuse whose result only feeds a scatter adds its partial results straight into the nodes
      (the [E, dim] edge message is never assembled), and, where its weights are shared and that is
      cheaper, contracts the weights after the sum, on V rows;
    - an operator-form fuse whose first input is only gathered transposes it on the nodes.
    """
    rows = {"node": batch, "edge": EDGES_PER_NODE * batch}
    rewrites: list[str] = []
    emitted = _move_linears(diagram, rows, form, rewrites) if rewrite else diagram
    vertices = []
    for n in _topological_vertices(emitted):
        data = emitted.graph.nodes[n]
        domain = emitted.domain(data["outputs"][0])
        # gather runs once per edge; scatter adds once per edge, too.
        moved = data["kind"] in ("gather", "scatter")
        v = plan_vertex(emitted, n, data, rows["edge"] if moved else rows[domain], form)
        if data["kind"] == "scatter":
            v.cost = move_cost("scatter", rows["edge"], v.out_irreps.dim, rows["node"])
        v.domain, v.rows = domain, rows[domain]
        vertices.append(v)
    plan = Plan(diagram, vertices, batch, rows["node"], rows["edge"], emitted if emitted is not diagram else None,
                rewrites)
    if rewrite:
        _fuse_scatters(plan, rows, form)
        _fuse_gathers(plan)
    return plan


def _fresh_wire(wires, stem: str) -> str:
    name, k = stem, 2
    while name in wires:
        name, k = f"{stem}{k}", k + 1
    return name


def _move_linears(diagram: Diagram, rows: dict, form: str, rewrites: list[str]) -> Diagram:
    """Move internal-weight `linear`s from the edges to the nodes across gathers and scatters while
    the cost model says it is cheaper; returns the rewritten diagram (or the diagram itself)."""
    current = diagram
    for _ in range(4 * len(diagram.vertices()) + 1):       # each move lowers the cost: this ends
        order = [current.graph.nodes[n] for n in _topological_vertices(current)]
        producer = {w: d for d in order for w in d["outputs"]}
        readers: dict[str, list[dict]] = {}
        for d in order:
            for w in d["inputs"]:
                readers.setdefault(w, []).append(d)
        E, V = rows["edge"], rows["node"]
        change = None
        for lin in order:
            if lin["kind"] != "linear" or lin["external"] or current.domain(lin["outputs"][0]) != "edge":
                continue
            (src,), (dst,) = lin["inputs"], lin["outputs"]
            dim_src, dim_dst = current.irreps(src).dim, current.irreps(dst).dim
            on_edges = plan_vertex(current, "", lin, E, form).cost
            on_nodes = plan_vertex(current, "", lin, V, form).cost
            owner = lin.get("weight_owner", dst)
            gather = producer.get(src)
            if gather is not None and gather["kind"] == "gather":
                others = [r for r in readers[src] if r is not lin] or src in current.outputs
                old = on_edges + move_cost("gather", E, dim_src)
                new = on_nodes + move_cost("gather", E, dim_dst) + (move_cost("gather", E, dim_src) if others else 0)
                if new < old:
                    (node_src,) = gather["inputs"]
                    name = _fresh_wire(current.wires, f"{dst}_node")
                    wire = Wire(name, "wire", current.irreps(dst), None, domain="node", produced_domain="node")
                    moved = dict(lin, inputs=[node_src], outputs=[name], arg_spans=[None], target_spans=[None],
                                 weight_owner=owner)
                    regather = dict(gather, inputs=[name], outputs=[dst], span=lin["span"])
                    keep = [d for d in order if d is not lin and (d is not gather or others)]
                    at = keep.index(gather) + 1 if others else order.index(gather)
                    change = (keep[:at] + [moved, regather] + keep[at:], [wire],
                              f"line {lin['span'].line}: `{dst} = linear({src})` runs on the nodes before "
                              f"`gather({node_src}, {gather['endpoint']})` (V rows instead of E)")
                    break
            after = readers.get(dst, [])
            if len(after) == 1 and after[0]["kind"] == "scatter" and dst not in current.outputs:
                scatter = after[0]
                old = on_edges + move_cost("scatter", E, dim_dst, V)
                new = move_cost("scatter", E, dim_src, V) + on_nodes
                if new < old:
                    (out,) = scatter["outputs"]
                    name = _fresh_wire(current.wires, f"{src}_sum")
                    wire = Wire(name, "wire", current.irreps(src), None, domain="node", produced_domain="node")
                    summed = dict(scatter, inputs=[src], outputs=[name])
                    moved = dict(lin, inputs=[name], outputs=[out], arg_spans=[None], target_spans=[None],
                                 weight_owner=owner)
                    keep = [d for d in order if d is not lin and d is not scatter]
                    at = order.index(lin)
                    keep = keep[:at] + [summed, moved] + keep[at:]
                    change = (keep, [wire], f"line {lin['span'].line}: `{dst} = linear({src})` runs on the nodes "
                              f"after `scatter(..., {scatter['endpoint']})` (V rows instead of E)")
                    break
        if change is None:
            return current
        vertices, new_wires, note = change
        current = rebuild(current, vertices, new_wires)
        rewrites.append(note)
    return current


def _fuse_scatters(plan: Plan, rows: dict, form: str) -> None:
    """A fuse whose result is read only by a scatter writes into the nodes directly (see plan_graph);
    shared weights move after the sum where the cost model says so."""
    d = plan.emitted
    by_output = {v.outputs[0]: v for v in plan.vertices}
    readers: dict[str, list[VertexPlan]] = {}
    for v in plan.vertices:
        for w in v.inputs:
            readers.setdefault(w, []).append(v)
    E, V = rows["edge"], rows["node"]
    for s in plan.vertices:
        if s.kind != "scatter":
            continue
        (m,) = s.inputs
        f = by_output.get(m)
        if f is None or f.kind != "fuse" or len(readers.get(m, [])) != 1 or m in d.outputs:
            continue
        f.scatter_into, s.absorbed_by = s.outputs[0], f.node
        plan.rewrites.append(f"line {f.line}: `{m} = fuse(...)` adds its results into `{s.outputs[0]}` on the "
                             f"nodes (the [E, {d.irreps(m).dim}] edge message is not assembled)")
        # The gain: no assembled edge message (a concatenation of E x dim) before the scatter.
        s.cost = move_cost("scatter", E, d.irreps(m).dim, V) - COPY_WEIGHT * E * d.irreps(m).dim
        if f.external or f.mode not in ("uvw", "uvu", "uuu"):
            continue
        split = _weights_on_nodes(d, f, E, V)
        # The split plan is pairwise: against an operator-form plan, compare as plan_vertex does.
        current = f.cost * (OPERATOR_COST_SCALE if f.operator_blocks else 1) + s.cost
        if split is not None and split[0] < current:
            cost, contractions, scatter_cost = split
            f.contractions, f.operator_blocks, f.output_groups = contractions, [], []
            f.symmetric_pairs = None
            f.cost, f.weights_on_nodes = cost - scatter_cost, True
            f.flops = sum(c.flops for c in contractions)
            s.cost = scatter_cost
            plan.rewrites.append(f"line {f.line}: the shared weights of `{m}` are applied after the sum, "
                                 f"on the nodes (V rows instead of E)")


def _fuse_gathers(plan: Plan) -> None:
    """An operator-form fuse transposes its first input term by term ([E, u, d] -> [E, d, u]); where that
    input is a gather's result read by nothing else, the transposes run on the node wire (V rows)
    and the transposed terms are gathered instead (see VertexPlan.gathered_from)."""
    d = plan.emitted
    by_output = {v.outputs[0]: v for v in plan.vertices}
    reads: dict[str, int] = {}
    for v in plan.vertices:
        for w in v.inputs:
            reads[w] = reads.get(w, 0) + 1
    for f in plan.vertices:
        if f.kind != "fuse" or not f.operator_blocks:
            continue
        x = f.inputs[0]
        g = by_output.get(x)
        if g is None or g.kind != "gather" or reads.get(x) != 1 or x in d.outputs:
            continue
        f.gathered_from, g.absorbed_by = g.inputs[0], f.node
        g.cost = 0      # the fuse's gathers of the transposed terms move the same elements
        plan.rewrites.append(f"line {f.line}: `{x} = gather({g.inputs[0]}, {g.endpoint})` is done term by term "
                             f"on `{g.inputs[0]}` transposed on the nodes (for the operator form of line {f.line})")


def _weights_on_nodes(d: Diagram, f: VertexPlan, E: int, V: int):
    """(total cost, contractions, scatter cost) of f's pairwise plan cut before its weights: the part
    without weights on E rows, its result scattered, the weights contracted on V rows."""
    pairwise = plan_vertex(d, f.node, d.graph.nodes[f.node], E, "pairwise")
    total, scatter = 0, 0
    for c in pairwise.contractions:
        lhs, out = c.equation.split("->")
        subs = lhs.split(",")
        n = len(c.segments)
        edge_subs, node_subs = subs[:n + 1], subs[n + 1:]          # x..., K | W (, S)
        later = set("".join(node_subs) + out)
        kept = "".join(ch for ch in dict.fromkeys("".join(edge_subs)) if ch in later)
        if kept[0] != "z":
            kept = "z" + kept.replace("z", "")
        sizes = {}
        for sub, shape in zip(subs, _operand_shapes(c, E)):
            sizes.update(zip(sub, shape))
        edge_shape = tuple(sizes[ch] for ch in kept[1:])
        edge_eq = ",".join(edge_subs) + "->" + kept
        node_eq = ",".join([kept] + node_subs) + "->" + out
        e_steps, e_flops, _, e_cost = order_for(edge_eq, _operand_shapes(c, E)[:n + 1])
        n_steps, n_flops, _, n_cost = order_for(node_eq, [(V,) + edge_shape] + _operand_shapes(c, V)[n + 1:])
        width = math.prod(edge_shape)
        c.edge_equation, c.edge_steps, c.edge_shape = edge_eq, e_steps, edge_shape
        c.node_equation, c.node_steps = node_eq, n_steps
        c.flops = e_flops + n_flops
        part_scatter = move_cost("scatter", E, width, V)
        scatter += part_scatter
        total += e_cost + n_cost + part_scatter + OP_OVERHEAD_FLOPS * (len(e_steps) + len(n_steps))
    return total, pairwise.contractions, scatter


def _operand_shapes(c: Contraction, rows: int) -> list[tuple[int, ...]]:
    """The shapes of a fuse contraction's operands (x..., K, W with internal weights, S), for `rows` rows."""
    shapes = [(rows, s.mul, s.dim) for s in c.segments] + [tuple(np.shape(c.constant))]
    if c.weight_shape is not None:
        shapes.append(tuple(c.weight_shape))
    if c.scatter is not None:
        shapes.append(tuple(c.scatter.shape))
    return shapes


def _peak_bytes(d: Diagram, v: VertexPlan, rows: int, nodes: int = 0) -> int:
    """An estimate of the bytes a step holds at its peak, in float32: its result plus its largest
    intermediate (each contraction's steps, or each operator block's Z, xw and accumulator).
    A gather or scatter another step performs holds nothing of its own."""
    if v.absorbed:
        return 0
    out = (nodes if v.scatter_into else rows) * (v.out_irreps.dim if v.out_irreps is not None else 0)
    transient = 0
    for c in v.contractions:
        sizes = [s.written for s in (c.edge_steps or c.steps)] + [s.written for s in c.node_steps]
        transient = max(transient, max(sizes, default=0))
        if c.edge_steps:      # the edge part's result, summed into V rows
            transient = max(transient, (v.rows or rows) * math.prod(c.edge_shape))
    for b in v.operator_blocks:
        rows_b, q = b.operator.shape[1:]
        transient = max(transient, rows * (rows_b * q + q * (b.mul if v.mode == "uvu" else v.output_groups[b.group].mul)))
    if v.operator_blocks:
        transient += sum(rows * og.offsets[-1] * og.mul for og in v.output_groups)
    if v.symmetric_pairs is not None:    # x^T and the pair products, then one block's GEMM result
        sp = v.symmetric_pairs
        widest = max((const.shape[0] // prefix for _, _, prefix, const in sp.blocks), default=0)
        transient = rows * sp.mul * (sp.dim + sp.slot_starts[-1] + widest + sp.out_dim)
    return 4 * (out + transient)


def _topological_vertices(diagram: Diagram) -> list[str]:
    g = nx.DiGraph()
    written = {n: d["index"] for n, d in diagram.vertices()}
    g.add_nodes_from(written)
    for u, v in diagram.graph.edges():
        if u in written and v in written:
            g.add_edge(u, v)
    if not nx.is_directed_acyclic_graph(g):
        return sorted(written, key=written.get)
    return list(nx.lexicographical_topological_sort(g, key=lambda n: written[n]))


def plan_steps(diagram: Diagram) -> dict[str, int]:
    """Vertex node id -> its 1-based step in evaluation order (for render --plan)."""
    return {v.node: k + 1 for k, v in enumerate(plan_diagram(diagram).vertices)}
