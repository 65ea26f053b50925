"""The change from e3nn's real basis to the standard complex one (Q_l), in float and exact form, and the
real coupling tensors it gives (docs/coupling.md)."""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np


def _sympy():
    import sympy
    return sympy


@lru_cache(maxsize=None)
def _real_to_complex_cached(l: int) -> np.ndarray:
    q = np.zeros((2 * l + 1, 2 * l + 1), dtype=np.complex128)
    r = 1 / math.sqrt(2)
    for m in range(-l, 0):
        q[l + m, l - m] = r
        q[l + m, l + m] = -1j * r
    q[l, l] = 1
    for m in range(1, l + 1):
        q[l + m, l + m] = (-1) ** m * r
        q[l + m, l - m] = 1j * (-1) ** m * r
    q *= (-1j) ** l
    q.flags.writeable = False
    return q


def real_to_complex(l: int) -> np.ndarray:
    """Q_l, the unitary [2l+1, 2l+1] complex128 matrix from e3nn's real basis to the standard one.

    Rows are indexed by the complex ``l + m``, columns by the real ``l + m``:
    ``v_complex = Q @ v_real``, ``D_real = Q^H D_complex Q``.  It is e3nn's
    ``change_basis_real_to_complex(l)`` (the real spherical harmonics of
    Wikipedia's "real form", times ``(-i)^l`` so that real CG tensors are real).
    The returned array is shared and read-only.
    """
    if not isinstance(l, (int, np.integer)) or l < 0:
        raise ValueError(f"l must be a non-negative int, got {l!r}")
    return _real_to_complex_cached(int(l))


def real_cg(a: int, b: int, c: int, complex_dense: np.ndarray) -> np.ndarray:
    q1, q2, q3 = (real_to_complex(x // 2) for x in (a, b, c))
    # C_real[x, y, z] = sum_{i,k,n} Q1[i,x] Q2[k,y] conj(Q3[n,z]) C[i,k,n]
    t = np.tensordot(complex_dense, q3.conj(), axes=([2], [0]))    # i k z
    t = np.tensordot(t, q2, axes=([1], [0]))                          # i z y
    t = np.tensordot(t, q1, axes=([0], [0]))                          # z y x
    t = t.transpose(2, 1, 0)
    if np.abs(t.imag).max(initial=0.0) > 1e-12:  # pragma: no cover - a broken invariant
        raise AssertionError(f"real CG for two_j={(a, b, c)} is not real")
    return np.ascontiguousarray(t.real)


@lru_cache(maxsize=None)
def _real_to_complex_exact_cached(l: int):
    sp = _sympy()
    r = 1 / sp.sqrt(2)
    q = [[sp.Integer(0)] * (2 * l + 1) for _ in range(2 * l + 1)]
    for m in range(-l, 0):
        q[l + m][l - m] = r
        q[l + m][l + m] = -sp.I * r
    q[l][l] = sp.Integer(1)
    for m in range(1, l + 1):
        q[l + m][l + m] = (-1) ** m * r
        q[l + m][l - m] = sp.I * (-1) ** m * r
    ph = (-sp.I) ** l
    return sp.ImmutableMatrix([[sp.expand(ph * x) for x in row] for row in q])


def real_to_complex_exact(l: int):
    """``real_to_complex(l)`` as an exact ``sympy.ImmutableMatrix``."""
    return _real_to_complex_exact_cached(int(l))
