"""Models for molecules built from compiled .fus diagrams and fusionlang.nn (docs/science.md, "Models").

``build_model(name, species=..., cutoff=..., atomic_energies=..., avg_num_neighbors=..., **size)`` with
``name`` in ``MODEL_NAMES``; ``model(graph)`` gives one energy per structure (``graph.species`` holds
atomic numbers); ``count_parameters(model)``; ``model.config`` rebuilds it; ``Calculator`` is the ASE
calculator.
"""
from .calculator import Calculator
from .common import AtomisticModel
from .cormorant import CORMORANT_DEFAULTS, CormorantModel
from .mace import MACE_DEFAULTS, MACE_FUSION_DEFAULTS, MaceModel
from .registry import MODEL_NAMES, build_model, count_parameters, load_checkpoint_model

__all__ = ["MODEL_NAMES", "build_model", "count_parameters", "AtomisticModel", "MaceModel", "CormorantModel",
           "Calculator", "load_checkpoint_model", "MACE_DEFAULTS", "MACE_FUSION_DEFAULTS", "CORMORANT_DEFAULTS"]
