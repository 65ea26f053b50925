"""fusionlang.models: symmetries, forces, dtypes, batching, sizes, checkpoints and the ASE calculator."""
import math

import numpy as np
import pytest
import torch
from ase.build import molecule

from fusionlang import compile_file
from fusionlang import nn as fnn
from fusionlang.data.batch import collate
from fusionlang.models import MODEL_NAMES, Calculator, build_model, count_parameters
from fusionlang.models.compiled import DIAGRAM_DIR, diagram_module, diagram_source
from fusionlang.symmetry.wigner import random_rotation, rotation_matrix

# Tiny sizes: the symmetry and force tests do not need the defaults, and stay fast.
TINY = {
    "mace": dict(channels=4, lmax=2, radial_hidden=(8, 8), readout_hidden=4),
    "mace-fusion": dict(channels=4, lmax=2, radial_hidden=(8, 8), readout_hidden=4),
    "cormorant": dict(channels=3, lmax=2, readout_hidden=8),
    "cormorant-fusion": dict(channels=3, lmax=2, readout_hidden=8),
}
E0 = {1: -13.6, 6: -1029.0, 8: -2041.0}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # tiny operations on two intra-op threads mostly wait for each other on a shared machine
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_model(name, dtype=torch.float64, **extra):
    torch.manual_seed(0)
    # scale > 1 so that the untrained energies vary by about an eV over the tests' displacements
    model = build_model(name, species=[1, 6, 8], cutoff=4.0, atomic_energies=E0, avg_num_neighbors=6.0,
                        **{"scale": 2.0, **TINY[name], **extra})
    return model.to(dtype)


def ethanol(seed=0):
    atoms = molecule("CH3CH2OH")
    atoms.positions += np.random.default_rng(seed).normal(scale=0.1, size=atoms.positions.shape)
    return atoms


def graph_of(atoms_list, dtype, cutoff=4.0):
    return fnn.batch_graphs([fnn.graph_from_structure(torch.tensor(a.positions, dtype=dtype), a.numbers, cutoff)
                             for a in atoms_list])


def energy_and_forces(model, graph):
    positions = graph.positions.detach().clone().requires_grad_(True)
    graph = fnn.Graph(positions, graph.species, graph.edge_index, graph.unit_shifts, graph.cell, graph.batch,
                      graph.num_graphs)
    energy = model(graph)
    forces = -torch.autograd.grad(energy.sum(), positions, create_graph=True)[0]
    return energy, forces


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_energies_invariant_forces_equivariant(name, dtype):
    model = tiny_model(name, dtype)
    atoms = ethanol()
    energy, forces = energy_and_forces(model, graph_of([atoms], dtype))
    assert energy.dtype == dtype and forces.dtype == dtype
    rotation = torch.tensor(rotation_matrix(*random_rotation(3)), dtype=torch.float64)
    improper = -rotation                                    # a rotation with an inversion: O(3), not only SO(3)
    moved = atoms.copy()
    moved.positions = atoms.positions @ improper.numpy().T + np.array([1.5, -2.0, 0.7])
    permutation = np.random.default_rng(1).permutation(len(atoms))
    moved = moved[permutation]
    energy2, forces2 = energy_and_forces(model, graph_of([moved], dtype))
    tol = 1e-10 if dtype == torch.float64 else 2e-4
    scale = forces.abs().max().item()
    assert scale > 1e-3, "the forces are too small for the test to mean anything"
    assert abs(energy2.item() - energy.item()) <= tol * (1 + abs(energy.item()))
    expected = (forces.double() @ improper.T)[torch.as_tensor(permutation)]
    assert (forces2.double() - expected).abs().max().item() <= tol * 10 * scale


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forces_are_minus_the_numerical_gradient(name):
    model = tiny_model(name)
    atoms = ethanol(2)
    graph = graph_of([atoms], torch.float64)
    _, forces = energy_and_forces(model, graph)
    step = 1e-5
    rng = np.random.default_rng(3)
    for atom, axis in zip(rng.integers(0, len(atoms), 6), rng.integers(0, 3, 6)):
        shifted = []
        for sign in (1, -1):
            displaced = atoms.copy()
            displaced.positions[atom, axis] += sign * step
            shifted.append(model(graph_of([displaced], torch.float64)).item())
        numerical = -(shifted[0] - shifted[1]) / (2 * step)
        assert abs(numerical - forces[atom, axis].item()) < 1e-6 * (1 + abs(numerical))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_double_backward_reaches_every_parameter_and_batches_agree(name):
    model = tiny_model(name)
    structures = [ethanol(4), molecule("H2O"), ethanol(5)]
    energy, forces = energy_and_forces(model, collate(structures, 4.0, torch.float64).graph)  # the trainer's batches
    forces.pow(2).sum().backward()                          # training on forces: a double backward
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    assert sum(float(p.grad.abs().sum()) for p in model.parameters()) > 0
    for k, atoms in enumerate(structures):
        alone, _ = energy_and_forces(model, graph_of([atoms], torch.float64))
        assert abs(alone.item() - energy[k].item()) < 1e-10 * (1 + abs(alone.item()))
    # E0: a lone H atom (no edges) has its reference energy plus shift and the learned term
    lone = model(graph_of([molecule("H")], torch.float64))
    assert math.isfinite(lone.item())


