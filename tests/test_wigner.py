"""Tests of fusionlang.symmetry.wigner: rotations and Wigner D matrices."""
import numpy as np
import pytest

from fusionlang.symmetry.coupling import real_to_complex
from fusionlang.symmetry.groups import Irrep, Irreps, MulIrrep, parse_irreps
from fusionlang.symmetry.wigner import angles_from_matrix, irreps_D, random_rotation, rotation_matrix, wigner_D


def compose(a1, a2):
    """Angles of R(a1) @ R(a2)."""
    return angles_from_matrix(rotation_matrix(*a1) @ rotation_matrix(*a2))


@pytest.fixture
def torch64():
    torch = pytest.importorskip("torch")
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield torch
    torch.set_default_dtype(old)


def test_random_rotation_api():
    a = random_rotation(7)
    assert a == random_rotation(7) and a != random_rotation(8)
    assert all(isinstance(x, float) for x in a)
    g = np.random.default_rng(0)
    al, be, ga = random_rotation(g, size=(4000,))
    assert al.shape == (4000,) and (0 <= be).all() and (be <= np.pi).all()
    # Haar: cos(beta) uniform on [-1, 1]
    assert abs(np.cos(be).mean()) < 0.05 and abs((np.cos(be) ** 2).mean() - 1 / 3) < 0.03


def test_rotation_matrix_is_rotation_and_matches_e3nn(torch64):
    o3 = pytest.importorskip("e3nn.o3")
    for seed in range(10):
        a = random_rotation(seed)
        R = rotation_matrix(*a)
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-14)
        assert np.linalg.det(R) == pytest.approx(1.0)
        ref = o3.angles_to_matrix(*(torch64.tensor(x) for x in a)).numpy()
        np.testing.assert_allclose(R, ref, atol=1e-14)
        np.testing.assert_allclose(wigner_D("SO3", Irrep(2), *a), R, atol=1e-13)


def test_angles_from_matrix_roundtrip():
    al, be, ga = random_rotation(1, size=(50,))
    R = rotation_matrix(al, be, ga)
    np.testing.assert_allclose(rotation_matrix(*angles_from_matrix(R)), R, atol=1e-12)


def test_wigner_D_matches_e3nn(torch64):
    o3 = pytest.importorskip("e3nn.o3")
    worst = 0.0
    for seed in range(4):
        a = random_rotation(seed)
        ta = [torch64.tensor(x) for x in a]
        for l in range(9):
            for p in (1, -1):
                for k in (0, 1):
                    ref = o3.Irrep(l, p).D_from_angles(*ta, k=torch64.tensor(k)).numpy()
                    ours = wigner_D("O3", Irrep(2 * l, p), *a, inversion=bool(k))
                    worst = max(worst, np.abs(ours - ref).max())
            ref = o3.Irrep(l, 1).D_from_angles(*ta).numpy()
            worst = max(worst, np.abs(wigner_D("SO3", Irrep(2 * l), *a) - ref).max())
    assert worst < 1e-10


@pytest.mark.parametrize("group, irreps", [
    ("O3", [Irrep(2 * l, p) for l in range(7) for p in (1, -1)]),
    ("SO3", [Irrep(2 * l) for l in range(13)]),
    ("SU2", [Irrep(t) for t in range(16)]),
])
def test_D_is_a_representation(group, irreps):
    rng = np.random.default_rng(11)
    for _ in range(3):
        a1, a2 = random_rotation(rng), random_rotation(rng)
        a12 = compose(a1, a2)
        for ir in irreps:
            D1, D2, D12 = (wigner_D(group, ir, *a) for a in (a1, a2, a12))
            prod = D1 @ D2
            np.testing.assert_allclose(D1 @ D1.conj().T, np.eye(ir.dim), atol=1e-12)
            if ir.two_j % 2 == 0:
                np.testing.assert_allclose(prod, D12, atol=1e-11)
            else:
                # the angles of a 3x3 matrix fix an SU2 element only up to sign
                err = min(np.abs(prod - D12).max(), np.abs(prod + D12).max())
                assert err < 1e-11
    # identity
    for ir in irreps:
        np.testing.assert_allclose(wigner_D(group, ir, 0.0, 0.0, 0.0), np.eye(ir.dim), atol=1e-14)


def test_su2_double_cover_sign():
    a = random_rotation(3)
    for t in range(12):
        D = wigner_D("SU2", Irrep(t), *a)
        sign = -1 if t % 2 else 1
        for shift in [(2 * np.pi, 0, 0), (0, 2 * np.pi, 0), (0, 0, 2 * np.pi)]:
            D2 = wigner_D("SU2", Irrep(t), *(x + s for x, s in zip(a, shift)))
            np.testing.assert_allclose(D2, sign * D, atol=1e-12)
        D4 = wigner_D("SU2", Irrep(t), a[0] + 4 * np.pi, *a[1:])
        np.testing.assert_allclose(D4, D, atol=1e-12)
    # a 2pi rotation is -1 on spin 1/2
    np.testing.assert_allclose(wigner_D("SU2", Irrep(1), 0.0, 2 * np.pi, 0.0), -np.eye(2), atol=1e-14)


