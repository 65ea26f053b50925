"""A fixed, seeded subset of QM9 for the Cormorant-style energy task, read from the ``qm9pack`` package.

qm9pack ships QM9 (B3LYP/6-31G(2df,p) geometries and properties of 130,831
molecules) as CSV files inside the package.  Its own loader imports
``pkg_resources``, which recent setuptools no longer ship, so the CSV files are
read here directly with the standard library.  The target is the internal
energy at 0 K, ``U0``, converted from hartree to eV; QM9 has no forces.
"""
from __future__ import annotations

import ast
import csv
import importlib.util
import json
import time
from pathlib import Path

import numpy as np

from .md import package_versions
from .splits import split_indices, write_split_files

__all__ = ["qm9_csv_files", "read_qm9", "write_qm9_subset", "ENERGY_COLUMN"]

ENERGY_COLUMN = "InternalEnergy_0K_au"       # U0, hartree
_PARTS = ("qm9_part1.csv", "qm9_part2.csv", "qm9_part3.csv")


def qm9_csv_files() -> list[Path]:
    """The CSV files of the installed qm9pack (located without importing it)."""
    spec = importlib.util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the QM9 subset needs qm9pack: pip install 'fusionlang[science]'")
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    files = [data / name for name in _PARTS]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise RuntimeError(f"qm9pack is installed without its data files: {', '.join(missing)}")
    return files


def read_qm9(rows=None) -> list:
    """QM9 molecules as ``ase.Atoms`` (``info["energy"]`` = U0 in eV, ``info["qm9_index"]``), in file order.

    ``rows`` (a set of 0-based row numbers over the concatenated files) keeps
    only those rows, so that a subset does not parse every geometry.
    """
    from ase import Atoms
    from ase.units import Hartree
    csv.field_size_limit(1 << 24)
    molecules, row = [], 0
    for path in qm9_csv_files():
        with open(path, newline="") as handle:
            for record in csv.DictReader(handle):
                if rows is None or row in rows:
                    symbols = ast.literal_eval(record["Elements"])
                    positions = np.array(ast.literal_eval(record["XYZ_Ang"]), dtype=np.float64)
                    atoms = Atoms(symbols, positions=positions.reshape(len(symbols), 3))
                    atoms.info["energy"] = float(record[ENERGY_COLUMN]) * Hartree
                    atoms.info["qm9_index"] = int(record["Index"])
                    molecules.append(atoms)
                row += 1
                if rows is not None and len(molecules) == len(rows):
                    return molecules
    return molecules


def _count_rows() -> int:
    total = 0
    for path in qm9_csv_files():
        with open(path, newline="") as handle:
            total += sum(1 for _ in csv.DictReader(handle))
    return total


def write_qm9_subset(out="data/qm9", train: int = 2000, valid: int = 200, test: int = 2000, seed: int = 0,
                     log=print) -> Path:
    """Write ``out/{train,valid,test}.xyz.gz`` (disjoint, seeded) and ``out/provenance.json``."""
    started = time.perf_counter()
    csv.field_size_limit(1 << 24)
    total = _count_rows()
    indices = split_indices(total, {"train": train, "valid": valid, "test": test}, seed=seed)
    wanted = sorted(int(i) for index in indices.values() for i in index)
    molecules = dict(zip(wanted, read_qm9(set(wanted))))
    by_row = [molecules[i] if i in molecules else None for i in range(total)]
    out = Path(out)
    write_split_files(out, by_row, indices)
    energies = np.array([molecules[i].info["energy"] for i in wanted])
    atoms_per_molecule = np.array([len(molecules[i]) for i in wanted])
    provenance = {
        "dataset": "qm9",
        "kind": "QM9 subset",
        "source": "the qm9pack package's CSV files (" + ", ".join(_PARTS) + ")",
        "method": "B3LYP/6-31G(2df,p) (QM9)",
        "target": f"U0, internal energy at 0 K: column {ENERGY_COLUMN} (hartree) times ase.units.Hartree, in eV",
        "forces": None,
        "molecules_available": total,
        "settings": {"train": train, "valid": valid, "test": test, "seed": seed},
        "split": {name: len(index) for name, index in indices.items()},
        "split_rule": f"numpy default_rng({seed}).permutation of the {total} rows (files in order part1, part2, "
                      "part3), cut in order train, valid, test; each split kept in row order",
        "atoms_per_molecule": {"min": int(atoms_per_molecule.min()), "max": int(atoms_per_molecule.max()),
                               "mean": float(atoms_per_molecule.mean())},
        "energy_eV": {"mean": float(energies.mean()), "std": float(energies.std())},
        "units": {"energy": "eV", "positions": "Angstrom"},
        "versions": package_versions("qm9pack", "ase", "numpy"),
        "wall_time_s": round(time.perf_counter() - started, 1),
    }
    (out / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
    log(f"qm9: wrote {', '.join(f'{k} {len(v)}' for k, v in indices.items())} of {total} molecules to {out}")
    return out
