"""fusionlang.nn layers against e3nn's numbers (float64), and the layers e3nn lacks against their definitions."""
import math

import pytest
import torch
from e3nn import math as e3nn_math
from e3nn import nn as e3nn_nn
from e3nn import o3

import fusionlang.nn as fnn
from fusionlang.api import compile_source


@pytest.fixture(autouse=True, scope="module")
def float64_one_thread():
    """float64 for 1e-12 comparisons; one thread: intra-op threads only stall on a shared 2-core machine."""
    dtype, threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    yield
    torch.set_default_dtype(dtype)
    torch.set_num_threads(threads)


def gen(seed):
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- Linear

LINEAR_CASES = [
    ("4x0e + 3x1o + 2x0e + 1x2e", "3x0e + 2x1o + 5x2e + 1x1e", {}),      # 1e output has no input: zero
    ("4x0e + 3x1o", "3x0e + 2x1o + 1x0e", {"biases": True}),
    ("2x0e + 2x0e + 3x1o", "5x0e + 1x1o", {"path_normalization": "path"}),
    ("4x0e + 3x1o + 2x1o", "3x0e + 2x1o", {"instructions": [(0, 0), (2, 1)]}),
]


@pytest.mark.parametrize("irreps_in, irreps_out, options", LINEAR_CASES)
def test_linear_equals_e3nn(irreps_in, irreps_out, options):
    theirs, ours = o3.Linear(irreps_in, irreps_out, **options), fnn.Linear(irreps_in, irreps_out, **options)
    assert ours.weight_numel == theirs.weight_numel and ours.irreps_out == theirs.irreps_out
    with torch.no_grad():
        ours.weight.copy_(theirs.weight)
        if options.get("biases"):
            theirs.bias.normal_(generator=gen(3))
            ours.bias.copy_(theirs.bias)
    x = torch.randn(7, theirs.irreps_in.dim, generator=gen(1))
    assert torch.allclose(ours(x), theirs(x), atol=1e-12)


def test_linear_external_weights_and_the_languages_linear():
    theirs = o3.Linear("4x0e + 3x1o", "3x0e + 2x1o", shared_weights=False)
    ours = fnn.Linear("4x0e + 3x1o", "3x0e + 2x1o", shared_weights=False)
    x = torch.randn(5, 13, generator=gen(2))
    w = torch.randn(5, theirs.weight_numel, generator=gen(3))
    assert torch.allclose(ours(x, w), theirs(x, w), atol=1e-12)
    with pytest.raises(ValueError, match="no internal weights"):
        ours(x)
    # the compiler's `linear` vertex is the same function given the same flat weights
    program = compile_source("group O3\ndiagram M {\n    in x : 8x0e + 8x1o\n    out y : 4x0e + 2x1o\n"
                             "    y = linear(x)\n}\n")
    compiled = program.modules["M"]().double()
    layer = fnn.Linear("8x0e + 8x1o", "4x0e + 2x1o")
    with torch.no_grad():
        layer.weight.copy_(compiled.y_weight)
    x = torch.randn(6, 32, generator=gen(4))
    assert torch.allclose(layer(x), compiled(x), atol=1e-12)


def test_linear_refuses_bad_requests():
    with pytest.raises(ValueError, match="0e outputs"):
        fnn.Linear("2x1o", "2x1o", biases=[True])
    with pytest.raises(ValueError, match="keeps the irrep"):
        fnn.Linear("2x1o", "2x1e", instructions=[(0, 0)])


# ----------------------------------------------------------------------------- FullTensorProduct

FTP_CASES = [
    ("2x0e + 3x1o + 1x2e", "1x0e + 2x1o + 1x2o", None),
    ("2x1o + 1x1e", "3x1o", ["0e", "1e", "2o"]),
    ("1x0e + 1x1o + 1x2e", "sh(2)", None),
]


@pytest.mark.parametrize("a, b, filter_ir_out", FTP_CASES)
def test_full_tensor_product_equals_e3nn(a, b, filter_ir_out):
    theirs = o3.FullTensorProduct(o3.Irreps(fnn.Irreps(a)), o3.Irreps(fnn.Irreps(b)), filter_ir_out)
    ours = fnn.FullTensorProduct(a, b, filter_ir_out)
    assert ours.irreps_out == theirs.irreps_out
    x1 = torch.randn(5, theirs.irreps_in1.dim, generator=gen(5))
    x2 = torch.randn(5, theirs.irreps_in2.dim, generator=gen(6))
    assert torch.allclose(ours(x1, x2), theirs(x1, x2), atol=1e-12)
    # broadcasting over leading axes
    assert torch.allclose(ours(x1[:, None], x2[None, :2]).reshape(10, -1),
                          theirs(x1[:, None].expand(5, 2, -1).reshape(10, -1),
                                 x2[None, :2].expand(5, 2, -1).reshape(10, -1)), atol=1e-12)


