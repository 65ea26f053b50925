"""fusionlang.data's batch interface: edges, batching offsets, labels, dtype moves, dataset statistics."""
import itertools

import numpy as np
import pytest
import torch

pytest.importorskip("ase")
from ase.build import bulk, molecule  # noqa: E402

from fusionlang.data import (Batch, atomic_reference_energies, average_num_neighbors, collate,  # noqa: E402
                             load_split, split_path)


def _labelled(atoms, energy, seed):
    atoms = atoms.copy()
    atoms.info["energy"] = energy
    atoms.arrays["forces"] = np.random.default_rng(seed).normal(size=(len(atoms), 3))
    return atoms


def _structures():
    rng = np.random.default_rng(0)
    ethanol, water, methane = molecule("CH3CH2OH"), molecule("H2O"), molecule("CH4")
    for atoms in (ethanol, water, methane):
        atoms.positions += rng.normal(scale=0.1, size=atoms.positions.shape)
    return [_labelled(a, e, k) for k, (a, e) in enumerate([(ethanol, -10.0), (water, -3.0), (methane, -5.0)])]


def _brute_force_pairs(positions, cutoff):
    return {(i, j) for i, j in itertools.permutations(range(len(positions)), 2)
            if np.linalg.norm(positions[j] - positions[i]) < cutoff}


@pytest.mark.parametrize("cutoff", [1.2, 2.0, 3.5])
def test_edges_are_exactly_the_pairs_within_the_cutoff(cutoff):
    structures = _structures()
    batch = collate(structures, cutoff)
    offsets = np.cumsum([0] + [len(a) for a in structures])
    expected = set()
    for atoms, offset in zip(structures, offsets):
        expected |= {(i + offset, j + offset) for i, j in _brute_force_pairs(atoms.positions, cutoff)}
    edges = {tuple(e) for e in batch.graph.edge_index.T.tolist()}
    assert edges == expected
    assert batch.graph.num_edges == len(expected)          # no duplicates
    lengths = batch.graph.edge_vectors().norm(dim=1)
    assert torch.all(lengths < cutoff) and torch.all(lengths > 0)


def test_batching_offsets_species_and_graph_index():
    structures = _structures()
    batch = collate(structures, 2.0)
    sizes = [len(a) for a in structures]
    assert batch.graph.num_graphs == batch.num_graphs == 3
    assert batch.graph.batch.tolist() == sum(([g] * n for g, n in enumerate(sizes)), [])
    assert batch.graph.species.dtype == torch.int64
    assert batch.graph.species.tolist() == np.concatenate([a.numbers for a in structures]).tolist()
    # every edge stays inside its own structure
    graph_of = batch.graph.batch
    assert torch.equal(graph_of[batch.graph.edge_index[0]], graph_of[batch.graph.edge_index[1]])
    assert torch.allclose(batch.graph.positions, torch.as_tensor(np.concatenate([a.positions for a in structures])))


def test_labels_shapes_and_values():
    structures = _structures()
    batch = collate(structures, 3.0)
    assert batch.energy.shape == (3,) and batch.energy.tolist() == [-10.0, -3.0, -5.0]
    assert batch.forces.shape == (sum(len(a) for a in structures), 3)
    assert torch.allclose(batch.forces[9:12], torch.as_tensor(structures[1].arrays["forces"]))


def test_missing_labels_are_none():
    structures = _structures()
    del structures[1].arrays["forces"]
    del structures[2].info["energy"]
    batch = collate(structures, 3.0)
    assert batch.energy is None and batch.forces is None


def test_to_changes_float_dtype_and_keeps_integers():
    batch = collate(_structures(), 3.0)
    assert batch.graph.positions.dtype == torch.float64
    single = batch.to(torch.float32)
    assert isinstance(single, Batch)
    assert single.graph.positions.dtype == single.energy.dtype == single.forces.dtype == torch.float32
    assert single.graph.species.dtype == single.graph.edge_index.dtype == single.graph.batch.dtype == torch.int64
    assert batch.energy.dtype == torch.float64                 # the original is untouched
    assert collate(_structures(), 3.0, dtype=torch.float32).graph.positions.dtype == torch.float32


def test_periodic_structure_gets_image_edges():
    silicon = bulk("Si", "diamond", a=5.43)
    batch = collate([silicon], 2.5)
    assert batch.graph.num_edges == 8                           # 4 nearest neighbours of each of 2 atoms
    assert torch.allclose(batch.graph.edge_vectors().norm(dim=1), torch.full((8,), 5.43 * 3 ** 0.5 / 4,
                                                                               dtype=torch.float64))


def test_atomic_reference_energies_recover_per_element_energies():
    truth = {1: -0.5, 6: -37.8, 8: -75.0}
    structures = []
    for name in ["H2O", "CH4", "CH3CH2OH", "CO2", "H2", "CH3OH"]:
        atoms = molecule(name)
        atoms.info["energy"] = sum(truth[int(z)] for z in atoms.numbers)
        structures.append(atoms)
    fitted = atomic_reference_energies(structures)
    assert set(fitted) == set(truth)
    for z in truth:
        assert fitted[z] == pytest.approx(truth[z], abs=1e-9)


def test_atomic_reference_energies_of_one_composition_reproduce_the_mean():
    structures = [_labelled(molecule("CH3CH2OH"), e, 0) for e in (-10.0, -12.0, -11.0)]
    fitted = atomic_reference_energies(structures)
    assert sum(fitted[int(z)] for z in structures[0].numbers) == pytest.approx(-11.0)


def test_average_num_neighbors_matches_the_edge_count():
    structures = _structures()
    for cutoff in (1.2, 3.0):
        pairs = sum(len(_brute_force_pairs(a.positions, cutoff)) for a in structures)
        assert average_num_neighbors(structures, cutoff) == pytest.approx(pairs / sum(len(a) for a in structures))


def test_load_split_names_the_generator_when_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m fusionlang.data md --molecule nonesuch"):
        load_split("nonesuch", "train", root=tmp_path)
    with pytest.raises(ValueError, match="split is one of"):
        split_path("ethanol", "training", root=tmp_path)


def test_load_split_reads_labels(tmp_path):
    from fusionlang.data import write_structures
    structures = _structures()
    write_structures(tmp_path / "md" / "toy" / "valid.xyz", structures)
    loaded = load_split("toy", "valid", root=tmp_path)
    assert [a.info["energy"] for a in loaded] == [-10.0, -3.0, -5.0]
    assert all(a.calc is None for a in loaded)
    for original, read in zip(structures, loaded):
        assert np.allclose(read.arrays["forces"], original.arrays["forces"], atol=1e-8)
        assert np.allclose(read.positions, original.positions, atol=1e-8)
        assert list(read.numbers) == list(original.numbers)


def test_empty_input_is_an_error():
    with pytest.raises(ValueError):
        collate([], 3.0)
    with pytest.raises(ValueError):
        average_num_neighbors([], 3.0)
