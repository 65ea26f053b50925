"""fusionlang.nn: the model author's kit in e3nn's vocabulary (see docs/nn.md).

Where e3nn has a piece, the name and signature are e3nn's, so that porting a
model is mostly a change of import.
"""
from .activation import Activation, Gate, NormActivation, normalize2mom
from .embedding import SpeciesEmbedding, SpeciesWeights
from .graph import (Graph, batch_graphs, edge_vectors, graph_from_structure, neighbour_list, per_graph_sum,
                    radius_graph, scatter_sum)
from .irreps import Irrep, Irreps, MulIr
from .linear import Linear
from .norm import BatchNorm, LayerNorm
from .radial import (BesselBasis, FullyConnectedNet, GaussianBasis, PolynomialCutoff, RadialEmbedding, RadialMLP,
                     numel_of)
from .spherical_harmonics import SphericalHarmonics, spherical_harmonics
from .tensor_product import FullTensorProduct

__all__ = [
    "Activation", "BatchNorm", "BesselBasis", "FullTensorProduct", "FullyConnectedNet", "GaussianBasis", "Gate",
    "Graph", "Irrep", "Irreps", "LayerNorm", "Linear", "MulIr", "NormActivation", "PolynomialCutoff",
    "RadialEmbedding", "RadialMLP", "SpeciesEmbedding", "SpeciesWeights", "SphericalHarmonics", "batch_graphs",
    "edge_vectors", "graph_from_structure", "neighbour_list", "normalize2mom", "numel_of", "per_graph_sum",
    "radius_graph", "scatter_sum", "spherical_harmonics",
]
