"""What every model of fusionlang.models shares: elements, the edge embedding, energies per structure.

A model maps a ``fusionlang.nn.Graph`` whose ``species`` are atomic numbers to
one energy per structure: ``E = sum over atoms of (E0[Z] + shift + scale * e_i)``
with ``e_i`` the learned atomic energy.  ``config`` holds every argument of the
constructor, so ``build_model(name, **config)`` rebuilds the model (checkpoints
store it).
"""
from __future__ import annotations

import torch

from .. import nn as fnn
from .compiled import channels_of

__all__ = ["AtomisticModel", "EdgeEmbedding", "irreps_up_to"]


def irreps_up_to(mul: int, lmax: int) -> str:
    """``mul x (0e + 1o + 2e + ...)`` up to ``lmax``: the parities of the spherical harmonics."""
    return channels_of(mul, range(lmax + 1))


class EdgeEmbedding(torch.nn.Module):
    """Edge vectors -> (spherical harmonics ``sh(lmax)``, Bessel x polynomial-cutoff radial basis)."""

    def __init__(self, cutoff: float, lmax: int, num_bessel: int, cutoff_p: int = 6):
        super().__init__()
        self.spherical_harmonics = fnn.SphericalHarmonics(f"sh({lmax})", normalize=True, normalization="component")
        self.radial = fnn.RadialEmbedding(cutoff, num_basis=num_bessel, p=cutoff_p)

    def forward(self, vectors: torch.Tensor):
        lengths = vectors.norm(dim=1)
        return self.spherical_harmonics(vectors), self.radial(lengths)


class AtomisticModel(torch.nn.Module):
    """Elements, reference energies and the per-structure sum; subclasses define ``atomic_energies_of``."""

    model_name = ""

    def __init__(self, species, cutoff: float, atomic_energies=None, avg_num_neighbors: float = 1.0,
                 scale: float = 1.0, shift: float = 0.0):
        super().__init__()
        self.species = [int(z) for z in species]
        if len(set(self.species)) != len(self.species) or not self.species:
            raise ValueError(f"species lists each atomic number once, got {species}")
        self.cutoff = float(cutoff)
        self.avg_num_neighbors = float(avg_num_neighbors)
        if not self.avg_num_neighbors > 0:
            raise ValueError(f"avg_num_neighbors must be > 0, got {avg_num_neighbors}")
        self.scale, self.shift = float(scale), float(shift)
        energies = {int(z): float(e) for z, e in (atomic_energies or {}).items()}
        unknown = set(energies) - set(self.species)
        if unknown:
            raise ValueError(f"atomic_energies names elements {sorted(unknown)} that are not in species {self.species}")
        self.atomic_energies = energies
        # Z -> row of the per-element tables; -1 marks an element the model was not built for
        index = torch.full((max(self.species) + 1,), -1, dtype=torch.int64)
        index[torch.tensor(self.species)] = torch.arange(len(self.species))
        self.register_buffer("species_index", index, persistent=False)
        self.register_buffer("reference_energy", torch.tensor([energies.get(z, 0.0) for z in self.species],
                                                             dtype=torch.get_default_dtype()))
        self._config = {}

    @property
    def num_species(self) -> int:
        return len(self.species)

    @property
    def config(self) -> dict:
        """The keyword arguments of ``build_model(self.model_name, **config)`` that rebuild this model."""
        return {"species": list(self.species), "cutoff": self.cutoff,
                "atomic_energies": dict(self.atomic_energies), "avg_num_neighbors": self.avg_num_neighbors,
                "scale": self.scale, "shift": self.shift, **self._config}

    def element_rows(self, atomic_numbers: torch.Tensor) -> torch.Tensor:
        """Atomic numbers ``[N]`` -> rows ``0..num_species-1`` of the per-element tables."""
        if not torch.compiler.is_compiling():
            bad = (atomic_numbers < 0) | (atomic_numbers >= self.species_index.shape[0])
            rows = self.species_index[atomic_numbers.clamp(0, self.species_index.shape[0] - 1)]
            if bool((bad | (rows < 0)).any()):
                unknown = sorted({int(z) for z in atomic_numbers[bad | (rows < 0)]})
                raise ValueError(f"atomic numbers {unknown} are not among the model's species {self.species}")
            return rows
        return self.species_index[atomic_numbers]

    def atomic_energies_of(self, graph: fnn.Graph, rows: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, graph: fnn.Graph) -> torch.Tensor:
        """Energies ``[num_graphs]`` of the structures of ``graph`` (differentiable in ``graph.positions``)."""
        rows = self.element_rows(graph.species)
        learned = self.atomic_energies_of(graph, rows)
        reference = self.reference_energy.to(learned.dtype).index_select(0, rows)
        per_atom = reference + self.shift + self.scale * learned
        return fnn.per_graph_sum(per_atom, graph.batch, graph.num_graphs)
