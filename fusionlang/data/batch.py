"""Structures (``ase.Atoms``) as training batches, the saved splits, and the statistics models need.

The interface shared by the data, model and training code (see docs/science.md):
``collate`` turns a list of structures into one ``Batch`` (a ``fusionlang.nn.Graph``
whose ``species`` are atomic numbers, plus reference energies and forces);
``load_split`` reads a saved train/valid/test split; ``atomic_reference_energies``
and ``average_num_neighbors`` are the two dataset statistics a MACE-style model
is built with.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..nn.graph import Graph, batch_graphs, graph_from_structure, neighbour_list
from .xyz import read_structures, reference_energy, reference_forces

__all__ = ["Batch", "collate", "load_split", "split_path", "atomic_reference_energies", "average_num_neighbors",
           "SPLITS"]

SPLITS = ("train", "valid", "test")
_REPO_DATA = Path(__file__).resolve().parents[2] / "data"


@dataclass
class Batch:
    """Several structures as one graph with their labels.

    ``graph.species`` holds atomic numbers (int64); ``energy`` ``[G]`` is the
    total energy of each structure in eV; ``forces`` ``[N, 3]`` in eV/Angstrom.
    Either label is None when some structure of the batch lacks it.
    """

    graph: Graph
    energy: torch.Tensor | None = None
    forces: torch.Tensor | None = None

    @property
    def num_graphs(self) -> int:
        return self.graph.num_graphs

    def to(self, *args, **kwargs) -> "Batch":
        """Like ``Graph.to``: floating tensors take the dtype/device, integer tensors only the device."""
        return replace(self, graph=self.graph.to(*args, **kwargs),
                       energy=None if self.energy is None else self.energy.to(*args, **kwargs),
                       forces=None if self.forces is None else self.forces.to(*args, **kwargs))


def _cell_of(atoms):
    """The cell and pbc to build the neighbour list with; None for a molecule (no periodic axis)."""
    if not any(atoms.pbc):
        return None, None
    return np.asarray(atoms.cell.array, dtype=np.float64), list(atoms.pbc)


def collate(structures, cutoff: float, dtype: torch.dtype = torch.float64) -> Batch:
    """``structures`` (a list of ``ase.Atoms``) as one ``Batch`` with edges closer than ``cutoff`` (Angstrom)."""
    structures = list(structures)
    if not structures:
        raise ValueError("collate needs at least one structure")
    graphs = []
    for atoms in structures:
        cell, pbc = _cell_of(atoms)
        positions = torch.as_tensor(np.asarray(atoms.positions, dtype=np.float64), dtype=dtype)
        graph = graph_from_structure(positions, atoms.numbers.astype(np.int64), cutoff, cell=cell, pbc=pbc)
        graphs.append(graph)
    graph = batch_graphs(graphs)
    energies = [reference_energy(atoms) for atoms in structures]
    forces = [reference_forces(atoms) for atoms in structures]
    energy = None if any(e is None for e in energies) else torch.tensor(energies, dtype=dtype)
    force = None if any(f is None for f in forces) else torch.as_tensor(np.concatenate(forces), dtype=dtype)
    return Batch(graph, energy, force)


def split_path(dataset: str, split: str, root="data") -> Path:
    """Where ``load_split`` reads from: ``<root>/<dataset>/<split>.xyz`` or ``<root>/md/<dataset>/<split>.xyz``.

    A relative ``root`` that does not exist under the working directory is also
    looked up beside the package (the repository's ``data/``).
    """
    if split not in SPLITS:
        raise ValueError(f"split is one of {', '.join(SPLITS)}, got {split!r}")
    roots = [Path(root)]
    if not Path(root).is_absolute() and Path(root).parts[:1] == ("data",):
        roots.append(_REPO_DATA.joinpath(*Path(root).parts[1:]))
    candidates = [r / sub / f"{split}{ext}" for r in roots for sub in (Path(dataset), Path("md") / dataset)
                  for ext in (".xyz", ".xyz.gz")]
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"no {split} split of {dataset!r} under {root!r} (looked for {', '.join(str(c) for c in candidates[:2])}); "
        f"generate it with `python -m fusionlang.data {'qm9' if dataset == 'qm9' else 'md --molecule ' + dataset}`")


def load_split(dataset: str, split: str, root="data") -> list:
    """The saved ``split`` ("train", "valid", "test") of ``dataset`` ("ethanol", "aspirin", ..., "qm9").

    Each structure carries ``atoms.info["energy"]`` (eV) and, for MD data,
    ``atoms.arrays["forces"]`` (eV/Angstrom); no calculator is attached.
    """
    return read_structures(split_path(dataset, split, root))


def atomic_reference_energies(structures) -> dict[int, float]:
    """Per-element energies ``E0[Z]`` (eV) that best fit ``E = sum_atoms E0[Z]`` by least squares.

    When the compositions do not determine them (a single molecule's MD data),
    this is the minimum-norm solution: it still reproduces the mean energy.
    """
    structures = list(structures)
    elements = sorted({int(z) for atoms in structures for z in atoms.numbers})
    column = {z: k for k, z in enumerate(elements)}
    counts = np.zeros((len(structures), len(elements)))
    energies = np.empty(len(structures))
    for row, atoms in enumerate(structures):
        for z in atoms.numbers:
            counts[row, column[int(z)]] += 1
        energy = reference_energy(atoms)
        if energy is None:
            raise ValueError(f"structure {row} has no energy (atoms.info['energy'])")
        energies[row] = energy
    solution, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    return {z: float(solution[column[z]]) for z in elements}


def average_num_neighbors(structures, cutoff: float) -> float:
    """Mean number of neighbours closer than ``cutoff`` per atom, over all atoms of ``structures``."""
    edges = atoms_total = 0
    for atoms in structures:
        cell, pbc = _cell_of(atoms)
        edge_index, _ = neighbour_list(atoms.positions, cutoff, cell, pbc)
        edges += edge_index.shape[1]
        atoms_total += len(atoms)
    if atoms_total == 0:
        raise ValueError("average_num_neighbors needs at least one atom")
    return edges / atoms_total