def test_full_tensor_product_keeps_every_spin_state():
    """Per-path output: 1o x 1o keeps all 9 components (0e + 1e + 2e), where a weighted fuse maps to fewer."""
    tp = fnn.FullTensorProduct("1o", "1o")
    assert tp.irreps_out == fnn.Irreps("0e + 1e + 2e") and tp.irreps_out.dim == 9


# ----------------------------------------------------------------------------- Gate, activations

GATE_CASES = [
    ("8x0e + 2x0o", [torch.relu, torch.tanh], "3x0e + 2x0o", [torch.sigmoid, torch.tanh], "2x1o + 1x2e + 2x1e"),
    ("4x0e", [torch.nn.functional.silu], "2x0e", [torch.sigmoid], "1x1o + 1x1o"),
    ("", [], "3x0o", [torch.abs], "3x1o"),
    ("4x0o", [torch.abs], "", [], ""),
]


@pytest.mark.parametrize("case", GATE_CASES)
def test_gate_equals_e3nn(case):
    theirs, ours = e3nn_nn.Gate(*case), fnn.Gate(*case)
    assert ours.irreps_in == theirs.irreps_in
    assert ours.irreps_out == theirs.irreps_out
    x = torch.randn(6, theirs.irreps_in.dim, generator=gen(7))
    assert torch.allclose(ours(x), theirs(x), atol=1e-12)


def test_gate_and_activation_errors():
    with pytest.raises(ValueError, match="neither"):
        fnn.Gate("2x0o", [torch.sigmoid], "", [], "")
    with pytest.raises(ValueError, match="gate scalars"):
        fnn.Gate("2x0e", [torch.relu], "1x0e", [torch.sigmoid], "2x1o")
    with pytest.raises(ValueError, match="scalars"):
        fnn.Gate("2x1o", [torch.relu], "", [], "")
    with pytest.raises(ValueError, match="one per term"):
        fnn.Activation("2x0e + 1x0o", [torch.relu])


def test_normalize2mom_matches_e3nn():
    for act in (torch.tanh, torch.nn.functional.silu, torch.sigmoid, torch.relu, torch.abs):
        ours, theirs = fnn.normalize2mom(act), e3nn_math.normalize2mom(act)
        assert ours.cst == theirs.cst
    z = torch.randn(200_000, generator=gen(8))
    assert abs(fnn.normalize2mom(torch.tanh)(z).pow(2).mean().item() - 1) < 0.02


@pytest.mark.parametrize("bias", [False, True])
def test_norm_activation_equals_e3nn(bias):
    theirs = e3nn_nn.NormActivation(o3.Irreps("3x0e + 2x1o + 1x2e"), torch.sigmoid, bias=bias)
    ours = fnn.NormActivation("3x0e + 2x1o + 1x2e", torch.sigmoid, bias=bias)
    if bias:
        with torch.no_grad():
            theirs.biases.normal_(generator=gen(9))
            ours.biases.copy_(theirs.biases)
    x = torch.randn(6, 14, generator=gen(10))
    x[0, 3:6] = 0.0                                   # a zero vector stays zero
    assert torch.allclose(ours(x), theirs(x), atol=1e-12)


def test_norm_activation_without_normalizing():
    """normalize=False: f(|x|) x (e3nn cannot build this case; checked against the definition)."""
    layer = fnn.NormActivation("2x1o", torch.tanh, normalize=False)
    x = torch.randn(4, 6, generator=gen(11))
    blocks = x.reshape(4, 2, 3)
    want = (torch.tanh(blocks.norm(dim=-1, keepdim=True)) * blocks).reshape(4, 6)
    assert torch.allclose(layer(x), want, atol=1e-14)


# ----------------------------------------------------------------------------- BatchNorm, LayerNorm

BN_OPTIONS = [{}, {"instance": True}, {"reduce": "max", "normalization": "norm"}, {"affine": False},
              {"include_bias": False}]


@pytest.mark.parametrize("options", BN_OPTIONS)
def test_batch_norm_equals_e3nn(options):
    irreps = "3x0e + 2x1o + 1x2e + 2x0o"
    theirs, ours = e3nn_nn.BatchNorm(irreps, **options), fnn.BatchNorm(irreps, **options)
    assert set(ours.state_dict()) == set(theirs.state_dict())
    if theirs.weight is not None:
        with torch.no_grad():
            theirs.weight.normal_(generator=gen(12))
            if options.get("include_bias", True):
                theirs.bias.normal_(generator=gen(13))
    ours.load_state_dict(theirs.state_dict())
    for step in range(3):                       # training steps move the running statistics
        x = torch.randn(6, 4, 16, generator=gen(20 + step)) * 2 + 1
        assert torch.allclose(ours(x), theirs(x), atol=1e-12)
    for key, value in theirs.state_dict().items():
        assert torch.allclose(ours.state_dict()[key], value, atol=1e-14), key
    theirs.eval()
    ours.eval()
    x = torch.randn(5, 16, generator=gen(30))
    assert torch.allclose(ours(x), theirs(x), atol=1e-12)


