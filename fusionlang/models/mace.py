"""The MACE-like model and its fusion-block variant.

Per layer: the interaction (a compiled graph diagram: linear, gather, a uvu
fuse with the edge's spherical harmonics weighted per edge by a radial MLP,
scatter divided by the average number of neighbours, linear) gives the atomic
basis ``A``; the product basis (compiled: symmetric fuses of correlation 2 and
3 with one weight row per element, plus correlation 1 weighted per element
here) and a linear layer give the new features, to which a linear
self-connection of the old ones is added.  Readouts: linear on the first
layer, an MLP on the scalars of the last; the model sums them over layers.

``fusion=True`` (``"mace-fusion"``) replaces the interaction's coupling by a
fusion block over the neighbourhood: ``fuse(h_sender, c_receiver, y)`` per
edge (``diagrams/mace_fusion_interaction.fus``), and uses a smaller radial
MLP (its output is wider: one weight per complete path of the tree).
"""
from __future__ import annotations

import torch

from .. import nn as fnn
from .common import AtomisticModel, EdgeEmbedding, irreps_up_to
from .compiled import diagram_module

__all__ = ["MaceModel", "MACE_DEFAULTS", "MACE_FUSION_DEFAULTS"]

MACE_DEFAULTS = dict(channels=16, lmax=3, hidden_lmax=1, num_layers=2, num_bessel=8, cutoff_p=6,
                     radial_hidden=(64, 64), readout_hidden=16)
# The fusion block's radial MLP ends in one weight per complete path and channel (480 instead of 160 in
# the second layer at these sizes): its last hidden layer is narrower so that the model stays no larger.
MACE_FUSION_DEFAULTS = dict(MACE_DEFAULTS, radial_hidden=(64, 32))


