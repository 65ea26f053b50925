"""Coupling tensors of left-deep fusion trees: products of Clebsch-Gordan tensors, real float64.

Shared by the planner (backend/plan.py), the symmetric bases (symmetric.py) and the Triton backend.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from .coupling import cg
from .groups import Group, Irrep


def coupling(group: Group, irreps: tuple[Irrep, ...], inner: tuple[Irrep, ...], out: Irrep) -> np.ndarray:
    """The isometric coupling of a left-deep tree: [d1, ..., dn, d_out], real float64."""
    return _coupling(group.name, irreps, inner, out)


@lru_cache(maxsize=4096)
def _coupling(group_name: str, irreps, inner, out) -> np.ndarray:
    labels = list(inner) + [out]
    acc = real_part(cg(group_name, irreps[0], irreps[1], labels[0]))
    for r in range(2, len(irreps)):
        step = real_part(cg(group_name, labels[r - 2], irreps[r], labels[r - 1]))
        acc = np.tensordot(acc, step, axes=([acc.ndim - 1], [0]))
    acc.flags.writeable = False
    return acc


def real_part(c: np.ndarray) -> np.ndarray:
    # SU2's Condon–Shortley coefficients are real numbers stored as complex.
    return np.ascontiguousarray(c.real) if np.iscomplexobj(c) else c
