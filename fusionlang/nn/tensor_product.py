"""``FullTensorProduct``: every coupling path its own output block, no weights (e3nn's ``o3.FullTensorProduct``).

Built on the language's per-path mode: the layer compiles the diagram
``y = fuse(x1, x2) [paths=separate]`` (docs/language.md, "Per-path output").
For each term ``mul1 x ir1`` of the first input, each ``mul2 x ir2`` of the
second and each ``ir`` in ``ir1 (x) ir2`` (kept by ``filter_ir_out``), the
output has a block ``(mul1 * mul2) x ir`` holding
``out[u, v, k] = sum_ij x1[u, i] x2[v, j] C[i, j, k]`` with ``C`` the isometric
real coupling tensor (e3nn's ``wigner_3j`` times ``sqrt(2l+1)``, its
"component" normalization).  The blocks are sorted by irrep (stably), as e3nn
orders them, and not merged.
"""
from __future__ import annotations

from functools import lru_cache

import torch

from ..api import compile_source
from .irreps import Irrep, Irreps, MulIr

__all__ = ["FullTensorProduct"]


def _fus_irreps(irreps: Irreps) -> str:
    return " + ".join(f"{mul}x{ir}" for mul, ir in irreps if mul > 0)


@lru_cache(maxsize=64)
def _compiled(in1: str, in2: str, out: str) -> type:
    """The module class of the per-path diagram (compiled once per irreps signature)."""
    source = (f"group O3\ndiagram FullTensorProduct {{\n    in x1 : {in1}\n    in x2 : {in2}\n"
              f"    out y : {out}\n    y = fuse(x1, x2) [paths=separate]\n}}\n")
    return compile_source(source, "<FullTensorProduct>", backend="torch").modules["FullTensorProduct"]


class FullTensorProduct(torch.nn.Module):
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
        # e3nn's irreps_out: one term per path, sorted stably by irrep; the compiled diagram's output
        # (its irreps merged where adjacent) has the same layout (docs/language.md, F085).
        blocks = [(m1 * m2, ir) for m1, ir1 in self.irreps_in1 for m2, ir2 in self.irreps_in2
                  for ir in ir1 * ir2 if filter_ir_out is None or ir in filter_ir_out]
        self.irreps_out = Irreps(blocks).sort()[0]
        self.product = None
        if self.irreps_out.dim > 0:
            out = _fus_irreps(self.irreps_out.simplify())
            self.product = _compiled(_fus_irreps(self.irreps_in1), _fus_irreps(self.irreps_in2), out)()
            # Coupling constants stay float64 through .float() / .double() and stay out of state_dict
            # (as fusionlang.nn's other constants, _buffers.py); forward casts them to the input's dtype.
            self.product._non_persistent_buffers_set.update(self.product._buffers)

    def _apply(self, fn, recurse=True):
        kept = dict(self.product._buffers) if self.product is not None else {}
        out = super()._apply(fn, recurse)
        for name, before in kept.items():
            after = self.product._buffers[name]
            if after is not None and after.dtype != before.dtype:
                self.product._buffers[name] = before.to(device=after.device)
        return out

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        if x1.shape[-1] != self.irreps_in1.dim or x2.shape[-1] != self.irreps_in2.dim:
            raise ValueError(f"FullTensorProduct takes [..., {self.irreps_in1.dim}] and [..., {self.irreps_in2.dim}], "
                             f"got {tuple(x1.shape)} and {tuple(x2.shape)}")
        batch = torch.broadcast_shapes(x1.shape[:-1], x2.shape[:-1])
        if self.product is None:
            return x1.new_zeros(batch + (0,))
        x1 = x1.expand(batch + x1.shape[-1:]).reshape(-1, self.irreps_in1.dim)
        x2 = x2.expand(batch + x2.shape[-1:]).reshape(-1, self.irreps_in2.dim)
        return self.product(x1, x2).reshape(batch + (self.irreps_out.dim,))

    def extra_repr(self) -> str:
        return f"{self.irreps_in1} x {self.irreps_in2} -> {self.irreps_out}"
