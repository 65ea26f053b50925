"""Symmetric fusion (docs/language.md section 10): a basis of the maps x -> T(x, x, ..., x).

The unreduced vertex ``fuse(A, A, ..., A) [weights=uuu]`` computes, per channel,

    F(x) = sum_p  w_p  c_p  T_p(x, x, ..., x)

over the complete paths p of the n-ary fuse that end in one output irrep
(T_p: the isometric coupling of the left-deep tree, c_p its normalisation).
Many of these functions coincide or vanish: T_p(x, ..., x) only sees the part
of T_p that is symmetric under permutations of its inputs.  The weight vectors
w that give the zero function form ker(M), where column p of M is that
symmetric part; the functions themselves are parametrised without redundancy
by coordinates in ker(M)'s orthogonal complement.  `symmetric_basis` returns an
orthonormal basis U of that complement, so that

    w = U @ c        (c: the symmetric vertex's weights, one row per basis vector)

gives every function of the unreduced vertex exactly once.  Because U's
columns are orthonormal and span ker(M)'s complement, standard-normal c gives
the same distribution of functions as standard-normal w on the unreduced
vertex: the symmetric vertex keeps the unreduced one's normalisation.

How it is computed (in float64):

* A path's function only involves the input terms it reads, so paths group by
  the *multiset* of their input terms; different multisets give linearly
  independent functions (different monomials), and M is block diagonal.
* Within a group, each T_p is transposed so that its input axes read the terms
  in sorted order, then averaged over the permutations of axes that read the
  same term.  The result S_p determines the function uniquely; M's block is
  [vec S_p for p in the group].
* The rank comes from the block's singular values: every CG tensor is
  isometric (||T_p|| = sqrt(d_out)), so the nonzero singular values are O(1)
  algebraic numbers and the zero ones are rounding, about 1e-15; the cut is
  RANK_TOLERANCE.  The basis is canonical: the first independent paths in the
  path order (the pivots) are projected onto the complement and orthonormalised
  in that order (QR with a positive diagonal), which depends continuously on
  the input and not on how a LAPACK build orders degenerate singular vectors,
  so a trained parameter file means the same on every machine.

Stated error: every basis is checked when it is built; U^T U = I and
M (I - U U^T) = 0 hold to MAX_ERROR (entries of U are accurate to about
1e-14), else ValueError.  tests/test_symmetric.py checks the rank against
the multiplicity of the output irrep in the symmetric power Sym^n, computed
independently from characters.

Bases are cached in memory per (group, one channel's irreps, n, output irrep),
as coupling tensors are; they are read-only.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .groups import GROUPS, Irrep, Irreps, MulIrrep
from .paths import Path, fuse_paths
from .trees import coupling

RANK_TOLERANCE = 1e-9    # singular values below this (relative to sqrt(d_out)) count as zero
MAX_ERROR = 1e-12        # the checked accuracy of every basis


@dataclass(frozen=True)
class SymmetricBasis:
    """The symmetric equivariant maps of one channel's irreps, n inputs, into one output irrep."""
    irreps: tuple[Irrep, ...]       # one channel of the input wire, term by term
    order: int                      # n, the number of inputs
    out: Irrep
    paths: tuple[Path, ...]         # complete paths of the unreduced fuse into `out` (rows of U), path order
    U: np.ndarray                   # [len(paths), rank], orthonormal columns
    terms: tuple[tuple[int, ...], ...]   # per column: the sorted input terms (multiset) it lives on
    blocks: tuple[np.ndarray, ...]  # per column j: sum_p U[p, j] S_p, [d_s1, ..., d_sn, d_out]
                                    # (without the path normalisation c_p)
    zero_paths: tuple[int, ...]     # paths whose function T_p(x, ..., x) is identically zero
    error: float                    # max of |U^T U - I| and |M (I - U U^T)|, as checked
    # The rank decision's margin, relative to sqrt(d_out): the smallest singular value kept and the
    # largest one dropped, over all groups (1.0 and 0.0 where there is none).
    smallest_kept: float = 1.0
    largest_dropped: float = 0.0

    @property
    def rank(self) -> int:
        return self.U.shape[1]


def symmetric_basis(group_name: str, irreps, order: int, out: Irrep) -> SymmetricBasis:
    """The basis for `order` copies of a wire whose channel has `irreps`, into `out` (cached)."""
    return _basis(group_name, tuple(irreps), int(order), out)


def vertex_bases(group_name: str, wire: Irreps, order: int, out: Irreps) -> list[SymmetricBasis]:
    """One basis per output term of fuse(wire, ..., wire) [weights=uuu, symmetric]."""
    return [symmetric_basis(group_name, wire.irreps, order, t.irrep) for t in out]


