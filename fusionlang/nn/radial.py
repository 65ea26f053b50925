"""Radial embeddings of edge lengths and the MLP that turns them into tensor-product weights.

* ``BesselBasis``: ``sqrt(2/r_max) sin(w_n r) / r`` with ``w_n = n pi / r_max`` at
  start, trainable (NequIP, MACE).  At its initial frequencies it equals e3nn's
  ``soft_one_hot_linspace(r, 0, r_max, n, "bessel", cutoff=False)``.
* ``PolynomialCutoff``: the p-polynomial envelope of NequIP/MACE, 1 at 0, going
  to 0 at ``r_max`` with its first and second derivatives.
* ``GaussianBasis``: e3nn's ``soft_one_hot_linspace(..., "gaussian")``.
* ``FullyConnectedNet``: e3nn's ``nn.FullyConnectedNet`` (normalized weights and
  activation, no biases); ``RadialMLP`` builds one whose output size is a tensor
  product's ``weight_numel``.
"""
from __future__ import annotations

import math

import torch

from .activation import normalize2mom

__all__ = ["BesselBasis", "PolynomialCutoff", "GaussianBasis", "RadialEmbedding", "FullyConnectedNet",
           "RadialMLP", "numel_of"]


class BesselBasis(torch.nn.Module):
    """``[...]`` edge lengths (> 0) -> ``[..., num_basis]``."""

    def __init__(self, r_max: float, num_basis: int = 8, trainable: bool = True):
        super().__init__()
        self.r_max, self.num_basis, self.trainable = float(r_max), int(num_basis), trainable
        frequencies = math.pi / self.r_max * torch.arange(1, self.num_basis + 1, dtype=torch.get_default_dtype())
        if trainable:
            self.frequencies = torch.nn.Parameter(frequencies)
        else:
            self.register_buffer("frequencies", frequencies)
        self.prefactor = math.sqrt(2.0 / self.r_max)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        r = r.unsqueeze(-1)
        return self.prefactor * torch.sin(self.frequencies.to(r.dtype) * r) / r

    def extra_repr(self) -> str:
        return f"r_max={self.r_max}, num_basis={self.num_basis}, trainable={self.trainable}"


class PolynomialCutoff(torch.nn.Module):
    """``[...]`` lengths -> ``[...]``: ``1 - (p+1)(p+2)/2 u^p + p(p+2) u^(p+1) - p(p+1)/2 u^(p+2)``, ``u = r/r_max``.

    Zero for ``r >= r_max``; smooth (value, slope and curvature vanish) at ``r_max``.
    """

    def __init__(self, r_max: float, p: int = 6):
        super().__init__()
        if p < 2:
            raise ValueError(f"the envelope's order p must be >= 2, got {p}")
        self.r_max, self.p = float(r_max), int(p)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        p = self.p
        u = r / self.r_max
        up = u.pow(p)
        envelope = (1.0 - (p + 1) * (p + 2) / 2.0 * up + p * (p + 2) * up * u - p * (p + 1) / 2.0 * up * u * u)
        return envelope * (u < 1.0).to(r.dtype)

    def extra_repr(self) -> str:
        return f"r_max={self.r_max}, p={self.p}"


class GaussianBasis(torch.nn.Module):
    """``[...]`` -> ``[..., num_basis]``: ``exp(-((r - c_k) / step)^2) / 1.12`` on evenly spaced centres.

    Centres ``linspace(start, stop, num_basis)``; with ``cutoff=True`` the
    centres are the interior points of ``linspace(start, stop, num_basis + 2)``
    (e3nn's convention), ``step`` is their spacing.
    """

    def __init__(self, start: float, stop: float, num_basis: int, cutoff: bool = False, trainable: bool = False):
        super().__init__()
        if num_basis < 2 and not cutoff:
            raise ValueError("a Gaussian basis needs at least 2 functions (their spacing sets the width)")
        values = torch.linspace(start, stop, num_basis + 2 if cutoff else num_basis, dtype=torch.float64)
        step = float(values[1] - values[0])
        centres = (values[1:-1] if cutoff else values).to(torch.get_default_dtype())
        if trainable:
            self.centres = torch.nn.Parameter(centres)
        else:
            self.register_buffer("centres", centres)
        self.step = step
        self.num_basis = num_basis

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        diff = (r.unsqueeze(-1) - self.centres.to(r.dtype)) / self.step
        return torch.exp(-diff * diff) / 1.12

    def extra_repr(self) -> str:
        return f"num_basis={self.num_basis}, step={self.step:.4g}"


class RadialEmbedding(torch.nn.Module):
    """``BesselBasis(r) * PolynomialCutoff(r)``: MACE's radial embedding, ``[...]`` -> ``[..., num_basis]``."""

    def __init__(self, r_max: float, num_basis: int = 8, p: int = 6, trainable: bool = True):
        super().__init__()
        self.bessel = BesselBasis(r_max, num_basis, trainable)
        self.cutoff = PolynomialCutoff(r_max, p)
        self.num_basis = num_basis

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        return self.bessel(r) * self.cutoff(r).unsqueeze(-1)


class _Layer(torch.nn.Module):
    def __init__(self, h_in: int, h_out: int, act, var_in: float, var_out: float):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(h_in, h_out))
        self.act = act
        self.h_in, self.h_out, self.var_in, self.var_out = h_in, h_out, var_in, var_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.act is not None:
            x = x @ (self.weight / math.sqrt(self.h_in * self.var_in)).to(x.dtype)
            return self.act(x) * math.sqrt(self.var_out)
        return x @ (self.weight / math.sqrt(self.h_in * self.var_in / self.var_out)).to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.h_in} -> {self.h_out}"


class FullyConnectedNet(torch.nn.Sequential):
    """e3nn's ``nn.FullyConnectedNet(hs, act)``: ``hs = [in, hidden..., out]``, no biases.

    Weights are standard normal and divided by ``sqrt(fan-in)`` in the forward
    pass; the activation is rescaled to unit second moment; the last layer has
    no activation unless ``out_act``.  Parameter names (``layer0.weight``, ...)
    are e3nn's.
    """

    def __init__(self, hs, act=None, variance_in: float = 1, variance_out: float = 1, out_act: bool = False):
        super().__init__()
        self.hs = [int(h) for h in hs]
        if len(self.hs) < 2:
            raise ValueError(f"hs lists the input, hidden and output sizes; got {hs}")
        act = normalize2mom(act) if act is not None else None
        var_in = variance_in
        for i, (h1, h2) in enumerate(zip(self.hs, self.hs[1:])):
            last = i == len(self.hs) - 2
            var_out = variance_out if last else 1
            self.add_module(f"layer{i}", _Layer(h1, h2, act if (out_act or not last) else None, var_in, var_out))
            var_in = var_out


def numel_of(weights) -> int:
    """An int, or anything with a ``weight_numel`` (a compiled module, a ``Linear``)."""
    if isinstance(weights, int) and not isinstance(weights, bool):
        return weights
    numel = getattr(weights, "weight_numel", None)
    if isinstance(numel, int):
        return numel
    raise ValueError(f"expected a number of weights or an object with `weight_numel`, got {weights!r}")


class RadialMLP(FullyConnectedNet):
    """``[..., num_basis]`` -> ``[..., weight_numel]``: the per-edge weights of an ``[external]`` vertex.

    ``weight_numel`` is an int or anything that has one (``numel_of``).
    """

    def __init__(self, num_basis: int, weight_numel, hidden=(64, 64), act=torch.nn.functional.silu):
        numel = numel_of(weight_numel)
        super().__init__([num_basis, *hidden, numel], act)
        self.weight_numel = numel
