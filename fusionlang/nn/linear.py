"""``Linear``: channel mixing within each irrep type, numerically e3nn's ``o3.Linear``.

The same function as the language's ``y = linear(x)`` (docs/language.md section 4),
with e3nn's options: weights given to ``forward`` (``shared_weights=False``),
biases on ``0e`` outputs, explicit instructions, ``path_normalization``.
"""
from __future__ import annotations

import math

import torch

from .irreps import Irreps

__all__ = ["Linear"]


class Linear(torch.nn.Module):
    """``Linear(irreps_in, irreps_out)``: ``y_out = sum_in alpha * W_(in,out) x_in`` for equal irreps.

    Instructions (default: every pair of an input and an output term with the
    same irrep, inputs outer) each own a ``[mul_in, mul_out]`` block of the flat
    ``weight`` in e3nn's order, and ``alpha = 1/sqrt(fan-in)`` where the fan-in
    of an output term is the summed ``mul_in`` of its instructions
    (``path_normalization="element"``) or their count times each ``mul_in``
    (``"path"``).  Output terms with no instruction are zero.  With
    ``shared_weights=False`` the weights are an argument of ``forward``,
    ``[..., weight_numel]`` with the batch shape of the input.  ``biases=True``
    adds a learnable bias to every ``0e`` output (not scaled).
    """

    def __init__(self, irreps_in, irreps_out, *, internal_weights: bool | None = None,
                 shared_weights: bool | None = None, instructions=None, biases=False,
                 path_normalization: str = "element"):
        super().__init__()
        self.irreps_in, self.irreps_out = Irreps(irreps_in), Irreps(irreps_out)
        if path_normalization not in ("element", "path"):
            raise ValueError(f"path_normalization is 'element' or 'path', got {path_normalization!r}")
        if instructions is None:
            instructions = [(i, o) for i, (_, ir_in) in enumerate(self.irreps_in)
                            for o, (_, ir_out) in enumerate(self.irreps_out) if ir_in == ir_out]
        instructions = [tuple(int(v) for v in ins) for ins in instructions]
        for i, o in instructions:
            if not (0 <= i < len(self.irreps_in) and 0 <= o < len(self.irreps_out)):
                raise ValueError(f"instruction {(i, o)} is out of range for {self.irreps_in} -> {self.irreps_out}")
            if self.irreps_in[i].ir != self.irreps_out[o].ir:
                raise ValueError(f"instruction {(i, o)} connects {self.irreps_in[i].ir} to "
                                 f"{self.irreps_out[o].ir}; a linear map keeps the irrep")
        if isinstance(biases, bool):
            biases = [biases and t.ir.is_scalar() for t in self.irreps_out]
        biases = [bool(b) for b in biases]
        if len(biases) != len(self.irreps_out):
            raise ValueError(f"{len(biases)} bias flags for the {len(self.irreps_out)} output terms")
        for b, t in zip(biases, self.irreps_out):
            if b and not t.ir.is_scalar():
                raise ValueError(f"a bias on `{t}` would break equivariance; only 0e outputs take biases")
        if shared_weights is False and internal_weights is None:
            internal_weights = False
        shared_weights = True if shared_weights is None else shared_weights
        internal_weights = True if internal_weights is None else internal_weights
        if internal_weights and not shared_weights:
            raise ValueError("internal weights are shared by construction: use shared_weights=True")
        self.internal_weights, self.shared_weights = internal_weights, shared_weights
        self.instructions = instructions

        # (input start, input mul, weight offset, alpha) per instruction, grouped by output term
        self._paths: list[list[tuple]] = [[] for _ in self.irreps_out]
        in_slices, offset = self.irreps_in.slices(), 0
        for i, o in instructions:
            mul_in, mul_out = self.irreps_in[i].mul, self.irreps_out[o].mul
            feeding = [self.irreps_in[ii].mul for ii, oo in instructions if oo == o]
            fan_in = sum(feeding) if path_normalization == "element" else len(feeding) * mul_in
            alpha = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 1.0
            self._paths[o].append((in_slices[i].start, mul_in, offset, alpha))
            offset += mul_in * mul_out
        self.weight_numel = offset
        self._bias_offsets, b = [], 0
        for has, t in zip(biases, self.irreps_out):
            self._bias_offsets.append(b if has else None)
            b += t.dim if has else 0
        self.bias_numel = b
        if internal_weights and self.weight_numel > 0:
            self.weight = torch.nn.Parameter(torch.randn(self.weight_numel))
        else:
            self.register_buffer("weight", torch.empty(0))
        if internal_weights and self.bias_numel > 0:
            self.bias = torch.nn.Parameter(torch.zeros(self.bias_numel))
        else:
            self.register_buffer("bias", torch.empty(0))
        self._out_layout = tuple((t.mul, t.ir.dim) for t in self.irreps_out)

    def forward(self, x: torch.Tensor, weight: torch.Tensor | None = None,
                bias: torch.Tensor | None = None) -> torch.Tensor:
        if x.shape[-1] != self.irreps_in.dim:
            raise ValueError(f"Linear({self.irreps_in} -> {self.irreps_out}) takes [..., {self.irreps_in.dim}], "
                             f"got {tuple(x.shape)}")
        batch = x.shape[:-1]
        x = x.reshape(-1, self.irreps_in.dim)
        z = x.shape[0]
        if weight is None:
            if not self.internal_weights and self.weight_numel > 0:
                raise ValueError("this Linear has no internal weights: pass weight=[..., weight_numel]")
            weight = self.weight
        if bias is None:
            if not self.internal_weights and self.bias_numel > 0:
                raise ValueError("this Linear has no internal biases: pass bias=[..., bias_numel]")
            bias = self.bias
        shared = weight.dim() == 1
        if not shared:
            weight = weight.reshape(-1, self.weight_numel)
        weight = weight.to(x.dtype)
        outs = []
        for o, (mul_out, d) in enumerate(self._out_layout):
            acc = None
            for start, mul_in, w_start, alpha in self._paths[o]:
                if mul_in == 0 or mul_out == 0:
                    continue
                block = x.narrow(1, start, mul_in * d).reshape(z, mul_in, d)
                if shared:
                    w = weight.narrow(0, w_start, mul_in * mul_out).reshape(mul_in, mul_out)
                    term = torch.einsum("zud,uw->zwd", block, w * alpha)
                else:
                    w = weight.narrow(1, w_start, mul_in * mul_out).reshape(-1, mul_in, mul_out)
                    term = torch.einsum("zud,zuw->zwd", block, w * alpha)
                acc = term if acc is None else acc + term
            out = acc.reshape(z, mul_out * d) if acc is not None else x.new_zeros(z, mul_out * d)
            b = self._bias_offsets[o]
            if b is not None and mul_out * d > 0:
                shift = bias.narrow(-1, b, mul_out * d).to(x.dtype)
                out = out + (shift if shift.dim() == 1 else shift.reshape(-1, mul_out * d))
            outs.append(out)
        y = torch.cat(outs, dim=1) if outs else x.new_zeros(z, 0)
        return y.reshape(batch + (self.irreps_out.dim,))

    def extra_repr(self) -> str:
        return f"{self.irreps_in} -> {self.irreps_out} | {self.weight_numel} weights"
