"""Spherical harmonics of 3d vectors, numerically e3nn's ``o3.spherical_harmonics``.

How they are computed: ``Y^1(x)`` is ``sqrt(3) x`` (component normalization)
and every further degree follows from the one below by one coupling,

    Y^l(x) = s_l * C_l . (Y^{l-1}(x) (x) x),

where ``C_l`` is the real Clebsch-Gordan tensor ``(l-1) (x) 1 -> l`` (built here
from the closed-form ``j (x) 1 -> j+1`` coefficients and e3nn's real basis,
``coupling.real_to_complex``) and ``s_l`` the constant that gives
``|Y^l| = sqrt(2l+1)`` on the unit sphere with ``Y^l_0 > 0`` on the polar
(second) axis.  The recurrence holds for homogeneous polynomials, so
``normalize=False`` gives ``|x|^l Y^l(x/|x|)`` like e3nn, and it works for any l.

For speed on CPU the points are laid out component-major (``[3, n]``), so each
degree costs one broadcast product and one small matrix product over all
points; the output normalization is folded into the ``C_l``.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from ..symmetry.coupling import real_to_complex
from ._buffers import ConstantBuffers, cast
from .irreps import Irreps

__all__ = ["spherical_harmonics", "SphericalHarmonics"]

NORMALIZATIONS = ("integral", "component", "norm")
# F.normalize's eps: vectors shorter than this are divided by it, so zero gives zero.
_NORMALIZE_EPS = 1e-12


def _complex_top_coupling(l: int) -> np.ndarray:
    """<l-1 m1; 1 m2 | l m> in the standard basis, indexed [l-1+m1, 1+m2, l+m]."""
    out = np.zeros((2 * l - 1, 3, 2 * l + 1))
    for m in range(-l, l + 1):
        for m2, num, den in ((1, (l + m - 1) * (l + m), (2 * l - 1) * 2 * l),
                             (0, (l - m) * (l + m), (2 * l - 1) * l),
                             (-1, (l - m - 1) * (l - m), (2 * l - 1) * 2 * l)):
            m1 = m - m2
            if abs(m1) <= l - 1:
                out[l - 1 + m1, 1 + m2, l + m] = math.sqrt(num / den)
    return out


def _real_top_coupling(l: int) -> np.ndarray:
    """The same tensor in e3nn's real basis, [2l-1, 3, 2l+1]."""
    q_in, q_vec, q_out = real_to_complex(l - 1), real_to_complex(1), real_to_complex(l)
    t = np.einsum("ikn,ix,ky,nz->xyz", _complex_top_coupling(l), q_in, q_vec, q_out.conj(), optimize=True)
    if np.abs(t.imag).max() > 1e-12:  # pragma: no cover - a broken basis change
        raise AssertionError(f"the real coupling (l-1) x 1 -> {l} is not real")
    return np.ascontiguousarray(t.real)


def _scale(l: int, normalization: str) -> float:
    """The factor from component normalization to the requested one."""
    if normalization == "component":
        return 1.0
    if normalization == "norm":
        return 1.0 / math.sqrt(2 * l + 1)
    return 1.0 / math.sqrt(4 * math.pi)


@lru_cache(maxsize=None)
def _component_steps(lmax: int) -> tuple:
    """Matrices ``M_l`` [2l+1, 3(2l-1)] with ``Y^l = M_l (Y^{l-1} (x) x)``, component normalization."""
    steps = []
    pole = np.array([0.0, 1.0, 0.0])
    y_pole = np.array([0.0, math.sqrt(3.0), 0.0])           # Y^1 on the pole
    for l in range(2, lmax + 1):
        m = _real_top_coupling(l).reshape(3 * (2 * l - 1), 2 * l + 1).T
        v = m @ np.outer(y_pole, pole).reshape(-1)
        s = math.sqrt(2 * l + 1) / np.linalg.norm(v) * np.sign(v[l])
        m = m * s
        y_pole = m @ np.outer(y_pole, pole).reshape(-1)
        m.flags.writeable = False
        steps.append(m)
    return tuple(steps)