class ProductBasis(torch.nn.Module):
    """``A -> B``: element-weighted powers of the atomic basis (correlation 1, 2 and 3), then a linear."""

    def __init__(self, num_species: int, irreps_a: str, irreps_b: str):
        super().__init__()
        self.powers = diagram_module("mace_product_basis", "MaceProductBasis", A=irreps_a, B=irreps_b)()
        numel_2, numel_3 = self.powers.weight_numel
        self.irreps_a, self.irreps_b = fnn.Irreps(irreps_a), fnn.Irreps(irreps_b)
        # correlation 1: A's terms that B has, one weight per (element, term, channel)
        self.linear_terms = []
        for term in self.irreps_b:
            source = next(i for i, t in enumerate(self.irreps_a) if t.ir == term.ir)
            self.linear_terms.append(source)
        numel_1 = sum(self.irreps_b[k].mul for k in range(len(self.irreps_b)))
        self.numels = (numel_1, numel_2, numel_3)
        self.element_weights = fnn.SpeciesWeights(num_species, sum(self.numels))
        self.linear = fnn.Linear(self.irreps_b, self.irreps_b)

    def forward(self, a: torch.Tensor, rows: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        w1, w2, w3 = self.element_weights(rows).split(self.numels, dim=1)
        b2, b3 = self.powers(a, w2, w3, edge_index)
        a_blocks = [a[:, s] for s in self.irreps_a.slices()]
        first_power, offset = [], 0
        for term, source in zip(self.irreps_b, self.linear_terms):
            block = a_blocks[source].reshape(a.shape[0], term.mul, term.ir.dim)
            first_power.append((block * w1[:, offset:offset + term.mul, None]).reshape(a.shape[0], -1))
            offset += term.mul
        return self.linear(torch.cat(first_power, dim=1) + b2 + b3)


class MaceLayer(torch.nn.Module):
    def __init__(self, num_species: int, irreps_h: str, irreps_a: str, irreps_b: str, sh_irreps: str,
                 num_bessel: int, radial_hidden, avg_num_neighbors: float, fusion: bool, last: bool,
                 readout_hidden: int):
        super().__init__()
        if fusion:
            compressed = irreps_up_to(1, fnn.Irreps(irreps_h).lmax)
            self.interaction = diagram_module("mace_fusion_interaction", "MaceFusionInteraction", H=irreps_h,
                                              R=compressed, Y=sh_irreps, A=irreps_a)()
        else:
            self.interaction = diagram_module("mace_interaction", "MaceInteraction", H=irreps_h, Y=sh_irreps,
                                              A=irreps_a)()
        self.radial_mlp = fnn.RadialMLP(num_bessel, self.interaction, hidden=tuple(radial_hidden))
        self.inverse_neighbors = 1.0 / avg_num_neighbors
        self.product = ProductBasis(num_species, irreps_a, irreps_b)
        self.self_connection = fnn.Linear(irreps_h, irreps_b)
        if last:
            self.readout = fnn.FullyConnectedNet([fnn.Irreps(irreps_b).dim, readout_hidden, 1],
                                                 torch.nn.functional.silu)
        else:
            self.readout = fnn.Linear(irreps_b, "1x0e")

    def forward(self, h, y, radial, rows, edge_index):
        # scatter / avg_num_neighbors, folded into the per-edge weights (the sum is linear in them)
        weights = self.radial_mlp(radial) * self.inverse_neighbors
        a = self.interaction(h, y, weights, edge_index)
        h_next = self.product(a, rows, edge_index) + self.self_connection(h)
        return h_next, self.readout(h_next)[:, 0]


class MaceModel(AtomisticModel):
    """A MACE-like model (``fusion=False``: "mace") or its fusion-block variant ("mace-fusion").

    Sizes: ``channels`` (per irrep), ``lmax`` (spherical harmonics and atomic
    basis), ``hidden_lmax`` (features between layers; only scalars after the
    last), ``num_layers``, ``num_bessel`` radial functions with a polynomial
    cutoff of order ``cutoff_p``, ``radial_hidden`` (the radial MLP's hidden
    widths), ``readout_hidden`` (the last readout's MLP).  Correlation 3.
    """

    def __init__(self, species, cutoff: float = 5.0, atomic_energies=None, avg_num_neighbors: float = 1.0,
                 scale: float = 1.0, shift: float = 0.0, fusion: bool = False, **size):
        super().__init__(species, cutoff, atomic_energies, avg_num_neighbors, scale, shift)
        defaults = MACE_FUSION_DEFAULTS if fusion else MACE_DEFAULTS
        unknown = set(size) - set(defaults)
        if unknown:
            raise ValueError(f"unknown size keywords {sorted(unknown)}; the MACE-like model takes {sorted(defaults)}")
        size = {**defaults, **size}
        size["radial_hidden"] = [int(w) for w in size["radial_hidden"]]
        self.model_name = "mace-fusion" if fusion else "mace"
        self._config = dict(size)
        c, lmax, hidden_lmax = size["channels"], size["lmax"], size["hidden_lmax"]
        if size["num_layers"] < 1:
            raise ValueError("num_layers must be >= 1")
        sh_irreps = f"sh({lmax})"
        self.edge_embedding = EdgeEmbedding(self.cutoff, lmax, size["num_bessel"], size["cutoff_p"])
        first = f"{c}x0e"
        self.node_embedding = fnn.SpeciesEmbedding(self.num_species, first)
        layers, irreps_h = [], first
        for t in range(size["num_layers"]):
            last = t == size["num_layers"] - 1
            irreps_b = f"{c}x0e" if last else irreps_up_to(c, hidden_lmax)
            layers.append(MaceLayer(self.num_species, irreps_h, irreps_up_to(c, lmax), irreps_b, sh_irreps,
                                    size["num_bessel"], size["radial_hidden"], self.avg_num_neighbors, fusion,
                                    last, size["readout_hidden"]))
            irreps_h = irreps_b
        self.layers = torch.nn.ModuleList(layers)

    def atomic_energies_of(self, graph: fnn.Graph, rows: torch.Tensor) -> torch.Tensor:
        y, radial = self.edge_embedding(graph.edge_vectors())
        h = self.node_embedding(rows)
        energies = []
        for layer in self.layers:
            h, layer_energy = layer(h, y, radial, rows, graph.edge_index)
            energies.append(layer_energy)
        return torch.stack(energies).sum(dim=0)