def test_su2_integer_spin_is_real_D_in_complex_basis():
    a = random_rotation(4)
    for l in range(9):
        Q = real_to_complex(l)
        np.testing.assert_allclose(wigner_D("SU2", Irrep(2 * l), *a),
                                   Q @ wigner_D("SO3", Irrep(2 * l), *a) @ Q.conj().T, atol=1e-12)


def test_su2_spin_half_explicit():
    # D^(1/2) = exp(i alpha Jz) exp(-i beta Jy) exp(i gamma Jz), J = sigma / 2
    al, be, ga = 0.3, 1.1, -0.7
    ez = lambda t: np.diag([np.exp(-0.5j * t), np.exp(0.5j * t)])  # noqa: E731  index j+m: m=-1/2, +1/2
    c, s = np.cos(be / 2), np.sin(be / 2)
    dy = np.array([[c, s], [-s, c]])    # exp(-i beta Jy) with rows/cols ordered m = -1/2, +1/2
    np.testing.assert_allclose(wigner_D("SU2", Irrep(1), al, be, ga), ez(al) @ dy @ ez(ga), atol=1e-14)


def test_inversion():
    a = random_rotation(5)
    for l in range(5):
        for p in (1, -1):
            D = wigner_D("O3", Irrep(2 * l, p), *a)
            np.testing.assert_allclose(wigner_D("O3", Irrep(2 * l, p), *a, inversion=True), p * D)
    with pytest.raises(ValueError):
        wigner_D("SO3", Irrep(2), *a, inversion=True)
    with pytest.raises(ValueError):
        wigner_D("SO3", Irrep(1), *a)
    with pytest.raises(ValueError):
        wigner_D("O3", Irrep(2), *a)        # O3 irreps need a parity


def test_batched_angles():
    al, be, ga = random_rotation(6, size=(5, 2))
    D = wigner_D("O3", "2e", al, be, ga)
    assert D.shape == (5, 2, 5, 5)
    np.testing.assert_allclose(D[3, 1], wigner_D("O3", "2e", al[3, 1], be[3, 1], ga[3, 1]), atol=1e-14)
    S = wigner_D("SU2", "3/2", al, be, 0.0)
    assert S.shape == (5, 2, 4, 4) and S.dtype == np.complex128


def test_irreps_D_layout():
    a = random_rotation(8)
    irreps = parse_irreps("O3", "2x0e + 3x1o + 1x2e")
    D = irreps_D("O3", irreps, *a, inversion=True)
    assert D.shape == (irreps.dim, irreps.dim) == (16, 16)
    D1 = wigner_D("O3", "1o", *a, inversion=True)
    D2 = wigner_D("O3", "2e", *a, inversion=True)
    expect = np.zeros((16, 16))
    expect[0, 0] = expect[1, 1] = 1.0
    for u in range(3):
        expect[2 + 3 * u: 5 + 3 * u, 2 + 3 * u: 5 + 3 * u] = D1
    expect[11:16, 11:16] = D2
    np.testing.assert_allclose(D, expect, atol=1e-14)
    # tuples work too; SU2 is complex
    S = irreps_D("SU2", [(2, Irrep(1)), MulIrrep(1, Irrep(2))], *a)
    assert S.shape == (7, 7) and S.dtype == np.complex128
    np.testing.assert_allclose(S[2:4, 2:4], wigner_D("SU2", Irrep(1), *a))
    assert irreps_D("SO3", Irreps(), *a).shape == (0, 0)


def test_cg_equivariance_through_irreps_D(tmp_path, monkeypatch):
    """The mul_ir block D maps a CG product of two features consistently (O3, with inversion)."""
    from fusionlang.symmetry import coupling
    from fusionlang.symmetry.coupling import cg
    monkeypatch.setenv("FUSIONLANG_CACHE_DIR", str(tmp_path))
    coupling.clear_memory_cache()
    rng = np.random.default_rng(0)
    a = random_rotation(rng)
    x, y = rng.normal(size=3), rng.normal(size=5)
    C = cg("O3", "1o", "2e", "3o")
    Dx, Dy, Dz = (wigner_D("O3", s, *a, inversion=True) for s in ("1o", "2e", "3o"))
    out = np.einsum("i,j,ijk->k", x, y, C)
    out_rot = np.einsum("i,j,ijk->k", Dx @ x, Dy @ y, C)
    np.testing.assert_allclose(out_rot, Dz @ out, atol=1e-12)
