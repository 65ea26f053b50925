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

from ..backend.plan import VertexPlan, symmetric_paths
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


def path_tensors(diagram, v: VertexPlan) -> list[np.ndarray]:
    """Each path's coupling tensor [d1, ..., dn, d_out], normalisation included: the left-deep tree's
    coupling, or for a symmetric fuse its basis function's block (plan.symmetric_paths)."""
    ins = [diagram.irreps(w) for w in v.inputs]
    if v.symmetric_bases:
        return list(symmetric_paths(diagram.group_name, ins, v.out_irreps)[4])
    tensors = []
    for p, coeff in zip(v.paths, v.coefficients):
        irreps = tuple(ins[r][t].irrep for r, t in enumerate(p.ins))
        tensor = coupling(diagram.group, irreps, p.inner, v.out_irreps[p.outs[0]].irrep) * coeff
        tensors.append(tensor.real if np.iscomplexobj(tensor) else tensor)
    return tensors


def _monomials(entries: tuple, terms: tuple[int, ...]) -> tuple:
    """Entries of a fuse of one wire with itself, summed by monomial: positions that read the same
    term (consecutive: `terms` is sorted) multiply the same variables in any order, so (i, j, k) and
    (j, i, k) are one product there.  A symmetric fuse's blocks are symmetric in those positions, so
    this folds up to n! entries into one."""
    runs = [[a for a in range(len(terms)) if terms[a] == t] for t in sorted(set(terms))]
    merged: dict[tuple, float] = {}
    for idx, k, c in entries:
        key = (tuple(i for run in runs for i in sorted(idx[a] for a in run)), k)
        merged[key] = merged.get(key, 0.0) + c
    return tuple((idx, k, c) for (idx, k), c in merged.items() if abs(c) > NOISE)


def fuse_spec(diagram, v: VertexPlan, stem: str) -> FuseSpec:
    group = diagram.group
    ins = [diagram.irreps(w) for w in v.inputs]
    out = v.out_irreps
    paths, offset = [], 0
    for k, (p, coeff, shape, tensor) in enumerate(zip(v.paths, v.coefficients, v.weight_shapes,
                                                      path_tensors(diagram, v))):
        irreps = tuple(ins[r][t].irrep for r, t in enumerate(p.ins))
        entries = tuple((tuple(int(i) for i in idx[:-1]), int(idx[-1]), float(tensor[idx]))
                        for idx in zip(*np.nonzero(np.abs(tensor) > NOISE)))
        inner = f" ({', '.join(map(str, p.inner))})" if p.inner else ""
        if v.symmetric_bases:
            inner = f" (symmetric {sum(1 for q in v.paths[:k] if q.outs == p.outs)})"
            if len(set(v.inputs)) == 1:
                entries = _monomials(entries, tuple(p.ins))     # p.ins: sorted terms of the one wire
        text = " x ".join(str(i) for i in irreps) + inner + f" -> {out[p.outs[0]].irrep}"
        stages = ()
        if len(irreps) > 2 and not v.symmetric_bases:
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
    if diagram.group_name == "SU2":
        return "SU2 tensors are complex; Triton kernels are generated for real (O3, SO3) tensors"
    n = len(v.inputs)
    if n > 2 and v.mode == "none":
        return "n-ary fuse with weights=none has no Triton kernel (uvu, uvw and uuu do)"
    ins = [diagram.irreps(w) for w in v.inputs]
    # (n-ary uvu: the checker requires multiplicity 1 on every input after the first, F052)
    if v.mode == "uuu" and any(ins[r][t].mul != ins[0][p.ins[0]].mul for p in v.paths for r, t in enumerate(p.ins)):
        return "uuu paths must have one multiplicity on every input"
    if v.mode == "none":
        # Output channel (u, v) is u * mul_b + v: every path into an output term must agree on mul_b.
        second = {}
        for p in v.paths:
            if second.setdefault(p.outs[0], ins[1][p.ins[1]].mul) != ins[1][p.ins[1]].mul:
                return "weights=none paths into one output term with different multiplicity layouts"
    entries = sum(int(np.count_nonzero(np.abs(t) > NOISE)) for t in path_tensors(diagram, v))
    if entries > MAX_ENTRIES:
        return f"{entries} coupling entries to unroll (more than {MAX_ENTRIES})"
    return None
