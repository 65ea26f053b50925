"""fusionlang.nn.spherical_harmonics against e3nn (float64, 1e-12), and its own properties beyond e3nn's lmax."""
import math

import numpy as np
import pytest
import torch
from e3nn import o3

from fusionlang.symmetry.coupling import cg, real_to_complex
from fusionlang.nn import Irreps, SphericalHarmonics, spherical_harmonics
from fusionlang.nn.spherical_harmonics import _FUNCTION_CACHE, _constants, _real_top_coupling
from fusionlang.symmetry.wigner import _su2_D, random_rotation, rotation_matrix, wigner_D

NORMALIZATIONS = ["integral", "component", "norm"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: intra-op threads only add scheduling stalls on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def points(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g, dtype=torch.float64)
    # lengths between 0.5 and 1.5, plus the axes and a point on the pole
    x = x / x.norm(dim=1, keepdim=True) * (0.5 + torch.rand(n, 1, generator=g, dtype=torch.float64))
    return torch.cat([x, torch.eye(3, dtype=torch.float64), -torch.eye(3, dtype=torch.float64)])


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
@pytest.mark.parametrize("normalize", [True, False])
def test_equals_e3nn_up_to_lmax_12(normalization, normalize):
    x = points()
    ls = list(range(13))
    ours = spherical_harmonics(ls, x, normalize, normalization)
    theirs = o3.spherical_harmonics(ls, x, normalize, normalization)
    if not normalize:
        # homogeneous of degree l: compare Y_l(x) / |x|^l so that 1e-12 means the same thing for every l
        scale = torch.cat([x.norm(dim=1, keepdim=True).pow(l).expand(-1, 2 * l + 1) for l in ls], dim=1)
        ours, theirs = ours / scale, theirs / scale
    assert ours.shape == theirs.shape
    assert torch.allclose(ours, theirs, rtol=0, atol=1e-12), (ours - theirs).abs().max()


@pytest.mark.parametrize("l", [3, [2, 0, 5, 2], "0e + 2x1o + 3o", "1x0e+1x1e+1x2e", Irreps("sh(4)")])
def test_every_way_to_name_the_degrees(l):
    x = points(16, seed=1)
    for normalization in NORMALIZATIONS:
        theirs = o3.spherical_harmonics(str(l) if isinstance(l, Irreps) else l, x, True, normalization)
        assert torch.allclose(spherical_harmonics(l, x, True, normalization), theirs, rtol=0, atol=1e-12)
    module = SphericalHarmonics(l, True, "component")
    reference = o3.SphericalHarmonics(str(l) if isinstance(l, Irreps) else l, True, "component")
    assert module.irreps_out == reference.irreps_out
    assert torch.allclose(module(x), reference(x), atol=1e-12)


def test_batch_shapes_zero_vector_and_float32():
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    assert spherical_harmonics(2, x, True).shape == (2, 5, 5)
    assert spherical_harmonics([0, 1], x[0, 0], True).shape == (4,)
    zero = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    for lmax in (1, 3):
        y = spherical_harmonics(list(range(lmax + 1)), zero, True, "component")
        assert torch.equal(y, o3.spherical_harmonics(list(range(lmax + 1)), zero, True, "component"))
        (g,) = torch.autograd.grad(y.sum(), zero)
        assert torch.isfinite(g).all()
    x32 = points(8).float()
    ours = SphericalHarmonics(list(range(7)), True, "component")(x32)
    assert ours.dtype == torch.float32
    assert torch.allclose(ours.double(), o3.spherical_harmonics(list(range(7)), x32.double(), True, "component"),
                          atol=2e-5)


def test_recurrence_uses_the_repos_coupling_tensor():
    """The closed-form (l-1) x 1 -> l tensor is fusionlang.symmetry.coupling.cg, e3nn's wigner_3j * sqrt(2l+1)."""
    for l in range(2, 9):
        assert np.allclose(_real_top_coupling(l), cg("O3", f"{l - 1}{'eo'[(l - 1) % 2]}", "1o", f"{l}{'eo'[l % 2]}"),
                           atol=1e-13)


def real_D(l, angles, inversion):
    """wigner.wigner_D, also past the language's l <= 12 (the same formula, unchecked label)."""
    if l <= 12:
        return wigner_D("O3", f"{l}{'eo'[l % 2]}", *angles, inversion=inversion)
    q = real_to_complex(l)
    D = (q.conj().T @ _su2_D(2 * l, *(np.asarray(a, dtype=np.float64) for a in angles)) @ q).real
    return D * (-1) ** l if inversion else D


@pytest.mark.parametrize("lmax", [6, 16])
@pytest.mark.parametrize("inversion", [False, True])
def test_equivariance(lmax, inversion):
    """Y(R x) = D(R) Y(x); beyond e3nn's lmax this, the norm and the pole sign fix Y (Schur)."""
    x = points(12, seed=2)
    angles = random_rotation(7)
    R = torch.from_numpy(rotation_matrix(*angles)) * (-1 if inversion else 1)
    for l in range(lmax + 1):
        D = torch.from_numpy(real_D(l, angles, inversion))
        left = spherical_harmonics(l, x @ R.T, False, "component")
        right = spherical_harmonics(l, x, False, "component") @ D.T
        assert torch.allclose(left, right, atol=1e-9 * 1.5 ** l), (l, (left - right).abs().max())


def test_normalizations_and_pole_beyond_e3nn():
    x = points(32, seed=3)
    unit = x / x.norm(dim=1, keepdim=True)
    for l in (13, 20):
        y = spherical_harmonics(l, x, True, "component")
        assert torch.allclose(y.pow(2).sum(1), torch.full((len(x),), 2.0 * l + 1, dtype=torch.float64), atol=1e-10)
        assert torch.allclose(spherical_harmonics(l, x, True, "norm"), y / math.sqrt(2 * l + 1), atol=1e-14)
        assert torch.allclose(spherical_harmonics(l, x, True, "integral"), y / math.sqrt(4 * math.pi), atol=1e-14)
        assert torch.allclose(spherical_harmonics(l, x, False, "component"),
                              spherical_harmonics(l, unit, False, "component") * x.norm(dim=1, keepdim=True) ** l,
                              rtol=1e-10)
        pole = spherical_harmonics(l, torch.tensor([[0.0, 2.0, 0.0]], dtype=torch.float64), True, "component")[0]
        assert abs(pole[l].item() - math.sqrt(2 * l + 1)) < 1e-10
        assert pole.abs().sum().item() - pole[l].item() < 1e-10


@pytest.mark.parametrize("normalize", [True, False])
def test_gradients_and_double_backward(normalize):
    x = points(3, seed=4)[:3].clone().requires_grad_(True)
    f = lambda v: spherical_harmonics([0, 1, 2, 3, 4], v, normalize, "integral")  # noqa: E731
    assert torch.autograd.gradcheck(f, (x,), fast_mode=True)
    assert torch.autograd.gradgradcheck(f, (x,), fast_mode=True)
    # forces-style double backward agrees with e3nn
    for impl in ("ours", "e3nn"):
        xx = points(6, seed=5).clone().requires_grad_(True)
        y = f(xx) if impl == "ours" else o3.spherical_harmonics([0, 1, 2, 3, 4], xx, normalize, "integral")
        (g,) = torch.autograd.grad(y.pow(2).sum() + y[:, 5:9].sum(), xx, create_graph=True)
        (gg,) = torch.autograd.grad(g.pow(2).sum(), xx)
        if impl == "ours":
            ours = (g.detach(), gg)
        else:
            assert torch.allclose(ours[0], g.detach(), atol=1e-11) and torch.allclose(ours[1], gg, atol=1e-10)


def test_bad_arguments():
    x = torch.randn(3, 3)
    with pytest.raises(ValueError, match="normalization"):
        spherical_harmonics(2, x, True, "unit")
    with pytest.raises(ValueError, match="parity"):
        spherical_harmonics("0e + 1o + 2o", x, True)
    with pytest.raises(ValueError, match=r"\[\.\.\., 3\]"):
        spherical_harmonics(2, torch.randn(3, 4), True)
    with pytest.raises(ValueError):
        SphericalHarmonics(2, True, irreps_in="2x1o")


def test_function_compiles_and_exports_on_first_use():
    """The functional form builds its constants outside torch.compile's trace, even on a first call there."""
    irreps = Irreps("1x0e + 2x3o")

    def f(x):
        return spherical_harmonics([5, 1], x, True, "norm").sum(-1) + spherical_harmonics(irreps, x, False).sum(-1)

    x = points(4, seed=9)
    want = f(x)
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    _FUNCTION_CACHE.clear()
    _constants.cache_clear()
    assert torch.allclose(compiled(x), want, atol=1e-13)

    class Wrapper(torch.nn.Module):
        def forward(self, v):
            return f(v)
    assert torch.allclose(torch.export.export(Wrapper(), (x,)).module()(x), want, atol=1e-13)
