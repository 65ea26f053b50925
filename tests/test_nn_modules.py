"""Every fusionlang.nn layer as a torch module: equivariance (rotations and inversion), torch.compile
(fullgraph), torch.export, dtype moves, state_dict round trips, gradients and double backward."""
import copy
from dataclasses import dataclass
from typing import Callable

import pytest
import torch

import fusionlang.nn as fnn
from fusionlang.symmetry.wigner import random_rotation


@pytest.fixture(autouse=True, scope="module")
def float64_one_thread():
    dtype, threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    yield
    torch.set_default_dtype(dtype)
    torch.set_num_threads(threads)


@dataclass
class Case:
    build: Callable
    inputs: Callable                   # generator -> tuple of tensors
    irreps_in: tuple                   # per input: irreps, or None for an invariant/integer input
    irreps_out: str | None             # None: output is invariant


def features(irreps, n=5):
    return lambda g: (fnn.Irreps(irreps).randn(n, generator=g),)


def lengths(g):
    return (torch.rand(7, generator=g) * 3 + 0.2,)


CASES = {
    "SphericalHarmonics": Case(lambda: fnn.SphericalHarmonics("0e + 1o + 2e + 3o", True, "component"),
                               lambda g: (torch.randn(6, 3, generator=g),), ("1o",), "0e + 1o + 2e + 3o"),
    "SphericalHarmonics-raw": Case(lambda: fnn.SphericalHarmonics([1, 2, 4], False, "integral"),
                                   lambda g: (torch.randn(6, 3, generator=g),), ("1o",), "1o + 2e + 4e"),
    "Linear": Case(lambda: fnn.Linear("4x0e + 3x1o + 2x2e", "3x0e + 2x1o + 1x2e", biases=True),
                   features("4x0e + 3x1o + 2x2e"), ("4x0e + 3x1o + 2x2e",), "3x0e + 2x1o + 1x2e"),
    "Linear-external": Case(lambda: fnn.Linear("2x0e + 2x1o", "3x0e + 1x1o", shared_weights=False),
                            lambda g: (fnn.Irreps("2x0e + 2x1o").randn(5, generator=g),
                                       torch.randn(5, 8, generator=g)),
                            ("2x0e + 2x1o", None), "3x0e + 1x1o"),
    "FullTensorProduct": Case(lambda: fnn.FullTensorProduct("2x0e + 2x1o", "1x1o + 1x2e"),
                              lambda g: (fnn.Irreps("2x0e + 2x1o").randn(4, generator=g),
                                         fnn.Irreps("1x1o + 1x2e").randn(4, generator=g)),
                              ("2x0e + 2x1o", "1x1o + 1x2e"), None),
    "Gate": Case(lambda: fnn.Gate("4x0e + 2x0o", [torch.nn.functional.silu, torch.tanh], "3x0e", [torch.sigmoid],
                                  "2x1o + 1x2e"),
                 features("2x0o + 7x0e + 2x1o + 1x2e"), ("2x0o + 7x0e + 2x1o + 1x2e",), "4x0e + 2x0o + 2x1o + 1x2e"),
    "Activation": Case(lambda: fnn.Activation("4x0e + 2x0o + 1x1o", [torch.tanh, torch.abs, None]),
                       features("4x0e + 2x0o + 1x1o"), ("4x0e + 2x0o + 1x1o",), "4x0e + 2x0e + 1x1o"),
    "NormActivation": Case(lambda: fnn.NormActivation("2x0e + 3x1o + 1x2e", torch.sigmoid, bias=True),
                           features("2x0e + 3x1o + 1x2e"), ("2x0e + 3x1o + 1x2e",), "2x0e + 3x1o + 1x2e"),
    "BatchNorm": Case(lambda: fnn.BatchNorm("3x0e + 2x1o + 1x2e"), features("3x0e + 2x1o + 1x2e", 8),
                      ("3x0e + 2x1o + 1x2e",), "3x0e + 2x1o + 1x2e"),
    "LayerNorm": Case(lambda: fnn.LayerNorm("3x0e + 2x1o + 1x2e"), features("3x0e + 2x1o + 1x2e"),
                      ("3x0e + 2x1o + 1x2e",), "3x0e + 2x1o + 1x2e"),
    "BesselBasis": Case(lambda: fnn.BesselBasis(4.0, 6), lengths, (None,), None),
    "PolynomialCutoff": Case(lambda: fnn.PolynomialCutoff(4.0), lengths, (None,), None),
    "GaussianBasis": Case(lambda: fnn.GaussianBasis(0.0, 4.0, 6, trainable=True), lengths, (None,), None),
    "RadialEmbedding": Case(lambda: fnn.RadialEmbedding(4.0, 6), lengths, (None,), None),
    "RadialMLP": Case(lambda: fnn.RadialMLP(6, 20, hidden=(8,)), lambda g: (torch.randn(7, 6, generator=g),),
                      (None,), None),
    "SpeciesEmbedding": Case(lambda: fnn.SpeciesEmbedding(4, "8x0e"),
                             lambda g: (torch.randint(0, 4, (6,), generator=g),), (None,), None),
    "SpeciesWeights": Case(lambda: fnn.SpeciesWeights(4, 10),
                           lambda g: (torch.randint(0, 4, (6,), generator=g),), (None,), None),
}