def test_fusion_variants_have_at_most_the_baselines_parameters_at_default_sizes():
    counts = {name: count_parameters(build_model(name)) for name in MODEL_NAMES}
    assert counts["mace-fusion"] <= counts["mace"]
    assert counts["cormorant-fusion"] <= counts["cormorant"]
    for name, count in counts.items():                      # the sizes the science driver trains on a CPU
        assert 10_000 <= count <= 50_000, (name, count)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_config_rebuilds_the_model_and_checkpoints_round_trip_through_the_calculator(name, tmp_path):
    model = tiny_model(name)
    rebuilt = build_model(model.model_name, **model.config).double()
    rebuilt.load_state_dict(model.state_dict())
    graph = graph_of([ethanol(6)], torch.float64)
    assert torch.allclose(rebuilt(graph), model(graph), atol=0, rtol=1e-14)
    path = tmp_path / "model.pt"
    torch.save({"model_name": model.model_name, "model_config": model.config, "model_state": model.state_dict(),
                "optimizer_state": {}, "epoch": 3}, path)
    atoms = ethanol(6)
    atoms.calc = Calculator(str(path))
    expected, forces = energy_and_forces(model, graph)
    assert atoms.get_potential_energy() == pytest.approx(expected.item(), rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(atoms.get_forces(), forces.detach().numpy(), rtol=1e-9, atol=1e-12)


def test_unknown_names_elements_and_sizes_are_errors():
    with pytest.raises(ValueError, match="unknown model"):
        build_model("schnet")
    with pytest.raises(ValueError, match="unknown size keywords"):
        build_model("mace", channel=8)
    model = tiny_model("cormorant")
    with pytest.raises(ValueError, match=r"atomic numbers \[7\]"):
        model(graph_of([molecule("NH3")], torch.float64))


def test_velocity_verlet_conserves_energy_with_an_untrained_model():
    from ase import units
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.md.verlet import VelocityVerlet

    atoms = molecule("CH3CH2OH")
    atoms.calc = Calculator(tiny_model("mace", scale=0.5))
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    potential, total = [], []

    def record():
        potential.append(atoms.get_potential_energy())
        total.append(atoms.get_potential_energy() + atoms.get_kinetic_energy())

    dynamics = VelocityVerlet(atoms, timestep=0.5 * units.fs)
    dynamics.attach(record, interval=1)
    dynamics.run(20)
    assert len(total) == 21
    assert np.ptp(potential) > 1e-3                        # the forces move the atoms measurably
    assert np.ptp(total) < 0.05 * np.ptp(potential)        # and the total energy stays put


def test_shipped_diagrams_compile_as_written_and_at_other_sizes():
    files = sorted(DIAGRAM_DIR.glob("*.fus"))
    assert {f.stem for f in files} >= {"mace_interaction", "mace_fusion_interaction", "mace_product_basis",
                                       "cormorant_layer", "cormorant_fusion_layer"}
    for path in files:
        assert compile_file(path, backend="torch").modules
    # the `let` lines set the sizes; the first MACE layer reads scalars only
    first = diagram_module("mace_interaction", "MaceInteraction", H="4x0e", Y="sh(2)", A="4x(0e + 1o + 2e)")
    assert first.irreps_in == ("4x0e", "1x0e + 1x1o + 1x2e") and first.weight_numel == 12
    with pytest.raises(ValueError, match="no `let` for"):
        diagram_source("mace_interaction", Q="4x0e")