@lru_cache(maxsize=None)
def _plan(lmax: int, normalization: str):
    """(Y^0 value, Y^1 factor, flat float64 array of the scaled M_l, offsets) for one normalization."""
    steps = _component_steps(lmax)
    y0 = _scale(0, normalization)
    y1 = math.sqrt(3.0) * _scale(1, normalization)
    pieces, offsets, start = [], [], 0
    for l, m in zip(range(2, lmax + 1), steps):
        scaled = m * (_scale(l, normalization) / _scale(l - 1, normalization))
        pieces.append(scaled.reshape(-1))
        offsets.append(start)
        start += scaled.size
    flat = np.concatenate(pieces) if pieces else np.zeros(0)
    return y0, y1, flat, tuple(offsets)


def _ls_of(l):
    """(list of degrees, irreps_out) from an int, a list of ints, an irreps string or Irreps."""
    if isinstance(l, (int, np.integer)) and not isinstance(l, bool):
        ls, p_in = [int(l)], -1
    elif not isinstance(l, (str, Irreps)) and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in l):
        ls, p_in = [int(v) for v in l], -1
    else:
        irreps = Irreps(l)
        # e3nn: an odd l with even parity means the input is a pseudovector (1e)
        p_in = 1 if any(ir.l % 2 == 1 and ir.p == 1 for _, ir in irreps) else -1
        ls = []
        for mul, ir in irreps:
            if ir.p != p_in ** ir.l:
                want = f"{ir.l}{'e' if p_in ** ir.l == 1 else 'o'}"
                raise ValueError(
                    f"spherical harmonics of {'a pseudovector' if p_in == 1 else 'a vector'} have parity "
                    f"{'even' if want.endswith('e') else 'odd'} at l = {ir.l}, not `{ir}`; write `{want}`")
            ls.extend([ir.l] * mul)
    if not ls:
        raise ValueError("spherical harmonics need at least one degree l")
    if any(v < 0 for v in ls):
        raise ValueError(f"degrees must be >= 0, got {ls}")
    irreps_out = Irreps([(1, (v, p_in ** v)) for v in ls]).simplify()
    return ls, irreps_out


def _evaluate(x: torch.Tensor, ls, lmax: int, normalize: bool, y0: float, y1: float,
              coefficients: torch.Tensor, offsets) -> torch.Tensor:
    if x.shape[-1] != 3:
        raise ValueError(f"spherical harmonics take vectors [..., 3], got shape {tuple(x.shape)}")
    batch = x.shape[:-1]
    points = x.reshape(-1, 3)
    n = points.shape[0]
    if lmax <= 1:
        # no coupling step: stay in the caller's [n, 3] layout
        if normalize:
            scale = y1 / torch.linalg.vector_norm(points, dim=1, keepdim=True).clamp_min(_NORMALIZE_EPS)
            y_1 = points * scale
        else:
            y_1 = points * y1
        if tuple(ls) == (0, 1):
            return torch.nn.functional.pad(y_1, (1, 0), value=y0).reshape(batch + (4,))
        blocks = [points.new_full((n, 1), y0) if l == 0 else y_1 for l in ls]
        out = torch.cat(blocks, dim=1) if len(blocks) > 1 else blocks[0]
        return out.reshape(batch + (out.shape[1],))
    cols = torch.stack(points.unbind(1))                          # [3, n], component-major
    if normalize:
        # x / max(|x|, eps), as torch.nn.functional.normalize: zero vectors give zero
        cols = cols / (cols * cols).sum(0, keepdim=True).clamp_min(_NORMALIZE_EPS ** 2).sqrt()
    ys = [None, cols * y1] + [None] * (lmax - 1)
    for l in range(2, lmax + 1):
        rows, inner = 2 * l + 1, 3 * (2 * l - 1)
        step = coefficients[offsets[l - 2]:offsets[l - 2] + rows * inner].view(rows, inner)
        ys[l] = step @ (ys[l - 1][:, None, :] * cols[None, :, :]).reshape(inner, n)
    blocks = [points.new_full((n, 1), y0) if l == 0 else ys[l].t() for l in ls]
    out = torch.cat(blocks, dim=1) if len(blocks) > 1 else blocks[0].contiguous()
    return out.reshape(batch + (out.shape[1],))


_FUNCTION_CACHE: dict = {}


