"""Constant tensors that follow the module's device but keep their dtype.

Coupling coefficients and similar constants are float64 buffers: ``module.to(torch.float32)``
followed by ``.double()`` would otherwise round them to float32 on the way and
lose the 1e-12 agreement with e3nn.  Layers cast them to the input's dtype in
``forward`` instead.  They are non-persistent: not part of ``state_dict``.
"""
from __future__ import annotations

import torch


class ConstantBuffers(torch.nn.Module):
    """Mixin: ``register_constant`` buffers keep their dtype through ``.to()``, ``.float()``, ``.half()``."""

    def register_constant(self, name: str, value) -> None:
        tensor = value if isinstance(value, torch.Tensor) else torch.as_tensor(value, dtype=torch.float64)
        self.register_buffer(name, tensor, persistent=False)
        names = self.__dict__.setdefault("_constant_names", [])
        if name not in names:
            names.append(name)

    def _apply(self, fn, recurse=True):
        kept = {name: self._buffers[name] for name in self.__dict__.get("_constant_names", ())
                if self._buffers.get(name) is not None}
        out = super()._apply(fn, recurse)
        for name, before in kept.items():
            after = self._buffers[name]
            if after is not None and after.dtype != before.dtype:
                self._buffers[name] = before.to(device=after.device)
        return out


def cast(constant: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``constant`` in ``like``'s dtype (no copy when it already is)."""
    return constant if constant.dtype == like.dtype else constant.to(like.dtype)