def built(name, seed=0):
    torch.manual_seed(seed)
    case = CASES[name]
    module = case.build()
    for p in module.parameters():          # move biases and the like off their zero start
        with torch.no_grad():
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(seed + 1)))
    return case, module, case.inputs(torch.Generator().manual_seed(seed + 2))


def rotate(x, irreps, angles, k):
    if irreps is None:
        return x
    D = fnn.Irreps(irreps).D_from_angles(*angles, k).to(x.dtype)
    return x @ D.T


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c.irreps_out is not None or
                                  any(i is not None for i in c.irreps_in)])
@pytest.mark.parametrize("k", [0, 1])
def test_equivariance(name, k):
    case, module, inputs = built(name)
    angles = random_rotation(11 + k)
    out = module(*inputs)
    rotated_out = module(*(rotate(x, irreps, angles, k) for x, irreps in zip(inputs, case.irreps_in)))
    irreps_out = case.irreps_out or str(module.irreps_out)
    assert torch.allclose(rotated_out, rotate(out, irreps_out, angles, k), atol=1e-11)
    assert module.irreps_out == fnn.Irreps(irreps_out)
    if len(inputs) == 1 and hasattr(module, "irreps_in"):
        assert module.irreps_in == fnn.Irreps(case.irreps_in[0])


@pytest.mark.parametrize("name", list(CASES))
def test_compile_fullgraph(name):
    case, module, inputs = built(name)
    if name == "BatchNorm":
        module.eval()
    want = module(*inputs)
    compiled = torch.compile(module, fullgraph=True, backend="aot_eager")
    assert torch.allclose(compiled(*inputs), want, atol=1e-13)


@pytest.mark.parametrize("name", list(CASES))
def test_export(name):
    case, module, inputs = built(name)
    module.eval()
    want = module(*inputs)
    exported = torch.export.export(module, inputs)
    assert torch.allclose(exported.module()(*inputs), want, atol=1e-13)


def test_batch_norm_compiles_in_training_and_updates_running_statistics():
    _, module, inputs = built("BatchNorm")
    reference = copy.deepcopy(module)
    compiled = torch.compile(module, fullgraph=True, backend="aot_eager")
    assert torch.allclose(compiled(*inputs), reference(*inputs), atol=1e-13)
    assert torch.allclose(module.running_var, reference.running_var, atol=1e-14)
    assert not torch.equal(module.running_var, torch.ones_like(module.running_var))


@pytest.mark.parametrize("name", list(CASES))
def test_dtype_moves_and_state_dict_round_trip(name):
    case, module, inputs = built(name)
    module.eval()
    want = module(*inputs)
    # float32 and back: outputs follow the module, constants keep float64
    low = copy.deepcopy(module).float()
    out32 = low(*(x.float() if x.is_floating_point() else x for x in inputs))
    assert out32.dtype == torch.float32
    assert torch.allclose(out32.double(), want, rtol=1e-4, atol=1e-4)
    back = low.double()
    for key, value in module.named_buffers():
        if not key.startswith(("running_", "frequencies", "centres")):
            assert torch.equal(dict(back.named_buffers())[key], value), key
    # a fresh module with other random weights reproduces the output after load_state_dict
    _, fresh, _ = built(name, seed=5)
    fresh.load_state_dict(module.state_dict())
    fresh.eval()
    assert torch.equal(fresh(*inputs), want)


@pytest.mark.parametrize("name", list(CASES))
def test_double_backward(name):
    case, module, inputs = built(name)
    floats = [x.clone().requires_grad_(True) for x in inputs if x.is_floating_point()]
    params = [p for p in module.parameters() if p.requires_grad]
    wrt = floats + params
    assert wrt, "nothing to differentiate"
    it = iter(floats)
    args = [next(it) if x.is_floating_point() else x for x in inputs]
    out = module(*args)
    grads = torch.autograd.grad(out.pow(2).sum(), wrt, create_graph=True)
    assert all(torch.isfinite(g).all() for g in grads)
    second = torch.autograd.grad(sum(g.pow(2).sum() for g in grads), wrt, allow_unused=True)
    assert any(s is not None and s.abs().sum() > 0 for s in second)
    assert all(s is None or torch.isfinite(s).all() for s in second)


@pytest.mark.parametrize("name", ["SphericalHarmonics", "Gate", "NormActivation", "LayerNorm",
                                  "FullTensorProduct", "RadialEmbedding"])
def test_gradgradcheck(name):
    _, module, inputs = built(name)
    inputs = tuple(x[:2].clone().requires_grad_(True) for x in inputs)
    assert torch.autograd.gradgradcheck(module, inputs, fast_mode=True)