@lru_cache(maxsize=None)
def _constants(l, normalization: str) -> tuple:
    """(degrees, lmax, Y^0 value, Y^1 factor, coefficients, offsets) as plain Python values."""
    ls, _ = _ls_of(l)
    lmax = max(ls)
    y0, y1, flat, offsets = _plan(lmax, normalization)
    return tuple(ls), lmax, y0, y1, tuple(float(v) for v in flat), offsets


@torch.compiler.assume_constant_result
def _traced_constants(l, normalization: str) -> tuple:
    # torch.compile / torch.export run this eagerly and keep the result as a constant
    return _constants(l, normalization)


def spherical_harmonics(l, x: torch.Tensor, normalize: bool, normalization: str = "integral") -> torch.Tensor:
    """Spherical harmonics ``Y^l(x)``, e3nn's ``o3.spherical_harmonics`` with the same arguments.

    ``l``: an int, a list of ints, or irreps such as ``"0e + 1o + 2e"`` (the
    output is the blocks in that order).  ``x``: ``[..., 3]``.  ``normalize``:
    project ``x`` on the unit sphere first (zero vectors give zero).
    ``normalization``: ``"integral"`` (unit L2 norm on the sphere),
    ``"component"`` (``|Y^l|^2 = 2l+1`` on the sphere) or ``"norm"`` (``|Y^l| = 1``).
    Returns ``[..., sum(2l+1)]``.
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization is one of {NORMALIZATIONS}, got {normalization!r}")
    if isinstance(l, np.integer):
        l = int(l)
    key_l = l if isinstance(l, (int, str)) else (l._text if isinstance(l, Irreps) else tuple(l))
    if torch.compiler.is_compiling():
        ls, lmax, y0, y1, flat, offsets = _traced_constants(key_l, normalization)
        coefficients = torch.tensor(flat, dtype=x.dtype, device=x.device)
    else:
        key = (key_l, normalization, x.dtype, x.device)
        entry = _FUNCTION_CACHE.get(key)
        if entry is None:
            ls, lmax, y0, y1, flat, offsets = _constants(key_l, normalization)
            entry = (ls, lmax, y0, y1, torch.tensor(flat, dtype=x.dtype, device=x.device), offsets)
            _FUNCTION_CACHE[key] = entry
        ls, lmax, y0, y1, coefficients, offsets = entry
    return _evaluate(x, ls, lmax, normalize, y0, y1, coefficients, offsets)


class SphericalHarmonics(ConstantBuffers):
    """Module form of ``spherical_harmonics`` (e3nn's ``o3.SphericalHarmonics``).

    The coupling constants are non-persistent buffers that follow ``.to(device)``
    but keep their float64 (and a float32 copy) through dtype moves; ``forward``
    uses the input's dtype.
    """

    def __init__(self, irreps_out, normalize: bool, normalization: str = "integral", irreps_in=None):
        super().__init__()
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization is one of {NORMALIZATIONS}, got {normalization!r}")
        ls, irreps = _ls_of(irreps_out)
        if irreps_in is not None:
            irreps_in = Irreps(irreps_in)
            if irreps_in not in (Irreps("1o"), Irreps("1e")):
                raise ValueError(f"spherical harmonics take a vector 1o or a pseudovector 1e, not {irreps_in}")
            p_in = irreps_in[0].ir.p
            irreps = Irreps([(1, (v, p_in ** v)) for v in ls]).simplify()
        self.irreps_in = Irreps("1o") if irreps_in is None else irreps_in
        self.irreps_out = irreps
        self.normalize = bool(normalize)
        self.normalization = normalization
        self._ls = tuple(ls)
        self._lmax = max(ls)
        y0, y1, flat, offsets = _plan(self._lmax, normalization)
        self._y0, self._y1, self._offsets = y0, y1, offsets
        self.register_constant("coefficients", torch.tensor(flat, dtype=torch.float64))
        self.register_constant("coefficients_float32", torch.tensor(flat, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        coefficients = self.coefficients_float32 if x.dtype == torch.float32 else cast(self.coefficients, x)
        return _evaluate(x, self._ls, self._lmax, self.normalize, self._y0, self._y1, coefficients, self._offsets)

    def extra_repr(self) -> str:
        return f"{self.irreps_out}, normalize={self.normalize}, normalization={self.normalization!r}"
