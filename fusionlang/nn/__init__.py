"""fusionlang.nn: the model author's kit in e3nn's vocabulary (see docs/nn.md)."""
from .activation import Activation, Gate, NormActivation, normalize2mom
from .irreps import Irrep, Irreps, MulIr
from .linear import Linear
from .norm import BatchNorm, LayerNorm
from .spherical_harmonics import SphericalHarmonics, spherical_harmonics
from .tensor_product import FullTensorProduct

__all__ = ["Activation", "BatchNorm", "FullTensorProduct", "Gate", "Irrep", "Irreps", "LayerNorm", "Linear",
           "MulIr", "NormActivation", "SphericalHarmonics", "normalize2mom", "spherical_harmonics"]
