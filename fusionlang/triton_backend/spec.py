"""What a Triton kernel needs to know about one fuse vertex, taken from its VertexPlan.

Everything here is plain data: the terms of each input and of the output (multiplicity,
irrep dimension, offset in the mul_ir layout), and per path its terms, its offset in
the flat weight vector and the nonzero entries of its coupling tensor with the path's
normalisation folded in.  The entries come from plan.coupling and plan.coefficients,
the same numbers the torch emitter puts into its constant tensors, so both backends
compute the same function.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..backend.plan import VertexPlan
from ..symmetry.coupling import cg
from ..symmetry.trees import coupling
from ..symmetry.trees import real_part as _real

# Coupling entries below this magnitude are rounding noise of the complex-to-real basis change
# (exact zeros in the exact coefficients); dropping them changes results by less than 1e-15.
NOISE = 1e-13
# A vertex whose kernels would unroll more coupling entries than this is left to the torch code:
# the generated source and Triton's compile time grow with the count.
MAX_ENTRIES = 6000


@dataclass(frozen=True)
class Term:
    mul: int
    dim: int          # irrep dimension
    offset: int       # where the term starts in the flat wire
    label: str        # e.g. "1o", for comments


@dataclass(frozen=True)
class KernelPath:
    index: int                                   # position in the vertex's path list (e3nn order)
    ins: tuple[int, ...]                         # term of each input
    out: int                                     # output term
    weight_offset: int                           # start of its weights in the flat vector
    entries: tuple[tuple[tuple[int, ...], int, float], ...]   # ((i1, ..., in), k, coefficient)
    text: str                                    # "1o x 2e -> 1o" for comments
    # n-ary paths: the left-deep tree's binary couplings, one entry list per stage: stage s couples
    # the previous stage's result (the first input for s = 0) with input s + 1 into inner[s] (the
    # output at the last stage); the path's normalisation is folded into the last stage.
    stages: tuple[tuple[tuple[tuple[int, int], int, float], ...], ...] = ()


@dataclass
class FuseSpec:
    stem: str                     # Python-safe name stem for the generated functions
    mode: str                     # uvu | uvw | uuu | none
    external: bool
    inputs: list[list[Term]]
    out: list[Term]
    paths: list[KernelPath]
    weight_numel: int
    line: int

    @property
    def arity(self) -> int:
        return len(self.inputs)

    @property
    def in_dims(self) -> list[int]:
        return [sum(t.mul * t.dim for t in terms) for terms in self.inputs]

    @property
    def out_dim(self) -> int:
        return sum(t.mul * t.dim for t in self.out)


def _terms(irreps) -> list[Term]:
    out, start = [], 0
    for t in irreps:
        out.append(Term(t.mul, t.irrep.dim, start, str(t.irrep)))
        start += t.dim
    return out


def fuse_spec(diagram, v: VertexPlan, stem: str) -> FuseSpec:
    group = diagram.group
    ins = [diagram.irreps(w) for w in v.inputs]
    out = v.out_irreps
    paths, offset = [], 0
    for k, (p, coeff, shape) in enumerate(zip(v.paths, v.coefficients, v.weight_shapes)):
        irreps = tuple(ins[r][t].irrep for r, t in enumerate(p.ins))
        tensor = coupling(group, irreps, p.inner, out[p.outs[0]].irrep) * coeff
        if np.iscomplexobj(tensor):
            tensor = tensor.real
        entries = tuple((tuple(int(i) for i in idx[:-1]), int(idx[-1]), float(tensor[idx]))
                        for idx in zip(*np.nonzero(np.abs(tensor) > NOISE)))
        inner = f" ({', '.join(map(str, p.inner))})" if p.inner else ""
        text = " x ".join(str(i) for i in irreps) + inner + f" -> {out[p.outs[0]].irrep}"
        stages = ()
        if len(irreps) > 2:
            labels = [irreps[0], *p.inner, out[p.outs[0]].irrep]
            stages = tuple(_entries(_real(cg(group.name, labels[s], irreps[s + 1], labels[s + 1])) *
                                    (coeff if s == len(irreps) - 2 else 1.0))
                           for s in range(len(irreps) - 1))
        paths.append(KernelPath(k, tuple(p.ins), p.outs[0], offset, entries, text, stages))
        offset += math.prod(shape) if shape else 0
    return FuseSpec(stem, v.mode, v.external, [_terms(w) for w in ins], _terms(out), paths, offset, v.line)


def _entries(tensor: np.ndarray) -> tuple:
    """((i, j), k, value) for the nonzero entries of a [di, dj, dk] coupling."""
    return tuple(((int(i), int(j)), int(k), float(tensor[i, j, k]))
                 for i, j, k in zip(*np.nonzero(np.abs(tensor) > NOISE)))


def unsupported_reason(diagram, v: VertexPlan) -> str | None:
    """Why this vertex keeps its torch code under the Triton backend (None: it gets kernels)."""
    if v.kind != "fuse":
        return f"{v.kind} vertices have no Triton kernel"
    if v.symmetric_bases:
        return "symmetric fuse: its weights are coordinates in a basis of symmetric maps (torch code only)"
    if v.weights_on_nodes:
        return "the planner applies its shared weights on the nodes, after the scatter"
    if diagram.group_name == "SU2":
        return "SU2 tensors are complex; Triton kernels are generated for real (O3, SO3) tensors"
    n = len(v.inputs)
    if n > 2 and v.mode not in ("uvu", "uuu"):
        return f"n-ary fuse with weights={v.mode} has no Triton kernel (uvu and uuu do)"
    ins = [diagram.irreps(w) for w in v.inputs]
    if n > 2 and v.mode == "uvu" and any(t.mul != 1 for w in ins[1:] for t in w):
        return "n-ary uvu needs multiplicity 1 on every input after the first"
    if v.mode == "uuu" and any(ins[r][t].mul != ins[0][p.ins[0]].mul for p in v.paths for r, t in enumerate(p.ins)):
        return "uuu paths must have one multiplicity on every input"
    if v.mode == "none":
        # Output channel (u, v) is u * mul_b + v: every path into an output term must agree on mul_b.
        second = {}
        for p in v.paths:
            if second.setdefault(p.outs[0], ins[1][p.ins[1]].mul) != ins[1][p.ins[1]].mul:
                return "weights=none paths into one output term with different multiplicity layouts"
    entries = sum(int(np.count_nonzero(np.abs(coupling(diagram.group, tuple(ins[r][t].irrep for r, t in
                                                                                enumerate(p.ins)),
                                                         p.inner, v.out_irreps[p.outs[0]].irrep)) > NOISE))
                  for p in v.paths)
    if entries > MAX_ENTRIES:
        return f"{entries} coupling entries to unroll (more than {MAX_ENTRIES})"
    return None
