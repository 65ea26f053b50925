"""The Cormorant-like model and its fusion-block variant.

Features ``F = channels x (0e + 1o + ... lmax)`` on every atom (the species
embedding fills the scalars of the first).  Per layer, one compiled graph
diagram (``diagrams/cormorant_layer.fus``): the neighbours' features coupled
by a CG product with the edge's spherical harmonics, weighted per path and
channel by a learned radial function (linear in the Bessel basis, as
Cormorant's radial functions), summed into the atom; the CG square of the
atom's features (every channel pair); and three channel-mixing linears, added.
The readout is Cormorant's: the invariants of every layer (the scalars and
the squared norms of the other irreps, per channel) through a small MLP.

``fusion=True`` (``"cormorant-fusion"``) replaces both couplings by one fusion
block over the neighbourhood, ``fuse(f_sender, c_receiver, y)`` per edge
(``diagrams/cormorant_fusion_layer.fus``): quadratic in the features, as the
square, but coupling the atom with each neighbour and the edge at once.
"""
from __future__ import annotations

import torch

from .. import nn as fnn
from .common import AtomisticModel, EdgeEmbedding, irreps_up_to
from .compiled import diagram_module

__all__ = ["CormorantModel", "CORMORANT_DEFAULTS"]

CORMORANT_DEFAULTS = dict(channels=16, lmax=2, num_layers=2, num_bessel=8, cutoff_p=6, radial_hidden=(),
                          readout_hidden=32, receiver_lmax=1)
# receiver_lmax (fusion variant only): the degrees of the receiver's compressed features in the fusion
# block.  With 1 the block has 32 complete paths (2.4x fewer than with 2, at about a third of the time).


class CormorantLayer(torch.nn.Module):
    def __init__(self, irreps_f: str, sh_irreps: str, channels: int, lmax: int, num_bessel: int, radial_hidden,
                 avg_num_neighbors: float, fusion: bool, receiver_lmax: int):
        super().__init__()
        self.fusion = fusion
        if fusion:
            self.block = diagram_module("cormorant_fusion_layer", "CormorantFusionLayer", F=irreps_f,
                                        R=irreps_up_to(1, min(receiver_lmax, lmax)), Y=sh_irreps)()
        else:
            self.block = diagram_module("cormorant_layer", "CormorantLayer", F=irreps_f, Y=sh_irreps,
                                        S=irreps_up_to(channels * channels, lmax))()
        self.radial = fnn.RadialMLP(num_bessel, self.block, hidden=tuple(radial_hidden))
        self.inverse_neighbors = 1.0 / avg_num_neighbors

    def forward(self, f, y, radial, edge_index):
        weights = self.radial(radial) * self.inverse_neighbors
        parts = self.block(f, y, weights, edge_index)
        return torch.stack(parts).sum(dim=0)


class CormorantModel(AtomisticModel):
    """A Cormorant-like model ("cormorant") or its fusion-block variant ("cormorant-fusion").

    Sizes: ``channels`` per irrep, ``lmax`` (features and spherical
    harmonics), ``num_layers``, ``num_bessel`` radial functions with a
    polynomial cutoff of order ``cutoff_p``, ``radial_hidden`` (hidden widths
    of the radial functions; none by default: linear in the basis),
    ``readout_hidden`` (the readout MLP), ``receiver_lmax`` (the fusion block's compressed receiver
    features; unused by the baseline).
    """

    def __init__(self, species, cutoff: float = 5.0, atomic_energies=None, avg_num_neighbors: float = 1.0,
                 scale: float = 1.0, shift: float = 0.0, fusion: bool = False, **size):
        super().__init__(species, cutoff, atomic_energies, avg_num_neighbors, scale, shift)
        unknown = set(size) - set(CORMORANT_DEFAULTS)
        if unknown:
            raise ValueError(f"unknown size keywords {sorted(unknown)}; the Cormorant-like model takes "
                             f"{sorted(CORMORANT_DEFAULTS)}")
        size = {**CORMORANT_DEFAULTS, **size}
        size["radial_hidden"] = [int(w) for w in size["radial_hidden"]]
        self.model_name = "cormorant-fusion" if fusion else "cormorant"
        self._config = dict(size)
        c, lmax = size["channels"], size["lmax"]
        self.irreps_f = fnn.Irreps(irreps_up_to(c, lmax))
        self.edge_embedding = EdgeEmbedding(self.cutoff, lmax, size["num_bessel"], size["cutoff_p"])
        self.node_embedding = fnn.SpeciesEmbedding(self.num_species, self.irreps_f)
        self.layers = torch.nn.ModuleList(
            CormorantLayer(str(self.irreps_f), f"sh({lmax})", c, lmax, size["num_bessel"], size["radial_hidden"],
                           self.avg_num_neighbors, fusion, size["receiver_lmax"])
            for _ in range(size["num_layers"]))
        num_invariants = (size["num_layers"] + 1) * self.irreps_f.num_irreps
        self.readout = fnn.FullyConnectedNet([num_invariants, size["readout_hidden"], 1], torch.nn.functional.silu)

    def invariants(self, f: torch.Tensor) -> torch.Tensor:
        """``[N, num_irreps]``: each channel's scalar, and each other irrep's squared norm / its dimension."""
        parts = []
        for term, block in zip(self.irreps_f, f.split([t.dim for t in self.irreps_f], dim=1)):
            block = block.reshape(f.shape[0], term.mul, term.ir.dim)
            parts.append(block[:, :, 0] if term.ir.l == 0 else block.pow(2).mean(dim=2))
        return torch.cat(parts, dim=1)

    def atomic_energies_of(self, graph: fnn.Graph, rows: torch.Tensor) -> torch.Tensor:
        y, radial = self.edge_embedding(graph.edge_vectors())
        f = self.node_embedding(rows)
        invariants = [self.invariants(f)]
        for layer in self.layers:
            f = layer(f, y, radial, graph.edge_index)
            invariants.append(self.invariants(f))
        return self.readout(torch.cat(invariants, dim=1))[:, 0]
