"""The worked example of docs/nn.md runs as written, and the model it builds is what it claims:
energies invariant and forces equivariant under rotations, inversion and translations; it compiles
(fullgraph) and exports."""
import re
from pathlib import Path

import pytest
import torch

from fusionlang.symmetry.wigner import random_rotation, rotation_matrix

DOC = Path(__file__).resolve().parents[1] / "docs" / "nn.md"


@pytest.fixture(scope="module")
def example():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    text = DOC.read_text()
    block = re.search(r"<!-- nn-example:begin -->\s*```python\n(.*?)```\s*<!-- nn-example:end -->", text, re.S)
    assert block, "docs/nn.md lost its example markers"
    namespace = {"__name__": "nn_example"}
    exec(compile(block.group(1), str(DOC), "exec"), namespace)
    yield namespace
    torch.set_num_threads(threads)


def run(ns, model, graph, positions, cell):
    positions = positions.clone().requires_grad_(True)
    energy = model(positions, graph.species, graph.edge_index, graph.unit_shifts, cell, graph.batch,
                   graph.num_graphs)
    forces = -torch.autograd.grad(energy.sum(), positions)[0]
    return energy.detach(), forces


def test_example_runs_and_trains_on_forces(example):
    assert example["energy"].shape == (3,) and example["forces"].shape == (10, 3)
    grads = [p.grad for p in example["model"].parameters()]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0


@pytest.mark.parametrize("inversion", [False, True])
def test_energy_invariant_forces_equivariant(example, inversion):
    torch.manual_seed(0)
    model = example["TinyModel"](num_species=4).double()
    graph = example["graph"].to(torch.float64)
    R = torch.from_numpy(rotation_matrix(*random_rotation(3))) * (-1 if inversion else 1)
    shift = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)
    energy, forces = run(example, model, graph, graph.positions, graph.cell)
    # rotate every structure (and the crystal's cell vectors), translate the molecules
    moved = graph.positions @ R.T + shift
    energy2, forces2 = run(example, model, graph, moved, graph.cell @ R.T)
    assert torch.allclose(energy2, energy, atol=1e-10)
    assert torch.allclose(forces2, forces @ R.T, atol=1e-10)
    assert forces.abs().sum() > 0


def test_example_model_compiles_and_exports(example):
    model, graph = example["model"], example["graph"]
    args = (graph.positions, graph.species, graph.edge_index, graph.unit_shifts, graph.cell, graph.batch,
            graph.num_graphs)
    with torch.no_grad():
        want = model(*args)
        compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
        assert torch.allclose(compiled(*args), want, atol=1e-6)
    exported = torch.export.export(model, args)
    assert torch.allclose(exported.module()(*args), want, atol=1e-6)
