"""fusionlang.data's files: extended XYZ round trip, seeded disjoint splits, z-matrix geometries, QM9, the saved data."""
import gzip
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ase")
from ase.build import molecule  # noqa: E402

from fusionlang.data import load_split, read_structures, write_structures  # noqa: E402
from fusionlang.data.molecules import MOLECULES, ZMATRICES, bonds, build_molecule, from_zmatrix  # noqa: E402
from fusionlang.data.splits import split_indices, write_gzip_xyz  # noqa: E402

REPO_DATA = Path(__file__).resolve().parents[1] / "data"


def _labelled_molecules():
    rng = np.random.default_rng(1)
    structures = []
    for name, energy in [("CH3CH2OH", -310.123456789012), ("H2O", -137.5)]:
        atoms = molecule(name)
        atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
        atoms.info["energy"] = energy
        atoms.arrays["forces"] = rng.normal(size=(len(atoms), 3))
        structures.append(atoms)
    return structures


@pytest.mark.parametrize("name", ["plain.xyz", "packed.xyz.gz"])
def test_extended_xyz_round_trip(tmp_path, name):
    structures = _labelled_molecules()
    path = tmp_path / name
    if name.endswith(".gz"):
        write_gzip_xyz(path, structures)
    else:
        write_structures(path, structures[:1])
        write_structures(path, structures[1:], append=True)
    loaded = read_structures(path)
    assert len(loaded) == len(structures)
    for original, read in zip(structures, loaded):
        assert read.get_chemical_symbols() == original.get_chemical_symbols()
        assert read.info["energy"] == pytest.approx(original.info["energy"], abs=1e-12)
        np.testing.assert_allclose(read.positions, original.positions, atol=1e-8)
        np.testing.assert_allclose(read.arrays["forces"], original.arrays["forces"], atol=1e-8)
        assert read.calc is None


def test_gzip_files_are_byte_reproducible(tmp_path):
    write_gzip_xyz(tmp_path / "a.xyz.gz", _labelled_molecules())
    write_gzip_xyz(tmp_path / "b.xyz.gz", _labelled_molecules())
    assert (tmp_path / "a.xyz.gz").read_bytes() == (tmp_path / "b.xyz.gz").read_bytes()
    assert gzip.decompress((tmp_path / "a.xyz.gz").read_bytes()).startswith(b"9\n")


def test_splits_are_seeded_disjoint_and_sized():
    sizes = {"train": 50, "valid": 5, "test": 40}
    first, again, other = (split_indices(120, sizes, seed) for seed in (3, 3, 4))
    for name in sizes:
        assert len(first[name]) == sizes[name]
        assert np.array_equal(first[name], again[name])
        assert np.all(np.diff(first[name]) > 0)
    assert not np.array_equal(first["train"], other["train"])
    union = np.concatenate(list(first.values()))
    assert len(np.unique(union)) == len(union) and union.max() < 120
    with pytest.raises(ValueError, match="need 95 structures but there are 90"):
        split_indices(90, sizes, 0)


def test_zmatrix_reproduces_its_internal_coordinates():
    for name, rows in ZMATRICES.items():
        atoms = from_zmatrix(rows)
        for index, row in enumerate(rows[1:], start=1):
            assert atoms.get_distance(index, row[1] - 1) == pytest.approx(row[2], abs=1e-9)
            if len(row) > 3:
                assert atoms.get_angle(index, row[1] - 1, row[3] - 1) == pytest.approx(row[4], abs=1e-7)
            if len(row) > 5:
                dihedral = atoms.get_dihedral(index, row[1] - 1, row[3] - 1, row[5] - 1)
                assert (dihedral - row[6] + 180.0) % 360.0 - 180.0 == pytest.approx(0.0, abs=1e-6), name


def test_built_molecules_have_the_intended_formula_and_bonds():
    formulas = {"ethanol": "C2H6O", "aspirin": "C9H8O4", "malonaldehyde": "C3H4O2"}
    bond_counts = {"ethanol": 8, "aspirin": 21, "malonaldehyde": 8}  # trees, plus the benzene ring of aspirin
    for name in MOLECULES:
        atoms = build_molecule(name)
        assert atoms.get_chemical_formula(mode="hill") == formulas[name]
        assert len(bonds(atoms)) == bond_counts[name]
        distances = atoms.get_all_distances()[np.triu_indices(len(atoms), 1)]
        assert distances.min() > 0.9          # nothing on top of anything else
    with pytest.raises(ValueError, match="unknown molecule"):
        build_molecule("unobtainium")


def test_qm9_rows_from_the_package():
    from fusionlang.data.qm9 import read_qm9
    try:
        methane, ammonia = read_qm9({0, 1})
    except RuntimeError as exc:
        pytest.skip(str(exc))
    assert methane.get_chemical_formula() == "CH4" and ammonia.get_chemical_formula() == "H3N"
    assert methane.info["qm9_index"] == 1
    # QM9's U0 of methane is -40.47893 hartree
    assert methane.info["energy"] == pytest.approx(-40.47893 * 27.211386, rel=1e-6)
    assert np.linalg.norm(methane.positions[1] - methane.positions[0]) == pytest.approx(1.09, abs=0.01)


def _saved_datasets():
    found = []
    for provenance in sorted(REPO_DATA.glob("**/provenance.json")):
        if "work" not in provenance.relative_to(REPO_DATA).parts:
            found.append(provenance)
    return found


def _frames(path):
    """The raw text of each frame of an extended XYZ file (fast: no parsing beyond the atom counts)."""
    lines = (gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()).decode().splitlines()
    frames, at = [], 0
    while at < len(lines):
        count = int(lines[at])
        frames.append("\n".join(lines[at:at + count + 2]))
        at += count + 2
    return frames


@pytest.mark.parametrize("provenance", _saved_datasets(), ids=lambda p: p.parent.name)
def test_saved_dataset_matches_its_provenance(provenance):
    record = json.loads(provenance.read_text())
    dataset = record["dataset"]
    frames = {name: _frames(provenance.parent / f"{name}.xyz.gz") for name in ("train", "valid", "test")}
    assert {name: len(f) for name, f in frames.items()} == record["split"]
    # disjoint: no configuration appears in two splits (nor twice in one)
    atom_lines = ["\n".join(frame.splitlines()[2:]) for split in frames.values() for frame in split]
    assert len(set(atom_lines)) == len(atom_lines)
    root = provenance.parent.parent if dataset == "qm9" else provenance.parent.parent.parent
    valid = load_split(dataset, "valid", root=root)
    assert len(valid) == record["split"]["valid"]
    assert all(np.isfinite(a.info["energy"]) for a in valid)
    if dataset != "qm9":
        assert all(a.arrays["forces"].shape == (len(a), 3) for a in valid)
        assert all(np.allclose(a.arrays["forces"].sum(axis=0), 0.0, atol=1e-4) for a in valid)
        assert abs(record["sampled_temperature_K"]["mean"] - record["settings"]["temperature_K"]) < 50
