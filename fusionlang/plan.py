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
from functools import lru_cache

import numpy as np

from .check import weight_mode
from .contract_order import BMM_FLOP_WEIGHT, COPY_WEIGHT, WRITE_WEIGHT, Step, left_to_right, order_for
from .coupling import cg
from .groups import Group, Irrep, Irreps
from .ir import Diagram
from .paths import Path, vertex_paths

PLAN_BATCH = 1024     # the batch size the contraction order is optimised for
# What one more kernel call costs, in GEMM FLOPs, when choosing how to batch paths: about
# 5 microseconds of eager dispatch (Python, permutes, allocation) on a 2-core CPU.
OP_OVERHEAD_FLOPS = 300_000
# The operator form (OperatorBlock) writes a few large contiguous tensors where the pairwise plans
# write many small permuted ones; the cost model, calibrated on single kernels, misses that
# difference (allocation, page faults, permuted copies).  Its modelled cost is scaled by this
# factor, fitted on the grid of benchmarks/bench_operator.py (measured time ratios 0.4-1.2).
OPERATOR_COST_SCALE = 0.6


@dataclass(frozen=True)
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
        out.append(Segment(wire, len(out), terms, irreps[k].mul, sum(irreps[t].irrep.dim for t in terms),
                           start, start + size))
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


@dataclass(frozen=True)
class OutputGroup:
    """Output terms of one multiplicity, accumulated together as [z, rows, mul] (operator plans)."""
    mul: int
    terms: tuple[int, ...]
    offsets: tuple[int, ...]    # row where each term starts, then the total number of rows


@dataclass
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


@dataclass
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

    @property
    def weight_numel(self) -> int:
        return sum(_numel(s) for s in self.weight_shapes)


@dataclass
class Plan:
    diagram: Diagram
    vertices: list[VertexPlan]
    batch: int

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


# ----------------------------------------------------------------------------- coupling tensors


def coupling(group: Group, irreps: tuple[Irrep, ...], inner: tuple[Irrep, ...], out: Irrep) -> np.ndarray:
    """The isometric coupling of a left-deep tree: [d1, ..., dn, d_out], real float64."""
    return _coupling(group.name, irreps, inner, out)


@lru_cache(maxsize=4096)
def _coupling(group_name: str, irreps, inner, out) -> np.ndarray:
    labels = list(inner) + [out]
    acc = _real(cg(group_name, irreps[0], irreps[1], labels[0]))
    for r in range(2, len(irreps)):
        step = _real(cg(group_name, labels[r - 2], irreps[r], labels[r - 1]))
        acc = np.tensordot(acc, step, axes=([acc.ndim - 1], [0]))
    acc.flags.writeable = False
    return acc


def _real(c: np.ndarray) -> np.ndarray:
    # SU2's Condon–Shortley coefficients are real numbers stored as complex.
    return np.ascontiguousarray(c.real) if np.iscomplexobj(c) else c


# ----------------------------------------------------------------------------- weights and normalisation


def _numel(shape: tuple[int, ...]) -> int:
    """Weights of one path: an empty shape means none (not the 1 of an empty product)."""
    return math.prod(shape) if shape else 0


def path_weight_shape(mode: str, in_muls: list[int], out_mul: int) -> tuple[int, ...]:
    if mode == "uvw":
        return tuple(in_muls) + (out_mul,)
    if mode == "uvu":
        return tuple(in_muls)
    if mode == "uuu":
        return (in_muls[0],)
    if mode == "linear":
        return (in_muls[0], out_mul)
    return ()


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
    """form: "cheaper" (by the cost model), or "operator" / "pairwise" to force one form where it
    applies (for benchmarks/bench_operator.py and comparisons)."""
    group = diagram.group
    kind, mode = data["kind"], weight_mode(data, diagram)
    ins = [diagram.irreps(w) for w in data["inputs"]]
    outs = [diagram.irreps(w) for w in data["outputs"]]
    paths = vertex_paths(group, kind, ins, outs)
    line = data["span"].line if data.get("span") else 0
    if kind == "split":
        # Only in closed diagrams (check.py), which the reference evaluator handles; no kernel.
        return VertexPlan(node, kind, mode, data["inputs"], data["outputs"], None, paths,
                          [1.0] * len(paths), [], False, [], 0, 0, line)

    def in_muls_of(p: Path) -> list[int]:
        return [ins[r][t].mul for r, t in enumerate(p.ins)]

    coeffs = coefficients(mode, kind, paths, in_muls_of)
    shapes = [path_weight_shape(mode, in_muls_of(p), outs[0][p.outs[0]].mul) for p in paths]
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
                                           offsets, data["external"], batch, across)
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
    naive = [_naive_path_cost(kind, mode, ins, outs[0], p, shapes[k], data["external"], batch)
             for k, p in enumerate(paths)]
    flops = sum(c.flops for c in contractions) + sum(b.flops for b in blocks)
    return VertexPlan(node, kind, mode, data["inputs"], data["outputs"], outs[0], paths, coeffs, shapes,
                      data["external"], contractions, flops, sum(f for f, _ in naive), line,
                      cost, sum(c for _, c in naive), blocks, groups)


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
        groups.append(OutputGroup(mul, terms, tuple(offs)))
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
            blocks.append(OperatorBlock(a, u, d, g, K.reshape(d_y, rows, q), index, members,
                                        eq, shapes, z_flops + w_flops + bmm_flops, cost))
            total += cost
    for og in groups:   # each group's accumulator is transposed back into the output's layout
        total += COPY_WEIGHT * B * og.offsets[-1] * og.mul + OP_OVERHEAD_FLOPS
    return total, blocks, groups


def _group_contractions(group, kind, mode, ins, out, segs, paths, coeffs, shapes, offsets, external, batch,
                        across_outputs=False):
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
                  [offsets[k] for k in members], external, batch)
        c.paths = members
        contractions.append(c)
    return contractions


def _channel_letters(mode: str, n: int) -> list[str]:
    return ["a"] * n if mode == "uuu" else [_CHANNEL_LETTERS[r] for r in range(n)]


def _contraction(group, kind, mode, ins, out, segs, out_term, paths, coeffs, shapes, offsets, external, batch):
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
        block = coupling(group, irreps, p.inner, out[out_term].irrep) * c
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


def _shared_contraction(group, kind, mode, ins, out, segs, _, paths, coeffs, shapes, offsets, external, batch):
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
    for p, c, off in zip(paths, coeffs, offsets):
        irreps = tuple(ins[r][t].irrep for r, t in enumerate(p.ins))
        d_o = out[p.outs[0]].irrep.dim
        where = tuple(slice(s.offset(ins[r], p.ins[r]), s.offset(ins[r], p.ins[r]) + irreps[r].dim)
                      for r, s in enumerate(segs))
        K[where + (slice(q, q + d_o),)] += coupling(group, irreps, p.inner, out[p.outs[0]].irrep) * c
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


def plan_diagram(diagram: Diagram, batch: int = PLAN_BATCH, form: str = "cheaper") -> Plan:
    """Plan every vertex of a checked open diagram, in an order where inputs come first."""
    order = _topological_vertices(diagram)
    return Plan(diagram, [plan_vertex(diagram, n, diagram.graph.nodes[n], batch, form) for n in order], batch)


def _topological_vertices(diagram: Diagram) -> list[str]:
    import networkx as nx
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
