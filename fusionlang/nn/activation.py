"""Equivariant nonlinearities: scalar ``Activation``, ``Gate`` and ``NormActivation`` (e3nn's semantics).

Scalar activations are rescaled to unit second moment under a standard normal
input, as e3nn does, so that a network's activations keep their scale.  The
moment is estimated the way e3nn estimates it (one million float64 normal
samples from a generator seeded with 0), so the numbers agree with e3nn's
layers exactly.
"""
from __future__ import annotations

import torch

from .irreps import Irreps

__all__ = ["normalize2mom", "Activation", "Gate", "NormActivation"]

_MOMENT_SAMPLES = 1_000_000
_IDENTITY_TOLERANCE = 1e-4          # a rescaling closer to 1 than this is dropped
_PARITY_TOLERANCE = 1e-5
_scale_cache: dict = {}


def _second_moment_scale(act) -> float:
    key = act if not isinstance(act, torch.nn.Module) else id(act)
    try:
        cached = _scale_cache.get(key)
    except TypeError:       # an unhashable callable
        cached, key = None, None
    if cached is not None:
        return cached
    with torch.no_grad():
        z = torch.randn(_MOMENT_SAMPLES, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        scale = act(z).pow(2).mean().pow(-0.5).item()
    if key is not None and not isinstance(act, torch.nn.Module):
        _scale_cache[key] = scale
    return scale


class normalize2mom(torch.nn.Module):  # noqa: N801 - e3nn's name
    """``act`` times the constant that gives ``E[act(z)^2] = 1`` for ``z ~ N(0, 1)``."""

    def __init__(self, act):
        super().__init__()
        if isinstance(act, normalize2mom):
            act = act.f
        self.f = act
        scale = _second_moment_scale(act)
        self.cst = 1.0 if abs(scale - 1.0) < _IDENTITY_TOLERANCE else scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.f(x)
        return y if self.cst == 1.0 else y * self.cst

    def extra_repr(self) -> str:
        return f"{getattr(self.f, '__name__', self.f)}, scale={self.cst:.6g}"


def _check_dim(layer, x: torch.Tensor, irreps: Irreps) -> None:
    if x.shape[-1] != irreps.dim:
        raise ValueError(f"{type(layer).__name__} on {irreps} takes [..., {irreps.dim}], got {tuple(x.shape)}")


def _parity_of(act) -> int:
    """+1 for an even function, -1 for an odd one, 0 for neither (checked on [0, 10])."""
    with torch.no_grad():
        x = torch.linspace(0.0, 10.0, 256)
        a, b = act(x), act(-x)
    if (a - b).abs().max() < _PARITY_TOLERANCE:
        return 1
    if (a + b).abs().max() < _PARITY_TOLERANCE:
        return -1
    return 0


class Activation(torch.nn.Module):
    """One activation function per term of ``irreps_in`` (``None``: pass through).

    Activated terms must be scalars.  An odd scalar (``0o``) stays odd under an
    odd function, becomes even under an even one, and is refused under a
    function that is neither (it would break the parity).
    """

    def __init__(self, irreps_in, acts):
        super().__init__()
        irreps_in = Irreps(irreps_in)
        acts = list(acts)
        if len(acts) != len(irreps_in):
            raise ValueError(f"{len(acts)} activation functions for the {len(irreps_in)} terms of {irreps_in}; "
                             "give one per term (None to leave a term as it is)")
        out, wrapped = [], []
        for (mul, ir), act in zip(irreps_in, acts):
            if act is None:
                out.append((mul, ir))
                wrapped.append(None)
                continue
            if ir.l != 0:
                raise ValueError(f"an activation function acts on scalars, not on `{ir}` (use Gate or "
                                 "NormActivation for l > 0)")
            f = normalize2mom(act)
            p_act = _parity_of(f)
            p_out = p_act if ir.p == -1 else ir.p
            if p_out == 0:
                raise ValueError(f"`{mul}x{ir}` is odd, so its activation must be even or odd; "
                                 f"{getattr(act, '__name__', act)} is neither (try torch.tanh or torch.abs)")
            out.append((mul, (0, p_out)))
            wrapped.append(f)
        self.irreps_in = irreps_in
        self.irreps_out = Irreps(out)
        self.acts = torch.nn.ModuleList([f if f is not None else torch.nn.Identity() for f in wrapped])
        self._active = tuple(f is not None for f in wrapped)
        self._layout = tuple((mul, ir.dim) for mul, ir in irreps_in)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        _check_dim(self, features, self.irreps_in)
        pieces, start = [], 0
        for (mul, dim), active, act in zip(self._layout, self._active, self.acts):
            block = features.narrow(-1, start, mul * dim)
            pieces.append(act(block) if active else block)
            start += mul * dim
        if not pieces:
            return features
        return torch.cat(pieces, dim=-1) if len(pieces) > 1 else pieces[0]

    def extra_repr(self) -> str:
        return f"{self.irreps_in} -> {self.irreps_out}"


def _sorted_layout(*sets: Irreps):
    """e3nn's gate input layout: the three (simplified) sets' terms sorted by irrep, then merged.

    Returns the merged input irreps and, per set, the (start, size) of each of
    its terms in that layout.
    """
    terms = [(k, t) for k, irreps in enumerate(sets) for t in irreps]
    everything = Irreps([t for _, t in terms])
    sorted_irreps, p, _ = everything.sort()
    starts, offset = [], 0
    for t in sorted_irreps:
        starts.append(offset)
        offset += t.dim
    where = [[] for _ in sets]
    for i, (k, t) in enumerate(terms):
        where[k].append((starts[p[i]], t.dim))
    return sorted_irreps.simplify(), [tuple(w) for w in where]


def _pair_terms(a: Irreps, b: Irreps):
    """Split terms so that a's and b's multiplicities line up one to one (e3nn's elementwise product)."""
    a, b = [list(t) for t in a.simplify()], [list(t) for t in b.simplify()]
    i = 0
    while i < len(a):
        if a[i][0] < b[i][0]:
            b.insert(i + 1, [b[i][0] - a[i][0], b[i][1]])
            b[i][0] = a[i][0]
        elif b[i][0] < a[i][0]:
            a.insert(i + 1, [a[i][0] - b[i][0], a[i][1]])
            a[i][0] = b[i][0]
        i += 1
    return [(m, ira, irb) for (m, ira), (_, irb) in zip(a, b)]


class Gate(torch.nn.Module):
    """e3nn's gate: ``act_scalars(scalars) + act_gates(gates) * gated``.

    The input holds the three sets in e3nn's layout: their terms (each set
    simplified) sorted by irrep and merged, so ``irreps_in`` is what the layer
    before must produce; ``irreps_out`` is the activated scalars followed by
    the gated irreps (their parity times the gates' parity after activation).
    Gate scalar ``i`` multiplies the ``i``-th gated irrep (counting copies).
    """

    def __init__(self, irreps_scalars, act_scalars, irreps_gates, act_gates, irreps_gated):
        super().__init__()
        scalars, gates, gated = Irreps(irreps_scalars), Irreps(irreps_gates), Irreps(irreps_gated)
        if scalars and scalars.lmax > 0:
            raise ValueError(f"irreps_scalars must be scalars (l = 0), got {scalars}")
        if gates and gates.lmax > 0:
            raise ValueError(f"irreps_gates must be scalars (l = 0), got {gates}")
        if gates.num_irreps != gated.num_irreps:
            raise ValueError(f"{gated.num_irreps} gated irreps in {gated} need as many gate scalars; "
                             f"irreps_gates {gates} has {gates.num_irreps}")
        self.act_scalars = Activation(scalars, act_scalars)
        self.act_gates = Activation(gates, act_gates)
        self.irreps_scalars, self.irreps_gates = scalars.simplify(), gates.simplify()
        self.irreps_gated = gated.simplify()
        self.irreps_in, where = _sorted_layout(self.irreps_scalars, self.irreps_gates, self.irreps_gated)
        self._where = tuple(where)
        pairs = _pair_terms(gated, self.act_gates.irreps_out)
        gated_out = Irreps([(m, (ira.l, ira.p * irb.p)) for m, ira, irb in pairs])
        self.irreps_out = self.act_scalars.irreps_out + gated_out
        self._gated_layout = tuple((t.mul, t.ir.dim) for t in self.irreps_gated)

    @staticmethod
    def _take(features: torch.Tensor, places) -> torch.Tensor:
        pieces = [features.narrow(-1, start, size) for start, size in places]
        if not pieces:
            return features.narrow(-1, 0, 0)
        return torch.cat(pieces, dim=-1) if len(pieces) > 1 else pieces[0]

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        _check_dim(self, features, self.irreps_in)
        scalars = self.act_scalars(self._take(features, self._where[0]))
        if not self._gated_layout:
            return scalars
        gates = self.act_gates(self._take(features, self._where[1]))
        gated = self._take(features, self._where[2])
        batch = features.shape[:-1]
        pieces, start, g = [], 0, 0
        for mul, dim in self._gated_layout:
            block = gated.narrow(-1, start, mul * dim).reshape(batch + (mul, dim))
            pieces.append((block * gates.narrow(-1, g, mul).unsqueeze(-1)).reshape(batch + (mul * dim,)))
            start += mul * dim
            g += mul
        return torch.cat([scalars] + pieces, dim=-1)

    def extra_repr(self) -> str:
        return f"{self.irreps_in} -> {self.irreps_out}"


class NormActivation(torch.nn.Module):
    """e3nn's norm activation: each irrep copy ``x`` becomes ``f(|x| + b) x / |x|`` (or ``f(|x| + b) x``).

    ``normalize=True`` divides by the norm, clamped below at ``epsilon``
    (default 1e-8, so zero stays zero with finite gradients); ``bias`` adds a
    learnable shift per irrep copy before ``f``.  ``f`` is used as given (not
    rescaled).
    """

    def __init__(self, irreps_in, scalar_nonlinearity, normalize: bool = True, epsilon: float | None = None,
                 bias: bool = False):
        super().__init__()
        self.irreps_in = Irreps(irreps_in)
        self.irreps_out = self.irreps_in
        if epsilon is None and normalize:
            epsilon = 1e-8
        elif epsilon is not None and not normalize:
            raise ValueError("epsilon only applies with normalize=True")
        elif epsilon is not None and not epsilon > 0:
            raise ValueError(f"epsilon must be > 0, got {epsilon}")
        self.epsilon = epsilon
        self.normalize = normalize
        self.scalar_nonlinearity = scalar_nonlinearity
        self.bias = bias
        if bias:
            self.biases = torch.nn.Parameter(torch.zeros(self.irreps_in.num_irreps))
        self._layout = tuple((t.mul, t.ir.dim) for t in self.irreps_in)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        _check_dim(self, features, self.irreps_in)
        batch = features.shape[:-1]
        blocks, start = [], 0
        for mul, dim in self._layout:
            blocks.append(features.narrow(-1, start, mul * dim).reshape(batch + (mul, dim)))
            start += mul * dim
        if not blocks:
            return features
        squares = torch.cat([b.pow(2).sum(-1) for b in blocks], dim=-1)       # [..., num_irreps]
        if self.epsilon is not None:
            norms = squares.clamp_min(self.epsilon ** 2).sqrt()
        else:
            norms = squares.relu().sqrt()
        scalings = self.scalar_nonlinearity(norms + self.biases if self.bias else norms)
        if self.normalize:
            scalings = scalings / norms
        out, g = [], 0
        for block, (mul, dim) in zip(blocks, self._layout):
            out.append((block * scalings.narrow(-1, g, mul).unsqueeze(-1)).reshape(batch + (mul * dim,)))
            g += mul
        return torch.cat(out, dim=-1) if len(out) > 1 else out[0]

    def extra_repr(self) -> str:
        return f"{self.irreps_in}, normalize={self.normalize}, bias={self.bias}"
