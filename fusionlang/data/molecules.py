"""Starting geometries for the MD data: from ase's G2 set (ethanol) or from z-matrices written here.

ase ships no aspirin or malonaldehyde, and the data must not depend on a network
look-up, so their geometries are built from internal coordinates (textbook bond
lengths, angles and dihedrals; ``ZMATRICES``) and then relaxed with GFN2-xTB
(``relax``) before the dynamics starts.  ``bonds`` gives the covalent bond graph
that the tests compare before and after relaxation.
"""
from __future__ import annotations

import numpy as np

__all__ = ["ZMATRICES", "MOLECULES", "from_zmatrix", "build_molecule", "bonds", "relax"]

# Rows: (element, bonded-to, length A, angle-to, angle deg, dihedral-to, dihedral deg); atoms are 1-based.
ZMATRICES = {
    # acetylsalicylic acid C9H8O4: benzene ring C1..C6, carboxylic acid on C1 (syn O-H), acetoxy on C2 with the
    # ester plane turned perpendicular to the ring as in the crystal structure
    "aspirin": [
        ("C",),
        ("C", 1, 1.40),
        ("C", 2, 1.39, 1, 120.0),
        ("C", 3, 1.39, 2, 120.0, 1, 0.0),
        ("C", 4, 1.39, 3, 120.0, 2, 0.0),
        ("C", 5, 1.39, 4, 120.0, 3, 0.0),
        ("C", 1, 1.48, 2, 120.0, 3, 180.0),     # 7 carboxyl C
        ("O", 7, 1.22, 1, 123.0, 2, 180.0),     # 8 carboxyl C=O
        ("O", 2, 1.40, 1, 120.0, 6, 180.0),     # 9 ester O on C2
        ("C", 9, 1.36, 2, 118.0, 1, 90.0),      # 10 ester C
        ("O", 10, 1.20, 9, 123.0, 2, 0.0),      # 11 ester C=O
        ("C", 10, 1.50, 9, 110.0, 2, 180.0),    # 12 methyl C
        ("H", 12, 1.09, 10, 109.5, 9, 180.0),
        ("H", 12, 1.09, 10, 109.5, 9, 60.0),
        ("H", 12, 1.09, 10, 109.5, 9, -60.0),
        ("O", 7, 1.35, 1, 113.0, 2, 0.0),       # 16 carboxyl O-H oxygen
        ("H", 16, 0.97, 7, 106.0, 1, 180.0),
        ("H", 3, 1.08, 2, 120.0, 1, 180.0),
        ("H", 4, 1.08, 3, 120.0, 2, 180.0),
        ("H", 5, 1.08, 4, 120.0, 3, 180.0),
        ("H", 6, 1.08, 5, 120.0, 4, 180.0),
    ],
    # malonaldehyde, the enol form (Z)-3-hydroxyprop-2-enal C3H4O2 with its intramolecular O-H...O bond
    "malonaldehyde": [
        ("C",),
        ("C", 1, 1.43),
        ("C", 2, 1.37, 1, 120.0),
        ("O", 1, 1.24, 2, 123.0, 3, 0.0),
        ("O", 3, 1.33, 2, 123.0, 1, 0.0),
        ("H", 5, 0.99, 3, 105.0, 2, 0.0),
        ("H", 1, 1.10, 2, 117.0, 3, 180.0),
        ("H", 2, 1.08, 1, 118.0, 3, 180.0),
        ("H", 3, 1.08, 2, 122.0, 1, 180.0),
    ],
}

MOLECULES = ("ethanol", "aspirin", "malonaldehyde")


def from_zmatrix(rows) -> "ase.Atoms":  # noqa: F821
    """Cartesian coordinates of a z-matrix: atom 1 at the origin, atom 2 on +x, atom 3 in the xy plane."""
    from ase import Atoms
    positions = np.zeros((len(rows), 3))
    for index, row in enumerate(rows):
        if index == 0:
            continue
        bonded, length = row[1] - 1, row[2]
        if index == 1:
            positions[index] = positions[bonded] + [length, 0.0, 0.0]
            continue
        angle_atom, angle = row[3] - 1, np.radians(row[4])
        if index == 2:
            # in the xy plane, at ``angle`` from the bond to ``angle_atom``
            axis = positions[angle_atom] - positions[bonded]
            axis /= np.linalg.norm(axis)
            normal = np.array([-axis[1], axis[0], 0.0])
            positions[index] = positions[bonded] + length * (np.cos(angle) * axis + np.sin(angle) * normal)
            continue
        dihedral_atom, dihedral = row[5] - 1, np.radians(row[6])
        # the natural extension reference frame: b along angle_atom -> bonded, n normal to the plane of the three
        b = positions[bonded] - positions[angle_atom]
        b /= np.linalg.norm(b)
        n = np.cross(positions[angle_atom] - positions[dihedral_atom], b)
        n /= np.linalg.norm(n)
        m = np.cross(n, b)
        local = np.array([-np.cos(angle), np.sin(angle) * np.cos(dihedral), np.sin(angle) * np.sin(dihedral)])
        positions[index] = positions[bonded] + length * (local[0] * b + local[1] * m + local[2] * n)
    return Atoms([row[0] for row in rows], positions=positions)


def bonds(atoms) -> set[tuple[int, int]]:
    """Covalent bonds (pairs i < j closer than 1.2 times the sum of their covalent radii): the connectivity."""
    from ase.data import covalent_radii
    radii = covalent_radii[atoms.numbers]
    distances = np.linalg.norm(atoms.positions[:, None] - atoms.positions[None], axis=-1)
    first, second = np.nonzero(np.triu(distances < 1.2 * (radii[:, None] + radii[None, :]), k=1))
    return {(int(i), int(j)) for i, j in zip(first, second)}


def build_molecule(name: str) -> "ase.Atoms":  # noqa: F821
    """The unrelaxed starting geometry of ``name``, centred at the origin.

    ``name`` is one of ``MOLECULES`` or a name of ase's G2 set (``H2O``, ``CH4``, ...: small test systems).
    """
    from ase.build import molecule
    from ase.collections import g2
    if name == "ethanol":
        atoms = molecule("CH3CH2OH")
    elif name in ZMATRICES:
        atoms = from_zmatrix(ZMATRICES[name])
    elif name in g2.names:
        atoms = molecule(name)
    else:
        raise ValueError(f"unknown molecule {name!r}; known: {', '.join(MOLECULES)} or a name of ase's G2 set")
    atoms.center(about=(0.0, 0.0, 0.0))
    return atoms


def relax(atoms, calculator, fmax: float = 0.01, steps: int = 500):
    """``atoms`` relaxed in place with ``calculator`` (BFGS to ``fmax`` eV/A); returns the number of steps."""
    from ase.optimize import BFGS
    atoms.calc = calculator
    optimizer = BFGS(atoms, logfile=None)
    optimizer.run(fmax=fmax, steps=steps)
    return optimizer.nsteps
