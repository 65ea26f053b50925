"""Equivariant normalization: ``BatchNorm`` (e3nn's semantics) and ``LayerNorm``.

Both normalize each irrep copy by a rotation-invariant statistic, the mean
square of its components (``normalization="component"``) or of its norm
(``"norm"``); only ``0e`` scalars are centred and get a bias, since a shift of
anything else would break equivariance.
"""
from __future__ import annotations

import torch

from .irreps import Irreps

__all__ = ["BatchNorm", "LayerNorm"]


def _check_dim(layer, x: torch.Tensor, irreps: Irreps) -> None:
    if x.shape[-1] != irreps.dim:
        raise ValueError(f"{type(layer).__name__}({irreps}) takes [..., {irreps.dim}], got {tuple(x.shape)}")


def _blocks(irreps: Irreps):
    return tuple((t.mul, t.ir.dim, t.ir.is_scalar()) for t in irreps)


class BatchNorm(torch.nn.Module):
    """e3nn's ``nn.BatchNorm``: statistics over the batch (and sample) axes, per irrep copy.

    Input ``[batch, ..., dim]``.  In training the scalars' mean and every
    copy's mean square are taken over all leading axes and folded into
    ``running_mean`` / ``running_var`` with ``momentum``; in eval those are
    used.  ``instance=True`` takes the statistics per batch element over the
    middle axes instead and keeps no running values.  ``reduce="max"`` uses the
    largest mean square over the samples.  Parameter and buffer names and shapes
    are e3nn's, so state dicts move between the two.
    """

    def __init__(self, irreps, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True,
                 reduce: str = "mean", instance: bool = False, include_bias: bool = True,
                 normalization: str = "component"):
        super().__init__()
        self.irreps = Irreps(irreps)
        self.irreps_in = self.irreps_out = self.irreps
        if reduce not in ("mean", "max"):
            raise ValueError(f"reduce is 'mean' or 'max', got {reduce!r}")
        if normalization not in ("component", "norm"):
            raise ValueError(f"normalization is 'component' or 'norm', got {normalization!r}")
        self.eps, self.momentum, self.affine = eps, momentum, affine
        self.reduce, self.instance, self.include_bias = reduce, instance, include_bias
        self.normalization = normalization
        num_scalar = sum(t.mul for t in self.irreps if t.ir.is_scalar())
        num_features = self.irreps.num_irreps
        if instance:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
        else:
            self.register_buffer("running_mean", torch.zeros(num_scalar))
            self.register_buffer("running_var", torch.ones(num_features))
        if affine:
            self.weight = torch.nn.Parameter(torch.ones(num_features))
            if include_bias:
                self.bias = torch.nn.Parameter(torch.zeros(num_scalar))
        else:
            self.register_parameter("weight", None)
            if include_bias:
                self.register_parameter("bias", None)
        self._blocks = _blocks(self.irreps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_dim(self, x, self.irreps)
        shape = x.shape
        n_batch, dim = shape[0], shape[-1]
        x = x.reshape(n_batch, -1, dim)                          # [batch, sample, dim]
        update = self.training and not self.instance
        use_batch = self.training or self.instance
        means, variances, fields = [], [], []
        start = i_mean = i_var = i_bias = 0
        for mul, d, scalar in self._blocks:
            field = x.narrow(-1, start, mul * d).reshape(n_batch, -1, mul, d)
            start += mul * d
            if scalar:
                if use_batch:
                    mean = field.mean(1).reshape(n_batch, mul) if self.instance else field.mean((0, 1)).reshape(mul)
                    if update:
                        means.append(self._blend(self.running_mean.narrow(0, i_mean, mul), mean))
                else:
                    mean = self.running_mean.narrow(0, i_mean, mul)
                i_mean += mul
                field = field - mean.reshape(-1, 1, mul, 1)
            if use_batch:
                square = field.pow(2).sum(3) if self.normalization == "norm" else field.pow(2).mean(3)
                square = square.mean(1) if self.reduce == "mean" else square.amax(1)   # [batch, mul]
                if not self.instance:
                    square = square.mean(0)
                    variances.append(self._blend(self.running_var.narrow(0, i_var, mul), square))
            else:
                square = self.running_var.narrow(0, i_var, mul)
            factor = (square + self.eps).pow(-0.5)
            if self.affine:
                factor = factor * self.weight.narrow(0, i_var, mul)
            i_var += mul
            field = field * factor.reshape(-1, 1, mul, 1)
            if self.affine and self.include_bias and scalar:
                field = field + self.bias.narrow(0, i_bias, mul).reshape(mul, 1)
                i_bias += mul
            fields.append(field.reshape(n_batch, -1, mul * d))
        if update:
            with torch.no_grad():
                if means:
                    self.running_mean.copy_(torch.cat(means))
                if variances:
                    self.running_var.copy_(torch.cat(variances))
        out = torch.cat(fields, dim=2) if fields else x
        return out.reshape(shape)

    def _blend(self, running: torch.Tensor, batch_value: torch.Tensor) -> torch.Tensor:
        return (1 - self.momentum) * running + self.momentum * batch_value.detach()

    def extra_repr(self) -> str:
        return f"{self.irreps}, eps={self.eps}, momentum={self.momentum}"


class LayerNorm(torch.nn.Module):
    """Equivariant layer norm: statistics per sample over the channels of each term.

    For every term ``mul x ir`` of ``irreps`` and every sample: scalars (``0e``)
    lose their mean over the ``mul`` channels; then the term is divided by
    ``sqrt(mean square + eps)``, the mean over channels of the squared
    components (``"component"``) or squared norms (``"norm"``), times a
    learnable weight per channel; ``0e`` channels get a learnable bias.  On
    ``mul x 0e`` alone it is ``torch.nn.LayerNorm(mul)``.
    """

    def __init__(self, irreps, eps: float = 1e-5, affine: bool = True, normalization: str = "component"):
        super().__init__()
        self.irreps = Irreps(irreps)
        self.irreps_in = self.irreps_out = self.irreps
        if normalization not in ("component", "norm"):
            raise ValueError(f"normalization is 'component' or 'norm', got {normalization!r}")
        self.eps, self.affine, self.normalization = eps, affine, normalization
        num_scalar = sum(t.mul for t in self.irreps if t.ir.is_scalar())
        if affine:
            self.weight = torch.nn.Parameter(torch.ones(self.irreps.num_irreps))
            self.bias = torch.nn.Parameter(torch.zeros(num_scalar))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self._blocks = _blocks(self.irreps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_dim(self, x, self.irreps)
        batch = x.shape[:-1]
        fields, start, i_var, i_bias = [], 0, 0, 0
        for mul, d, scalar in self._blocks:
            field = x.narrow(-1, start, mul * d).reshape(batch + (mul, d))
            start += mul * d
            if scalar:
                field = field - field.mean(-2, keepdim=True)
            square = field.pow(2).sum(-1) if self.normalization == "norm" else field.pow(2).mean(-1)
            factor = (square.mean(-1, keepdim=True) + self.eps).rsqrt()         # [..., 1]
            if self.affine:
                factor = factor * self.weight.narrow(0, i_var, mul)
            i_var += mul
            field = field * factor.unsqueeze(-1)
            if self.affine and scalar:
                field = field + self.bias.narrow(0, i_bias, mul).unsqueeze(-1)
                i_bias += mul
            fields.append(field.reshape(batch + (mul * d,)))
        return torch.cat(fields, dim=-1) if len(fields) > 1 else (fields[0] if fields else x)

    def extra_repr(self) -> str:
        return f"{self.irreps}, eps={self.eps}, normalization={self.normalization!r}"
