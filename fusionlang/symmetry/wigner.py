"""Wigner D matrices of O3, SO3 and SU2 (numpy), in the bases of ``coupling.cg``.

Angles follow e3nn: a rotation is ``R(alpha, beta, gamma) = Ry(alpha) Rx(beta) Ry(gamma)``
(gamma about Y first, then beta about X, then alpha about Y), acting on
column vectors ``(x, y, z)``.

* O3/SO3: ``wigner_D`` is e3nn's ``Irrep.D_from_angles`` in e3nn's real basis
  (index ``l + m``); for O3 ``inversion=True`` multiplies by the parity
  (the improper element ``-R``).  ``wigner_D("SO3", 1, ...) == rotation_matrix(...)``.
* SU2: the complex standard basis (index ``j + m``) with Condon–Shortley
  angular-momentum matrices.  ``D^j(alpha, beta, gamma) = exp(i alpha Jz) exp(-i beta Jy) exp(i gamma Jz)``,
  i.e. ``D[j+m', j+m] = e^{i m' alpha} d^j_{m'm}(beta) e^{i m gamma}`` with the
  textbook small-d ``d^j(beta) = exp(-i beta Jy)``.  It is chosen so that for
  integer ``j = l`` it is exactly the real D seen in the complex basis:
  ``D_SU2 = Q D_SO3 Q^H`` with ``Q = coupling.real_to_complex(l)``.  Angles are not
  reduced modulo 2pi, so half-integer spins show the double cover:
  ``D(alpha + 2pi, beta, gamma) = -D(alpha, beta, gamma)``.

Every function accepts scalar angles or broadcastable arrays; the matrices get
the broadcast shape in front: ``[..., dim, dim]``.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from .coupling import _as_irrep, _group
from .real_basis import real_to_complex
from .groups import MulIrrep

__all__ = ["random_rotation", "rotation_matrix", "angles_from_matrix", "wigner_D", "irreps_D"]


def _rng(generator) -> np.random.Generator:
    if isinstance(generator, np.random.Generator):
        return generator
    return np.random.default_rng(generator)


def random_rotation(generator=None, size=None):
    """Haar-random Euler angles ``(alpha, beta, gamma)`` (e3nn's Y-X-Y convention).

    ``generator``: a ``numpy.random.Generator``, an int seed, or None (fresh
    entropy).  ``size``: None for three floats, or a shape for arrays.
    ``alpha, gamma`` are uniform on [0, 2pi), ``beta = arccos(u)`` with u
    uniform on [-1, 1].  Use ``rotation_matrix(*angles)`` for the 3x3 matrix.
    """
    g = _rng(generator)
    alpha = g.uniform(0.0, 2 * np.pi, size)
    beta = np.arccos(g.uniform(-1.0, 1.0, size))
    gamma = g.uniform(0.0, 2 * np.pi, size)
    if size is None:
        return float(alpha), float(beta), float(gamma)
    return alpha, beta, gamma


def _rot_y(t):
    c, s = np.cos(t), np.sin(t)
    o, z = np.ones_like(c), np.zeros_like(c)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def _rot_x(t):
    c, s = np.cos(t), np.sin(t)
    o, z = np.ones_like(c), np.zeros_like(c)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def rotation_matrix(alpha, beta, gamma) -> np.ndarray:
    """The 3x3 rotation ``Ry(alpha) @ Rx(beta) @ Ry(gamma)`` (e3nn's ``angles_to_matrix``), shape [..., 3, 3]."""
    alpha, beta, gamma = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in (alpha, beta, gamma)))
    return _rot_y(alpha) @ _rot_x(beta) @ _rot_y(gamma)


def angles_from_matrix(R) -> tuple:
    """Euler angles ``(alpha, beta, gamma)`` with ``rotation_matrix(alpha, beta, gamma) == R``.

    ``R`` is a rotation matrix (det +1), shape [..., 3, 3].  alpha, gamma in
    (-pi, pi], beta in [0, pi].
    """
    R = np.asarray(R, dtype=np.float64)
    # R e_y = Ry(alpha) Rx(beta) e_y = (sin(alpha) sin(beta), cos(beta), cos(alpha) sin(beta))
    v = R[..., :, 1]
    beta = np.arccos(np.clip(v[..., 1], -1.0, 1.0))
    alpha = np.arctan2(v[..., 0], v[..., 2])
    M = np.swapaxes(rotation_matrix(alpha, beta, np.zeros_like(alpha)), -1, -2) @ R   # = Ry(gamma)
    gamma = np.arctan2(M[..., 0, 2], M[..., 0, 0])
    if alpha.ndim == 0:
        return float(alpha), float(beta), float(gamma)
    return alpha, beta, gamma


