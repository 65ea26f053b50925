"""Numerical equivariance of compiled modules: f(D x) == D f(x) under random rotations (and inversion)."""
from __future__ import annotations

import numpy as np
import torch

from .wigner import irreps_D, random_rotation

TOLERANCE = 1e-9      # float64; errors are relative to the output's largest entry


def random_inputs(diagram, batch: int, generator: torch.Generator, dtype=torch.float64) -> list[torch.Tensor]:
    complex_group = diagram.group.is_complex
    out = []
    for w in diagram.inputs:
        shape = (batch, diagram.irreps(w).dim)
        if complex_group:
            out.append(torch.complex(torch.randn(shape, generator=generator, dtype=dtype),
                                     torch.randn(shape, generator=generator, dtype=dtype)))
        else:
            out.append(torch.randn(shape, generator=generator, dtype=dtype))
    return out


def external_weights(plan, batch: int, generator: torch.Generator, dtype=torch.float64) -> list[torch.Tensor]:
    return [torch.randn(batch, v.weight_numel, generator=generator, dtype=dtype)
            for v in plan.vertices if v.external and v.weight_numel]


def _as_tensor(matrix: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(matrix)).to(like.dtype)


def equivariance_error(module: torch.nn.Module, diagram, plan, trials: int = 4, batch: int = 3,
                       seed: int = 0) -> float:
    """Worst relative error of f(D x) - D f(x) over random rotations (and, for O3, with inversion)."""
    module = module.double() if not diagram.group.is_complex else module.double()
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    worst = 0.0
    for trial in range(trials):
        xs = random_inputs(diagram, batch, gen)
        ws = external_weights(plan, batch, gen)
        angles = random_rotation(rng)
        inversion = diagram.group.has_parity and trial % 2 == 1
        Ds = {w: irreps_D(diagram.group_name, diagram.irreps(w), *angles, inversion=inversion)
              for w in diagram.inputs + diagram.outputs}
        rotated = [x @ _as_tensor(Ds[w], x).T for w, x in zip(diagram.inputs, xs)]
        with torch.no_grad():
            out = module(*xs, *ws)
            out_rot = module(*rotated, *ws)
        outs = out if isinstance(out, tuple) else (out,)
        outs_rot = out_rot if isinstance(out_rot, tuple) else (out_rot,)
        for w, y, y_rot in zip(diagram.outputs, outs, outs_rot):
            expected = y @ _as_tensor(Ds[w], y).T
            scale = max(float(expected.abs().max()), 1e-30)
            worst = max(worst, float((y_rot - expected).abs().max()) / scale)
    return worst
