"""``FullTensorProduct``: every coupling path its own output block, no weights (e3nn's ``o3.FullTensorProduct``).

For each term ``mul1 x ir1`` of the first input, each ``mul2 x ir2`` of the
second and each ``ir`` in ``ir1 (x) ir2`` (kept by ``filter_ir_out``), the
output has a block ``(mul1 * mul2) x ir`` holding
``out[u, v, k] = sum_ij x1[u, i] x2[v, j] C[i, j, k]`` with ``C`` the isometric
real coupling tensor of ``fusionlang.coupling.cg`` (e3nn's ``wigner_3j`` times
``sqrt(2l+1)``, its "component" normalization).  The blocks are sorted by irrep
(stably), as e3nn orders them, and not merged.
"""
from __future__ import annotations

import numpy as np
import torch

from ..symmetry.coupling import cg
from ._buffers import ConstantBuffers, cast
from .irreps import Irrep, Irreps, MulIr

__all__ = ["FullTensorProduct"]


class FullTensorProduct(ConstantBuffers):
    """``FullTensorProduct(irreps_in1, irreps_in2, filter_ir_out=None)``; ``forward(x1, x2)``.

    ``irreps_out`` lists the blocks in output order; ``x1`` and ``x2`` broadcast
    over their leading axes.
    """

    def __init__(self, irreps_in1, irreps_in2, filter_ir_out=None, irrep_normalization: str | None = None):
        super().__init__()
        if irrep_normalization not in (None, "component"):
            raise ValueError("FullTensorProduct supports e3nn's default irrep_normalization='component' only")
        self.irreps_in1, self.irreps_in2 = Irreps(irreps_in1), Irreps(irreps_in2)
        if filter_ir_out is not None:
            items = Irreps(filter_ir_out) if isinstance(filter_ir_out, str) else filter_ir_out
            try:
                filter_ir_out = {t.ir if isinstance(t, MulIr) else Irrep(t) for t in items}
            except ValueError as exc:
                raise ValueError(f"filter_ir_out must be irreps such as ['0e', '1o']: {exc}") from None
        blocks = []           # (i1, i2, ir_out) in e3nn's unsorted order
        for i1, (_, ir1) in enumerate(self.irreps_in1):
            for i2, (_, ir2) in enumerate(self.irreps_in2):
                for ir in ir1 * ir2:
                    if filter_ir_out is None or ir in filter_ir_out:
                        blocks.append((i1, i2, ir))
        unsorted = Irreps([(self.irreps_in1[i1].mul * self.irreps_in2[i2].mul, ir) for i1, i2, ir in blocks])
        self.irreps_out, _, inv = unsorted.sort()
        self._order = tuple(inv)                  # output position -> index in `blocks`
        # One matrix [d1*d2, sum of d_out] per input pair, shared by the pair's output blocks.
        pairs: dict = {}
        for i1, i2, ir in blocks:
            pairs.setdefault((i1, i2), []).append(ir)
        self._pairs = []
        slices1, slices2 = self.irreps_in1.slices(), self.irreps_in2.slices()
        column_of = {}
        for n, ((i1, i2), irs) in enumerate(pairs.items()):
            ir1, ir2 = self.irreps_in1[i1].ir, self.irreps_in2[i2].ir
            mats, col = [], 0
            for ir in irs:
                c = cg("O3", str(ir1), str(ir2), str(ir))                  # [d1, d2, d]
                mats.append(np.asarray(c).reshape(ir1.dim * ir2.dim, ir.dim))
                column_of[(i1, i2, ir)] = (n, col, ir.dim)
                col += ir.dim
            self.register_constant(f"coupling_{n}", torch.tensor(np.concatenate(mats, axis=1)))
            self._pairs.append((slices1[i1].start, self.irreps_in1[i1].mul, ir1.dim,
                                slices2[i2].start, self.irreps_in2[i2].mul, ir2.dim, col))
        # per output block: (pair index, first column, d_out)
        self._block_of_pair = [column_of[blocks[j]] for j in self._order]

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        if x1.shape[-1] != self.irreps_in1.dim or x2.shape[-1] != self.irreps_in2.dim:
            raise ValueError(f"FullTensorProduct takes [..., {self.irreps_in1.dim}] and [..., {self.irreps_in2.dim}], "
                             f"got {tuple(x1.shape)} and {tuple(x2.shape)}")
        batch = torch.broadcast_shapes(x1.shape[:-1], x2.shape[:-1])
        x1 = x1.expand(batch + x1.shape[-1:]).reshape(-1, self.irreps_in1.dim)
        x2 = x2.expand(batch + x2.shape[-1:]).reshape(-1, self.irreps_in2.dim)
        z = x1.shape[0]
        products = []
        for n, (s1, m1, d1, s2, m2, d2, width) in enumerate(self._pairs):
            a = x1.narrow(1, s1, m1 * d1).reshape(z, m1, 1, d1, 1)
            b = x2.narrow(1, s2, m2 * d2).reshape(z, 1, m2, 1, d2)
            outer = (a * b).reshape(z, m1 * m2, d1 * d2)
            products.append(outer @ cast(getattr(self, f"coupling_{n}"), outer))    # [z, m1*m2, width]
        pieces = [products[n].narrow(2, col, d).reshape(z, -1) for n, col, d in self._block_of_pair]
        out = torch.cat(pieces, dim=1) if pieces else x1.new_zeros(z, 0)
        return out.reshape(batch + (self.irreps_out.dim,))

    def extra_repr(self) -> str:
        return f"{self.irreps_in1} x {self.irreps_in2} -> {self.irreps_out}"
