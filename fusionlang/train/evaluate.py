"""Energies and forces of a model, the loss, and the error metrics (meV, meV/A) over a set of structures."""
from __future__ import annotations

from dataclasses import replace

import torch

from fusionlang.nn.graph import batch_graphs

# The sums each process accumulates; metrics and losses are ratios of their totals over all processes.
SUM_NAMES = ("structures", "energy_abs", "energy_sq", "energy_per_atom_abs", "energy_per_atom_sq",
             "force_components", "forces_abs", "forces_sq")


class EnergyAndForces(torch.nn.Module):
    """Wraps a model `energy = model(graph)` so that one call returns the energies and the forces
    (minus the gradient in the positions).  Computing the forces inside `forward` is what makes
    DistributedDataParallel see the whole double-backward graph of a force loss as one forward pass."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, graph, forces: bool = True, create_graph: bool = True):
        if not forces:
            return self.model(graph), None
        positions = graph.positions.detach().requires_grad_(True)
        energy = self.model(replace(graph, positions=positions))
        (gradient,) = torch.autograd.grad(energy.sum(), positions, create_graph=create_graph)
        return energy, -gradient


def merge(items):
    """Pre-built one-structure batches as one batch (edges were found once, when the data was loaded)."""
    first = items[0]
    graph = batch_graphs([item.graph for item in items])
    energy = None if first.energy is None else torch.cat([item.energy for item in items])
    forces = None if first.forces is None else torch.cat([item.forces for item in items])
    return replace(first, graph=graph, energy=energy, forces=forces)


def error_sums(energy, forces, batch) -> torch.Tensor:
    """The SUM_NAMES of one batch's errors (differentiable: the loss is made of them)."""
    graph = batch.graph
    atoms = torch.bincount(graph.batch, minlength=graph.num_graphs).to(energy.dtype)
    zero = energy.new_zeros(())
    if batch.energy is not None:
        error = energy - batch.energy.to(energy.dtype)
        per_atom = error / atoms
        energy_terms = [error.abs().sum(), error.pow(2).sum(), per_atom.abs().sum(), per_atom.pow(2).sum()]
    else:
        energy_terms = [zero] * 4
    if batch.forces is not None and forces is not None:
        force_error = forces - batch.forces.to(forces.dtype)
        force_terms = [zero + force_error.numel(), force_error.abs().sum(), force_error.pow(2).sum()]
    else:
        force_terms = [zero] * 3
    return torch.stack([zero + graph.num_graphs, *energy_terms, *force_terms])


def loss_from_sums(sums: torch.Tensor, energy_weight: float, forces_weight: float,
                   structures: float | None = None, force_components: float | None = None) -> torch.Tensor:
    """Weighted mean squared errors: energy per atom (eV^2) and force components ((eV/A)^2).  The means
    divide by the counts in `sums` unless others are given (a process's share of a larger batch)."""
    named = dict(zip(SUM_NAMES, sums))
    structures = named["structures"].clamp(min=1) if structures is None else max(structures, 1)
    loss = energy_weight * named["energy_per_atom_sq"] / structures
    if forces_weight:
        components = named["force_components"].clamp(min=1) if force_components is None else max(force_components, 1)
        loss = loss + forces_weight * named["forces_sq"] / components
    return loss


def metrics_from_sums(sums: torch.Tensor, energy_weight: float, forces_weight: float,
                      with_energy: bool = True) -> dict:
    named = {name: float(value) for name, value in zip(SUM_NAMES, sums)}
    n, components = max(named["structures"], 1.0), named["force_components"]
    out = {"structures": int(named["structures"]),
           "loss": float(loss_from_sums(sums, energy_weight, forces_weight))}
    if with_energy:
        out.update({
            "energy_mae_meV": 1000 * named["energy_abs"] / n,
            "energy_rmse_meV": 1000 * (named["energy_sq"] / n) ** 0.5,
            "energy_mae_per_atom_meV": 1000 * named["energy_per_atom_abs"] / n,
        })
    if components:
        out.update({
            "forces_mae_meV_per_A": 1000 * named["forces_abs"] / components,
            "forces_rmse_meV_per_A": 1000 * (named["forces_sq"] / components) ** 0.5,
        })
    return out


def evaluate(model: torch.nn.Module, items: list, batch_size: int = 32, energy_weight: float = 1.0,
             forces_weight: float = 100.0, device="cpu", group=None) -> dict:
    """Metrics of `model` (energy = model(graph)) on one-structure batches `items`.  Under torchrun
    each process takes every world_size-th structure and the sums are added over the processes."""
    rank, world = (group.rank, group.world_size) if group is not None else (0, 1)
    shard = items[rank::world]
    wrapped = EnergyAndForces(model)
    was_training = model.training
    model.eval()
    sums = None
    with_forces = bool(items) and items[0].forces is not None
    with_energy = bool(items) and items[0].energy is not None
    for start in range(0, len(shard), batch_size):
        batch = merge(shard[start:start + batch_size]).to(device)
        energy, forces = wrapped(batch.graph, forces=with_forces, create_graph=False)
        part = error_sums(energy.detach(), None if forces is None else forces.detach(), batch)
        sums = part if sums is None else sums + part
    model.train(was_training)
    if sums is None:
        dtype = next(model.parameters()).dtype
        sums = torch.zeros(len(SUM_NAMES), dtype=dtype, device=device)
    if group is not None:
        sums = group.sum(sums)
    return metrics_from_sums(sums, energy_weight, forces_weight if with_forces else 0.0, with_energy)
