"""The four models by name: ``build_model``, ``count_parameters`` and rebuilding a model from a checkpoint."""
from __future__ import annotations

import torch

from .common import AtomisticModel
from .cormorant import CormorantModel
from .mace import MaceModel

__all__ = ["MODEL_NAMES", "build_model", "count_parameters", "load_checkpoint_model"]

_BUILDERS = {
    "mace": lambda **kw: MaceModel(fusion=False, **kw),
    "mace-fusion": lambda **kw: MaceModel(fusion=True, **kw),
    "cormorant": lambda **kw: CormorantModel(fusion=False, **kw),
    "cormorant-fusion": lambda **kw: CormorantModel(fusion=True, **kw),
}
MODEL_NAMES = tuple(_BUILDERS)


def build_model(name: str, species=(1, 6, 8), cutoff: float = 5.0, atomic_energies=None,
                avg_num_neighbors: float = 1.0, **kwargs) -> AtomisticModel:
    """A model by name, in the default dtype; ``kwargs``: ``scale``, ``shift`` and the model's size keywords."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; the models are {', '.join(MODEL_NAMES)}")
    return _BUILDERS[name](species=species, cutoff=cutoff, atomic_energies=atomic_energies,
                           avg_num_neighbors=avg_num_neighbors, **kwargs)


def count_parameters(model: torch.nn.Module) -> int:
    """The number of trainable numbers (every element of every parameter that requires a gradient)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def load_checkpoint_model(checkpoint, map_location="cpu") -> AtomisticModel:
    """A model rebuilt from a checkpoint (a path or the loaded dict: model_name, model_config, model_state)."""
    if not isinstance(checkpoint, dict):
        checkpoint = torch.load(checkpoint, map_location=map_location, weights_only=False)
    model = build_model(checkpoint["model_name"], **checkpoint["model_config"])
    state = checkpoint["model_state"]
    dtype = next((v.dtype for v in state.values() if torch.is_tensor(v) and v.is_floating_point()), None)
    if dtype is not None:
        model = model.to(dtype)
    model.load_state_dict(state)
    return model
