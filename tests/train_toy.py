"""A tiny model and synthetic labelled molecules for the training tests (independent of fusionlang.models).

`build_pair_model` has build_model's signature, so a config names it as
`model.name = "train_toy:build_pair_model"` (with tests/ on the import path).
"""
from __future__ import annotations

import numpy as np
import torch

from fusionlang.nn.graph import Graph, per_graph_sum


class PairModel(torch.nn.Module):
    """E = sum_Z E0[Z] + sum over edges of MLP(r, species pair) times a smooth cutoff."""

    def __init__(self, species, cutoff, atomic_energies=None, avg_num_neighbors=1.0, hidden=8, scale=1.0,
                 shift=0.0):
        super().__init__()
        self.config = {"species": list(species), "cutoff": cutoff, "atomic_energies": atomic_energies,
                       "avg_num_neighbors": avg_num_neighbors, "hidden": hidden, "scale": scale, "shift": shift}
        table = torch.zeros(max(species) + 1, dtype=torch.long)
        table[torch.tensor(species)] = torch.arange(len(species))
        self.register_buffer("index_of_z", table)
        shifts = torch.zeros(len(species))
        for k, z in enumerate(species):
            shifts[k] = float((atomic_energies or {}).get(z, 0.0))
        self.register_buffer("atomic_energies", shifts)
        self.cutoff = cutoff
        self.embedding = torch.nn.Embedding(len(species), 4)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(9, hidden), torch.nn.SiLU(), torch.nn.Linear(hidden, 1))
        self.scale, self.shift = scale / avg_num_neighbors, shift

    def forward(self, graph: Graph) -> torch.Tensor:
        kinds = self.index_of_z[graph.species]
        sender, receiver = graph.edge_index
        r = graph.edge_vectors().norm(dim=1, keepdim=True)
        envelope = 0.5 * (torch.cos(torch.pi * r / self.cutoff) + 1)
        features = torch.cat([r, self.embedding(kinds[sender]), self.embedding(kinds[receiver])], dim=1)
        pair = self.mlp(features) * envelope * self.scale
        atomic = self.atomic_energies[kinds] + self.shift + torch.zeros_like(graph.positions[:, 0]).index_add(
            0, receiver, pair[:, 0])
        return per_graph_sum(atomic, graph.batch, graph.num_graphs)


def build_pair_model(species, cutoff, atomic_energies=None, avg_num_neighbors=1.0, hidden=8, scale=1.0, shift=0.0):
    return PairModel(species, cutoff, atomic_energies, avg_num_neighbors, hidden, scale, shift)


def synthetic_molecules(count: int, seed: int = 0):
    """Distorted water and methane molecules labelled by ase's EMT potential (energies and forces)."""
    from ase.build import molecule
    from ase.calculators.emt import EMT

    rng = np.random.default_rng(seed)
    structures = []
    for k in range(count):
        atoms = molecule("H2O" if k % 2 else "CH4")
        atoms.positions += rng.normal(scale=0.08, size=atoms.positions.shape)
        atoms.calc = EMT()
        atoms.info["energy"] = float(atoms.get_potential_energy())
        atoms.arrays["forces"] = atoms.get_forces().copy()
        atoms.calc = None
        structures.append(atoms)
    return structures


def write_dataset(folder, train=12, valid=4, test=4, seed=0):
    """train/valid/test extended-XYZ files of synthetic molecules; returns their paths."""
    import ase.io

    paths = {}
    for offset, (split, count) in enumerate((("train", train), ("valid", valid), ("test", test))):
        path = folder / f"{split}.xyz"
        ase.io.write(path, synthetic_molecules(count, seed=seed + 100 * offset), format="extxyz")
        paths[split] = str(path)
    return paths


def config_text(paths, out, model=None, **train) -> str:
    """A config for the toy model (or `model`: a [model] table as a dict) on `paths`; `train` overrides
    [train] keys."""
    settings = {"seed": 3, "dtype": "float64", "batch_size": 4, "max_epochs": 3, "lr": 0.01,
                "ema_decay": 0.9, "progress": False, "threads": 1}
    settings.update(train)
    model = model or {"name": "train_toy:build_pair_model", "hidden": 8}
    lines = ["[data]", f'train_file = "{paths["train"]}"', f'valid_file = "{paths["valid"]}"',
             f'test_file = "{paths["test"]}"', "cutoff = 3.0", "", "[model]"]
    lines += [_toml_line(key, value) for key, value in model.items()] + ["", "[train]"]
    lines += [_toml_line(key, value) for key, value in settings.items()]
    lines += ["", "[output]", f'dir = "{out}"']
    return "\n".join(lines) + "\n"


def _toml_line(key, value) -> str:
    return f"{key} = {value!r}".replace("'", '"').replace("True", "true").replace("False", "false")