def test_layer_norm_is_torch_layer_norm_on_scalars():
    layer = fnn.LayerNorm("16x0e")
    with torch.no_grad():
        layer.weight.normal_(generator=gen(14))
        layer.bias.normal_(generator=gen(15))
    x = torch.randn(5, 16, generator=gen(16)) * 3 + 2
    want = torch.nn.functional.layer_norm(x, (16,), layer.weight, layer.bias, eps=layer.eps)
    assert torch.allclose(layer(x), want, atol=1e-12)


def test_layer_norm_on_vectors_follows_its_definition():
    layer = fnn.LayerNorm("4x1o + 2x2e", normalization="norm")
    x = torch.randn(3, 22, generator=gen(17))
    out = layer(x)
    v = x[:, :12].reshape(3, 4, 3)
    want = v / (v.pow(2).sum(-1).mean(-1) + layer.eps).sqrt()[:, None, None]
    assert torch.allclose(out[:, :12], want.reshape(3, 12), atol=1e-13)


# ----------------------------------------------------------------------------- radial

def test_radial_bases_equal_e3nn():
    r = torch.rand(50, generator=gen(18)) * 5 + 0.01
    assert torch.allclose(fnn.BesselBasis(5.0, 8)(r),
                          e3nn_math.soft_one_hot_linspace(r, 0.0, 5.0, 8, "bessel", cutoff=False), atol=1e-13)
    for cutoff in (False, True):
        assert torch.allclose(fnn.GaussianBasis(0.5, 4.0, 10, cutoff=cutoff)(r),
                              e3nn_math.soft_one_hot_linspace(r, 0.5, 4.0, 10, "gaussian", cutoff=cutoff),
                              atol=1e-14)


def test_bessel_frequencies_train():
    basis = fnn.BesselBasis(4.0, 6)
    basis(torch.rand(10) + 0.5).sum().backward()
    assert basis.frequencies.grad is not None and basis.frequencies.grad.abs().sum() > 0
    assert "frequencies" not in dict(fnn.BesselBasis(4.0, 6, trainable=False).named_parameters())


@pytest.mark.parametrize("p", [5, 6])
def test_polynomial_cutoff_is_smooth_at_r_max(p):
    cutoff = fnn.PolynomialCutoff(3.0, p)
    r = torch.tensor([0.0, 1.5, 3.0, 3.5], requires_grad=True)
    f = cutoff(r)
    assert f[0].item() == 1.0 and f[2].item() == 0.0 and f[3].item() == 0.0
    u = 0.5
    assert math.isclose(f[1].item(), 1 - (p + 1) * (p + 2) / 2 * u ** p + p * (p + 2) * u ** (p + 1)
                        - p * (p + 1) / 2 * u ** (p + 2), rel_tol=1e-14)
    near = torch.tensor([3.0 - 1e-4], requires_grad=True)
    (d1,) = torch.autograd.grad(cutoff(near).sum(), near, create_graph=True)
    (d2,) = torch.autograd.grad(d1.sum(), near)
    assert abs(d1.item()) < 1e-6 and abs(d2.item()) < 1e-2
    assert cutoff(torch.tensor([2.9])).item() > 0


def test_fully_connected_net_equals_e3nn():
    theirs = e3nn_nn.FullyConnectedNet([8, 16, 16, 5], torch.nn.functional.silu)
    ours = fnn.FullyConnectedNet([8, 16, 16, 5], torch.nn.functional.silu)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(4, 8, generator=gen(19))
    assert torch.allclose(ours(x), theirs(x), atol=1e-12)
    theirs = e3nn_nn.FullyConnectedNet([3, 7, 2], torch.tanh, variance_in=2, variance_out=3, out_act=True)
    ours = fnn.FullyConnectedNet([3, 7, 2], torch.tanh, variance_in=2, variance_out=3, out_act=True)
    ours.load_state_dict(theirs.state_dict())
    assert torch.allclose(ours(x[:, :3]), theirs(x[:, :3]), atol=1e-12)


def test_radial_mlp_sizes_itself_from_a_compiled_vertex():
    program = compile_source("group O3\ndiagram E {\n    in h : 4x(0e + 1o)\n    in y : sh(2)\n"
                             "    out m : 4x(0e + 1o)\n    m = fuse(h, y) [weights=uvu, external]\n}\n")
    numel = program.plans["E"].vertices[0].weight_numel
    mlp = fnn.RadialMLP(8, numel, hidden=(16,))
    assert mlp(torch.randn(3, 8)).shape == (3, numel)
    assert fnn.RadialMLP(8, program.modules["E"], hidden=(16,)).weight_numel == numel == 20
    layer = fnn.Linear("4x0e", "2x0e")
    assert fnn.RadialMLP(8, layer).weight_numel == layer.weight_numel == 8
    with pytest.raises(ValueError, match="weight_numel"):
        fnn.RadialMLP(8, "many")
