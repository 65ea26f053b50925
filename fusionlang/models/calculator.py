"""An ASE calculator for the models of fusionlang.models: energies and forces (minus the energy's gradient).

    from fusionlang.models import Calculator
    atoms.calc = Calculator("checkpoint.pt")          # or Calculator(model)
    atoms.get_potential_energy(), atoms.get_forces()

A checkpoint is the dict scitrain saves (``model_name``, ``model_config``,
``model_state``; docs/science.md).  The neighbour list is rebuilt at every
call from the model's cutoff (periodic cells through ``atoms.pbc``).
"""
from __future__ import annotations

import copy
import os

import numpy as np
import torch
from ase.calculators.calculator import Calculator as AseCalculator
from ase.calculators.calculator import all_changes

from .. import nn as fnn
from .registry import load_checkpoint_model

__all__ = ["Calculator"]


class Calculator(AseCalculator):
    """``Calculator(checkpoint_path_or_model, device="cpu", dtype=torch.float64)``.

    A model given as an object is copied (its dtype and device are left as
    they were); a path is loaded with ``torch.load`` (``weights_only=False``:
    load only checkpoints you trust).
    """

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, model, device="cpu", dtype=torch.float64, **kwargs):
        super().__init__(**kwargs)
        if isinstance(model, (str, os.PathLike)):
            model = load_checkpoint_model(model, map_location=device)
        elif isinstance(model, dict):
            model = load_checkpoint_model(model)
        else:
            model = copy.deepcopy(model)
        self.device, self.dtype = torch.device(device), dtype
        self.model = model.to(device=self.device, dtype=dtype).eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        periodic = bool(np.any(atoms.pbc))
        positions = torch.tensor(atoms.positions, dtype=self.dtype, device=self.device)
        graph = fnn.graph_from_structure(positions.detach().cpu(), atoms.numbers, self.model.cutoff,
                                         cell=atoms.cell.array if periodic else None,
                                         pbc=atoms.pbc if periodic else None).to(self.device)
        positions.requires_grad_(True)
        graph.positions = positions
        energy = self.model(graph).sum()
        forces = -torch.autograd.grad(energy, positions)[0]
        value = float(energy.detach().cpu())
        self.results = {"energy": value, "free_energy": value,
                        "forces": forces.detach().cpu().numpy().astype(np.float64)}
