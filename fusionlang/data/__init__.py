"""fusionlang.data: datasets for the science study (docs/science.md, "Data").

Molecular dynamics with GFN2-xTB (``python -m fusionlang.data md``), a QM9 subset
(``python -m fusionlang.data qm9``), extended XYZ files, fixed splits, and the
batches that models train on.
"""
from .batch import SPLITS, Batch, atomic_reference_energies, average_num_neighbors, collate, load_split, split_path
from .xyz import labelled, read_structures, reference_energy, reference_forces, write_structures

__all__ = ["SPLITS", "Batch", "atomic_reference_energies", "average_num_neighbors", "collate", "labelled",
           "load_split", "read_structures", "reference_energy", "reference_forces", "split_path",
           "write_structures"]
