"""fusionlang.nn graphs (ase neighbour lists, batching, per-graph sums) and species embeddings."""
import itertools

import numpy as np
import pytest
import torch
from ase.build import bulk, molecule
from e3nn import o3

import fusionlang.nn as fnn


@pytest.fixture(autouse=True, scope="module")
def float64_one_thread():
    dtype, threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    yield
    torch.set_default_dtype(dtype)
    torch.set_num_threads(threads)


def brute_force_pairs(positions, cutoff, cell=None, images=2):
    """Every (i, j, shift) with |p_j + shift.cell - p_i| < cutoff, by enumeration."""
    pos = np.asarray(positions)
    shifts = [(0, 0, 0)] if cell is None else list(itertools.product(range(-images, images + 1), repeat=3))
    lattice = np.zeros((3, 3)) if cell is None else np.asarray(cell)
    out = set()
    for i, j in itertools.product(range(len(pos)), repeat=2):
        for s in shifts:
            if i == j and s == (0, 0, 0):
                continue
            if np.linalg.norm(pos[j] + np.asarray(s) @ lattice - pos[i]) < cutoff:
                out.add((i, j, s))
    return out


def as_set(edge_index, unit_shifts):
    return {(int(i), int(j), tuple(int(v) for v in s))
            for (i, j), s in zip(edge_index.t().tolist(), unit_shifts.round().long().tolist())}


def test_molecule_neighbour_list_and_radius_graph():
    mol = molecule("CH3CH2OH")
    edge_index, shifts = fnn.neighbour_list(mol.positions, 1.6)
    assert as_set(edge_index, shifts) == brute_force_pairs(mol.positions, 1.6)
    torch_edges = fnn.radius_graph(torch.tensor(mol.positions), 1.6)
    assert {tuple(e) for e in torch_edges.t().tolist()} == {tuple(e) for e in edge_index.t().tolist()}


def test_periodic_neighbour_list_includes_images():
    crystal = bulk("NaCl", "rocksalt", a=5.64) * (1, 1, 2)
    crystal.rattle(0.05, seed=1)
    edge_index, shifts = fnn.neighbour_list(crystal.positions, 4.1, crystal.cell.array, crystal.pbc)
    assert as_set(edge_index, shifts) == brute_force_pairs(crystal.positions, 4.1, crystal.cell.array)
    graph = fnn.graph_from_structure(crystal.positions, [0, 1] * 2, 4.1, cell=crystal.cell.array)
    assert graph.edge_vectors().norm(dim=1).max() < 4.1
    assert np.any(shifts.abs().sum(1).numpy() > 0)       # images of the receiver were needed


def test_batching_offsets_and_per_graph_sums():
    water = fnn.graph_from_structure(molecule("H2O").positions, [1, 0, 0], 1.2)
    methane = fnn.graph_from_structure(molecule("CH4").positions, [2, 0, 0, 0, 0], 1.2)
    crystal = bulk("Si", "diamond", a=5.43)
    silicon = fnn.graph_from_structure(crystal.positions, [3, 3], 2.5, cell=crystal.cell.array)
    graphs = [water, methane, silicon]
    batch = fnn.batch_graphs(graphs)
    assert batch.num_graphs == 3 and batch.batch.tolist() == [0] * 3 + [1] * 5 + [2] * 2
    assert batch.num_edges == sum(g.num_edges for g in graphs)
    # every edge stays inside its graph and keeps its vector
    assert torch.equal(batch.batch[batch.edge_index[0]], batch.batch[batch.edge_index[1]])
    assert torch.allclose(batch.edge_vectors(), torch.cat([g.edge_vectors() for g in graphs]))
    energies = torch.arange(10.0)
    assert fnn.per_graph_sum(energies, batch.batch, 3).tolist() == [3.0, 25.0, 17.0]
    vectors = torch.randn(10, 3)
    sums = fnn.per_graph_sum(vectors, batch.batch, 3)
    assert torch.allclose(sums[1], vectors[3:8].sum(0))


def test_edge_vectors_are_differentiable_in_positions_and_cell():
    crystal = bulk("Cu", "fcc", a=3.6)
    g = fnn.graph_from_structure(crystal.positions, [0], 3.0, cell=crystal.cell.array)
    positions = g.positions.clone().requires_grad_(True)
    cell = g.cell.clone().requires_grad_(True)
    energy = fnn.edge_vectors(positions, g.edge_index, g.unit_shifts, cell, g.batch).norm(dim=1).pow(2).sum()
    forces, stress = torch.autograd.grad(energy, (positions, cell))
    assert torch.allclose(forces, torch.zeros_like(forces), atol=1e-10)   # one atom: translation invariant
    assert stress.abs().sum() > 0


def test_graph_to_dtype():
    g = fnn.graph_from_structure(molecule("H2O").positions, [1, 0, 0], 1.2).to(torch.float32)
    assert g.positions.dtype == torch.float32 and g.edge_index.dtype == torch.int64


def test_species_embedding_is_e3nn_linear_on_one_hot():
    embed = fnn.SpeciesEmbedding(4, "8x0e + 2x1o")
    theirs = o3.Linear("4x0e", "8x0e + 2x1o")
    with torch.no_grad():
        theirs.weight.copy_(embed.linear.weight)
    species = torch.tensor([0, 3, 1, 1, 2])
    want = theirs(torch.nn.functional.one_hot(species, 4).double())
    assert torch.allclose(embed(species), want, atol=1e-14)
    assert torch.allclose(embed(torch.nn.functional.one_hot(species, 4).double()), want, atol=1e-14)
    assert torch.equal(embed(species)[:, 8:], torch.zeros(5, 6))


def test_species_weights_pick_one_row_per_species():
    weights = fnn.SpeciesWeights(3, 20)
    species = torch.tensor([[2, 0], [1, 2]])
    out = weights(species)
    assert out.shape == (2, 2, 20)
    assert torch.equal(out[0, 0], weights.weight[2]) and torch.equal(out[1, 0], weights.weight[1])
    one_hot = torch.nn.functional.one_hot(species.reshape(-1), 3).double()
    assert torch.allclose(weights(one_hot), out.reshape(4, 20))
    out.sum().backward()
    assert weights.weight.grad[2].tolist() == [2.0] * 20