@lru_cache(maxsize=None)
def _jy_eig(two_j: int):
    """Eigenvectors of the CS J_y and its exact eigenvalues m = -j..j."""
    j = two_j / 2
    m = np.arange(two_j + 1) / 1.0 - j          # m of index i: i - j
    # J+ |j m> = sqrt(j(j+1) - m(m+1)) |j m+1>: entry [i+1, i]
    jp = np.diag(np.sqrt(j * (j + 1) - m[:-1] * (m[:-1] + 1)), -1) if two_j else np.zeros((1, 1))
    jy = (jp - jp.T) / 2j
    w, v = np.linalg.eigh(jy)
    w = np.round(2 * w) / 2                     # the spectrum is exactly -j..j
    v.flags.writeable = False
    w.flags.writeable = False
    return w, v, m


def _small_d(two_j: int, beta: np.ndarray) -> np.ndarray:
    """d^j(beta) = exp(-i beta J_y), real, shape [..., d, d]."""
    w, v, _ = _jy_eig(two_j)
    ph = np.exp(-1j * beta[..., None] * w)                  # [..., d]
    d = (v * ph[..., None, :]) @ v.conj().T
    return d.real


def _su2_D(two_j: int, alpha, beta, gamma) -> np.ndarray:
    _, _, m = _jy_eig(two_j)
    d = _small_d(two_j, beta)
    left = np.exp(1j * alpha[..., None] * m)
    right = np.exp(1j * gamma[..., None] * m)
    return left[..., :, None] * d * right[..., None, :]


def wigner_D(group_name: str, irrep, alpha, beta, gamma, inversion: bool = False) -> np.ndarray:
    """The representation matrix of ``irrep`` at the rotation ``R(alpha, beta, gamma)``, shape [..., dim, dim].

    O3/SO3: float64 in e3nn's real basis (equals e3nn's
    ``Irrep.D_from_angles(alpha, beta, gamma, k)`` with ``k = inversion``);
    ``inversion=True`` (O3 only) multiplies by the irrep's parity.
    SU2: complex128 in the standard basis, see the module docstring.
    ``irrep`` is an Irrep or a label string such as ``"1o"`` or ``"3/2"``.
    """
    group = _group(group_name)
    ir = _as_irrep(group, irrep)
    if inversion and not group.has_parity:
        raise ValueError(f"group {group.name} has no inversion; only O3 does")
    alpha, beta, gamma = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in (alpha, beta, gamma)))
    Dc = _su2_D(ir.two_j, alpha, beta, gamma)
    if group.is_complex:
        return Dc
    q = real_to_complex(ir.l)
    D = (q.conj().T @ Dc @ q).real
    if inversion and ir.parity == -1:
        D = -D
    return np.ascontiguousarray(D)


def irreps_D(group_name: str, irreps, alpha, beta, gamma, inversion: bool = False) -> np.ndarray:
    """Block-diagonal D of a direct sum in e3nn's ``mul_ir`` layout, shape [..., dim, dim].

    ``irreps`` is a ``groups.Irreps`` (or any iterable of ``MulIrrep`` or
    ``(mul, irrep)`` pairs); each block ``wigner_D(irrep)`` is repeated ``mul``
    times along the diagonal, multiplicity outermost, blocks in the given order.
    """
    group = _group(group_name)
    terms = []
    for t in irreps:
        if isinstance(t, MulIrrep):
            mul, ir = t.mul, t.irrep
        else:
            mul, ir = t
        if int(mul) < 0:
            raise ValueError(f"negative multiplicity {mul}")
        terms.append((int(mul), _as_irrep(group, ir)))
    alpha, beta, gamma = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in (alpha, beta, gamma)))
    dim = sum(mul * ir.dim for mul, ir in terms)
    dtype = np.complex128 if group.is_complex else np.float64
    out = np.zeros(alpha.shape + (dim, dim), dtype=dtype)
    start = 0
    for mul, ir in terms:
        D = wigner_D(group_name, ir, alpha, beta, gamma, inversion=inversion)
        for _ in range(mul):
            out[..., start:start + ir.dim, start:start + ir.dim] = D
            start += ir.dim
    return out
