"""Extended XYZ files of labelled structures: energy (eV) in the comment line, forces (eV/Angstrom) per atom.

ase reads the standard ``energy``/``forces`` keys into a single-point calculator;
``read_structures`` moves them back to ``atoms.info``/``atoms.arrays`` so that
every loader sees the labels in one place and nothing recomputes them.
"""
from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np

__all__ = ["read_structures", "write_structures", "labelled", "reference_energy", "reference_forces"]


def reference_energy(atoms) -> float | None:
    """The stored energy (eV): ``atoms.info["energy"]``, else a single-point calculator's result, else None."""
    if "energy" in atoms.info:
        return float(atoms.info["energy"])
    results = getattr(atoms.calc, "results", None) or {}
    return float(results["energy"]) if "energy" in results else None


def reference_forces(atoms) -> np.ndarray | None:
    """The stored forces (eV/Angstrom, ``[n, 3]``): ``atoms.arrays["forces"]``, else a calculator's, else None."""
    if "forces" in atoms.arrays:
        return np.asarray(atoms.arrays["forces"], dtype=np.float64)
    results = getattr(atoms.calc, "results", None) or {}
    return np.asarray(results["forces"], dtype=np.float64) if "forces" in results else None


def labelled(atoms, energy=None, forces=None):
    """A copy of ``atoms`` without calculator, with ``energy``/``forces`` (default: the ones it carries) as labels."""
    energy = reference_energy(atoms) if energy is None else float(energy)
    forces = reference_forces(atoms) if forces is None else np.asarray(forces, dtype=np.float64)
    copy = atoms.copy()
    copy.calc = None
    copy.info.pop("energy", None)
    if "forces" in copy.arrays:
        del copy.arrays["forces"]
    if energy is not None:
        copy.info["energy"] = energy
    if forces is not None:
        if forces.shape != (len(atoms), 3):
            raise ValueError(f"forces are [{len(atoms)}, 3], got {forces.shape}")
        copy.arrays["forces"] = forces
    return copy


def write_structures(path, structures, append: bool = False) -> None:
    """Write (or append) ``structures`` with their energy/forces labels as extended XYZ (``.gz`` compresses)."""
    from ase.io import write
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write(path, [labelled(atoms) for atoms in structures], format="extxyz", append=append)


def read_structures(path) -> list:
    """Every structure of an extended XYZ file (``.gz`` too), labels in ``info["energy"]``/``arrays["forces"]``."""
    from ase.io import read
    path = Path(path)
    if path.suffix == ".gz":
        # decompressed once: ase seeks back to each frame, which re-inflates a gzip stream from its start
        source = io.StringIO(gzip.decompress(path.read_bytes()).decode())
    else:
        source = path
    return [labelled(atoms) for atoms in read(source, index=":", format="extxyz")]