def _stabiliser(terms: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Permutations of the axes that only exchange axes reading the same term."""
    runs = [list(g) for _, g in itertools.groupby(range(len(terms)), key=lambda a: terms[a])]
    perms = []
    for choice in itertools.product(*[itertools.permutations(r) for r in runs]):
        perms.append(tuple(a for run in choice for a in run))
    return perms


def symmetric_part(tensor: np.ndarray, terms: tuple[int, ...]) -> tuple[tuple[int, ...], np.ndarray]:
    """(sorted terms, S): the tensor of a path reading `terms`, as the unique coefficient tensor of
    its function on the sorted terms (axes sorted, then averaged over equal-term permutations)."""
    n = len(terms)
    perm = sorted(range(n), key=lambda a: terms[a])      # stable: ties keep their order
    s = tuple(terms[a] for a in perm)
    moved = tensor.transpose(perm + [n])
    stab = _stabiliser(s)
    acc = np.zeros_like(moved)
    for sigma in stab:
        acc += moved.transpose(list(sigma) + [n])
    return s, acc / len(stab)


@lru_cache(maxsize=1024)
def _basis(group_name: str, irreps: tuple[Irrep, ...], order: int, out: Irrep) -> SymmetricBasis:
    group = GROUPS[group_name]
    if order < 2:
        raise ValueError("a symmetric fuse has at least two inputs")
    one = Irreps(MulIrrep(1, ir) for ir in irreps)
    paths = fuse_paths(group, [one] * order, Irreps([MulIrrep(1, out)]))
    tol = RANK_TOLERANCE * math.sqrt(out.dim)
    groups: dict[tuple[int, ...], list[int]] = {}
    parts: list[np.ndarray] = []
    for k, p in enumerate(paths):
        s, S = symmetric_part(coupling(group, tuple(irreps[t] for t in p.ins), p.inner, out), p.ins)
        groups.setdefault(s, []).append(k)
        parts.append(S)
    zero = tuple(k for k, S in enumerate(parts) if np.linalg.norm(S) < tol)
    U = np.zeros((len(paths), 0))
    columns, terms, blocks, error = [], [], [], 0.0
    kept, dropped = [1.0], [0.0]
    # Groups in the order of their first path, so that columns follow the path order.
    for s, members in sorted(groups.items(), key=lambda item: item[1][0]):
        M = np.stack([parts[k].reshape(-1) for k in members], axis=1)        # [entries, paths]
        _, sv, Vt = np.linalg.svd(M, full_matrices=False)
        rank = int(np.sum(sv > tol))
        kept += list(sv[:rank] / math.sqrt(out.dim))
        dropped += list(sv[rank:] / math.sqrt(out.dim))
        if rank == 0:
            continue
        V = Vt[:rank].T                                                       # the complement, any basis
        projector = V @ V.T
        pivots = _pivots(M, rank, tol)
        Q, R = np.linalg.qr(projector[:, pivots])
        Q = Q * np.sign(np.diag(R))                                           # positive diagonal: canonical
        error = max(error, float(np.abs(Q.T @ Q - np.eye(rank)).max()),
                    float(np.abs(M - M @ Q @ Q.T).max()))
        for j in range(rank):
            column = np.zeros(len(paths))
            column[members] = Q[:, j]
            columns.append(column)
            terms.append(s)
            block = sum(Q[i, j] * parts[k] for i, k in enumerate(members))
            block.flags.writeable = False
            blocks.append(block)
    if columns:
        U = np.stack(columns, axis=1)
    if error > MAX_ERROR:
        raise ValueError(f"symmetric basis for {order} x ({' + '.join(map(str, irreps))}) -> {out}: "
                         f"float64 error {error:.1e} exceeds {MAX_ERROR:.0e}")
    U.flags.writeable = False
    return SymmetricBasis(tuple(irreps), order, out, tuple(paths), U, tuple(terms), tuple(blocks), zero, error,
                          min(kept), max(dropped))


def _pivots(M: np.ndarray, rank: int, tol: float) -> list[int]:
    """The first `rank` columns of M, in order, that are independent of the ones before them."""
    chosen: list[int] = []
    basis = np.zeros((M.shape[0], 0))
    for k in range(M.shape[1]):
        residual = M[:, k] - basis @ (basis.T @ M[:, k])
        residual = residual - basis @ (basis.T @ residual)     # twice: classical Gram-Schmidt's fix
        norm = np.linalg.norm(residual)
        if norm > tol:
            chosen.append(k)
            basis = np.concatenate([basis, (residual / norm)[:, None]], axis=1)
            if len(chosen) == rank:
                break
    if len(chosen) != rank:
        raise ValueError("symmetric basis: the pivot search disagrees with the singular values")
    return chosen


def unreduced_weights(basis: SymmetricBasis, coordinates: np.ndarray) -> np.ndarray:
    """Per-path weights w = U @ c: coordinates [..., rank, mul] -> [..., paths, mul]."""
    return np.einsum("pr,...ru->...pu", basis.U, coordinates)
