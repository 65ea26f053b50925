"""Species: a learned embedding of atom types, and per-species weights for a node vertex."""
from __future__ import annotations

import torch

from .irreps import Irreps
from .linear import Linear
from .radial import numel_of

__all__ = ["SpeciesEmbedding", "SpeciesWeights"]


def _one_hot(species: torch.Tensor, num_species: int, dtype) -> torch.Tensor:
    if species.is_floating_point():
        if species.shape[-1] != num_species:
            raise ValueError(f"one-hot species need {num_species} columns, got shape {tuple(species.shape)}")
        return species.to(dtype)
    return torch.nn.functional.one_hot(species, num_species).to(dtype)


class SpeciesEmbedding(torch.nn.Module):
    """Species index ``[N]`` (or one-hot ``[N, num_species]``) -> ``[N, irreps_out.dim]``.

    ``Linear(num_species x 0e -> irreps_out)`` on the one-hot encoding, as
    MACE's node embedding; only the ``0e`` terms of ``irreps_out`` are nonzero.
    """

    def __init__(self, num_species: int, irreps_out):
        super().__init__()
        self.num_species = int(num_species)
        self.irreps_in = Irreps([(self.num_species, (0, 1))])
        self.irreps_out = Irreps(irreps_out)
        self.linear = Linear(self.irreps_in, self.irreps_out)

    def forward(self, species: torch.Tensor) -> torch.Tensor:
        return self.linear(_one_hot(species, self.num_species, self.linear.weight.dtype))


class SpeciesWeights(torch.nn.Module):
    """Species index ``[N]`` -> ``[N, weight_numel]``: one learned weight row per species.

    The ``<wire>_weights`` input of an ``[external]`` vertex applied per node,
    so that each element has its own weights (MACE's element-dependent
    product-basis weights).  ``weight_numel`` is an int or anything that has
    one.  Rows start standard normal, like a compiled module's internal weights.
    """

    def __init__(self, num_species: int, weight_numel):
        super().__init__()
        self.num_species = int(num_species)
        self.weight_numel = numel_of(weight_numel)
        self.weight = torch.nn.Parameter(torch.randn(self.num_species, self.weight_numel))

    def forward(self, species: torch.Tensor) -> torch.Tensor:
        if species.is_floating_point():
            return _one_hot(species, self.num_species, self.weight.dtype) @ self.weight
        return self.weight.index_select(0, species.reshape(-1)).reshape(species.shape + (self.weight_numel,))

    def extra_repr(self) -> str:
        return f"{self.num_species} species x {self.weight_numel} weights"
