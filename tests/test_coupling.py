"""Tests of fusionlang.symmetry.coupling: CG tensors, exact values, 6j/9j, and the disk cache."""
import os
import subprocess
import sys
import time
import warnings
from fractions import Fraction

import numpy as np
import pytest
import sympy
from sympy.physics.wigner import clebsch_gordan

from fusionlang.symmetry import coupling
from fusionlang.symmetry.coupling import cg, cg_exact, ninej, real_to_complex, sixj
from fusionlang.symmetry.groups import GROUPS, Irrep
from fusionlang.symmetry.wigner import random_rotation, wigner_D

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path, monkeypatch):
    """Every test gets its own cache directory and an empty in-memory cache."""
    monkeypatch.setenv("FUSIONLANG_CACHE_DIR", str(tmp_path / "cache"))
    coupling.clear_memory_cache()
    yield tmp_path / "cache"
    coupling.clear_memory_cache()


def o3_triples(lmax):
    for l1 in range(lmax + 1):
        for l2 in range(lmax + 1):
            for l3 in range(abs(l1 - l2), min(l1 + l2, lmax) + 1):
                yield l1, l2, l3


def su2_triples(two_jmax):
    for a in range(two_jmax + 1):
        for b in range(two_jmax + 1):
            for c in range(abs(a - b), min(a + b, two_jmax) + 1, 2):
                yield a, b, c


def o3_irreps(l1, l2, l3, p1, p2):
    return Irrep(2 * l1, p1), Irrep(2 * l2, p2), Irrep(2 * l3, p1 * p2)


def assert_isometric(C):
    d3 = C.shape[2]
    G = np.einsum("ijk,ijl->kl", C, C.conj())
    np.testing.assert_allclose(G, np.eye(d3), atol=1e-13, rtol=0)


# ---------------------------------------------------------------- basic API

def test_dtypes_shapes_readonly():
    C = cg("O3", Irrep(2, -1), Irrep(4, 1), Irrep(6, -1))
    assert C.shape == (3, 5, 7) and C.dtype == np.float64
    assert not C.flags.writeable
    with pytest.raises(ValueError):
        C[0, 0, 0] = 1.0
    S = cg("SU2", Irrep(1), Irrep(3), Irrep(2))
    assert S.shape == (2, 4, 3) and S.dtype == np.complex128 and not S.flags.writeable
    assert cg("SO3", Irrep(2), Irrep(2), Irrep(0)).dtype == np.float64
    # labels work too, and the same object is returned from the cache
    assert cg("O3", "1o", "2e", "3o") is C


@pytest.mark.parametrize("group, a, b, c", [
    ("O3", Irrep(2, -1), Irrep(2, -1), Irrep(2, -1)),     # parity
    ("O3", Irrep(2, -1), Irrep(2, -1), Irrep(6, 1)),      # triangle
    ("SO3", Irrep(0), Irrep(2), Irrep(4)),
    ("SU2", Irrep(1), Irrep(1), Irrep(1)),                # half-integer sum
    ("SU2", Irrep(1), Irrep(2), Irrep(5)),
])
def test_inadmissible_raises(group, a, b, c):
    with pytest.raises(ValueError):
        cg(group, a, b, c)
    with pytest.raises(ValueError):
        cg_exact(group, a, b, c)


def test_bad_labels_raise():
    with pytest.raises(ValueError):
        cg("O3", Irrep(2, 0), Irrep(2, 0), Irrep(0, 0))      # O3 needs parities
    with pytest.raises(ValueError):
        cg("SO3", Irrep(1), Irrep(1), Irrep(0))              # half-integer in SO3
    with pytest.raises(ValueError):
        cg("SO3", Irrep(2, 1), Irrep(2, 1), Irrep(0, 1))     # SO3 has no parity
    with pytest.raises(ValueError):
        cg("G2", Irrep(0), Irrep(0), Irrep(0))


def test_parity_does_not_change_numbers():
    for l1, l2, l3 in o3_triples(4):
        ref = cg("SO3", Irrep(2 * l1), Irrep(2 * l2), Irrep(2 * l3))
        for p1 in (1, -1):
            for p2 in (1, -1):
                np.testing.assert_array_equal(cg("O3", *o3_irreps(l1, l2, l3, p1, p2)), ref)


# ---------------------------------------------------------------- isometry and equivariance

def test_isometry_all_table_triples():
    for l1, l2, l3 in o3_triples(8):
        assert_isometric(cg("SO3", Irrep(2 * l1), Irrep(2 * l2), Irrep(2 * l3)))
    for a, b, c in su2_triples(15):
        assert_isometric(cg("SU2", Irrep(a), Irrep(b), Irrep(c)))


def test_isometry_beyond_table():
    for key in [(24, 24, 0), (24, 20, 18), (18, 24, 24), (12, 24, 14)]:
        C = cg("SO3", *(Irrep(x) for x in key))
        assert_isometric(C)
    for key in [(17, 23, 24), (23, 23, 2), (24, 1, 23)]:
        assert_isometric(cg("SU2", *(Irrep(x) for x in key)))
    angles = random_rotation(9)
    assert _equivariance_error("O3", Irrep(24, -1), Irrep(20, 1), Irrep(18, -1), angles, True) < 1e-11
    assert _equivariance_error("SU2", Irrep(17), Irrep(23), Irrep(24), angles) < 1e-11


def _equivariance_error(group, a, b, c, angles, inversion=False):
    C = cg(group, a, b, c)
    D1, D2, D3 = (wigner_D(group, x, *angles, inversion=inversion) for x in (a, b, c))
    lhs = np.einsum("ai,bj,ijk->abk", D1, D2, C)
    rhs = np.einsum("abk,kc->abc", C, D3)
    return np.abs(lhs - rhs).max()


@pytest.mark.parametrize("seed", [0, 1])
def test_equivariance_o3_so3(seed):
    angles = random_rotation(seed)
    worst = 0.0
    for l1, l2, l3 in o3_triples(6):
        for p1, p2 in ((1, 1), (-1, 1), (1, -1), (-1, -1)):
            for inv in (False, True):
                worst = max(worst, _equivariance_error("O3", *o3_irreps(l1, l2, l3, p1, p2), angles, inv))
        worst = max(worst, _equivariance_error("SO3", Irrep(2 * l1), Irrep(2 * l2), Irrep(2 * l3), angles))
    assert worst < 1e-12


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equivariance_su2(seed):
    angles = random_rotation(seed)
    worst = max(_equivariance_error("SU2", Irrep(a), Irrep(b), Irrep(c), angles) for a, b, c in su2_triples(7))
    assert worst < 1e-12


def test_equivariance_catches_a_wrong_sign():
    # the check above must be able to fail: flip one entry's sign
    C = np.array(cg("SO3", Irrep(2), Irrep(2), Irrep(2)))
    C[0, 2, 1] *= -1
    D = wigner_D("SO3", Irrep(2), *random_rotation(5))
    assert np.abs(np.einsum("ai,bj,ijk->abk", D, D, C) - C @ D).max() > 1e-3


# ---------------------------------------------------------------- reference values

def test_o3_equals_e3nn_wigner_3j():
    torch = pytest.importorskip("torch")
    o3 = pytest.importorskip("e3nn.o3")
    worst = 0.0
    for l1, l2, l3 in o3_triples(6):
        ref = o3.wigner_3j(l1, l2, l3, dtype=torch.float64).numpy() * np.sqrt(2 * l3 + 1)
        ours = cg("SO3", Irrep(2 * l1), Irrep(2 * l2), Irrep(2 * l3))
        worst = max(worst, np.abs(ours - ref).max())
    assert worst < 1e-12


def test_real_to_complex_equals_e3nn_and_is_unitary():
    torch = pytest.importorskip("torch")
    _w = pytest.importorskip("e3nn.o3._wigner")
    for l in range(9):
        Q = real_to_complex(l)
        np.testing.assert_allclose(Q.conj().T @ Q, np.eye(2 * l + 1), atol=1e-14)
        ref = _w.change_basis_real_to_complex(l, dtype=torch.float64).numpy()
        np.testing.assert_allclose(Q, ref, atol=1e-15, rtol=0)
        assert not Q.flags.writeable
        Qx = np.array(coupling.real_to_complex_exact(l).evalf(30).tolist(), dtype=np.complex128)
        np.testing.assert_allclose(Qx, Q, atol=1e-15, rtol=0)


def test_su2_equals_sympy_condon_shortley():
    rng = np.random.default_rng(0)
    keys = list(su2_triples(15))
    for idx in rng.choice(len(keys), 60, replace=False):
        a, b, c = keys[idx]
        C = cg("SU2", Irrep(a), Irrep(b), Irrep(c))
        for _ in range(4):
            i, j = rng.integers(a + 1), rng.integers(b + 1)
            ma, mb = 2 * i - a, 2 * j - b
            mc = ma + mb
            if abs(mc) > c:
                continue
            half = lambda t: sympy.Rational(t, 2)  # noqa: E731
            ref = float(clebsch_gordan(half(a), half(b), half(c), half(ma), half(mb), half(mc)))
            assert abs(C[i, j, (c + mc) // 2] - ref) < 1e-14
    # a few by hand: <1/2 1/2 1/2 -1/2 | 0 0> = 1/sqrt2, <1/2 -1/2 1/2 1/2 | 0 0> = -1/sqrt2
    C = cg("SU2", Irrep(1), Irrep(1), Irrep(0))
    assert C[1, 0, 0] == pytest.approx(1 / np.sqrt(2)) and C[0, 1, 0] == pytest.approx(-1 / np.sqrt(2))


@pytest.mark.parametrize("group, keys", [
    ("SU2", [(1, 1, 0), (1, 1, 2), (3, 2, 1), (3, 4, 5), (4, 4, 4)]),
    ("SO3", [(0, 0, 0), (2, 2, 0), (2, 2, 2), (2, 4, 6), (4, 4, 4), (6, 4, 2)]),
])
def test_cg_exact_matches_float(group, keys):
    for key in keys:
        X = cg_exact(group, *(Irrep(x) for x in key))
        assert isinstance(X, sympy.ImmutableDenseNDimArray)
        F = np.array(X.tolist(), dtype=np.complex128)
        if group != "SU2":
            assert all(e.is_real for e in sympy.flatten(X.tolist()))
        np.testing.assert_allclose(F, cg(group, *(Irrep(x) for x in key)), atol=1e-14, rtol=0)


def test_cg_exact_o3_is_exact_isometry():
    X = cg_exact("O3", Irrep(2, -1), Irrep(2, -1), Irrep(2, 1))
    # l=1 x l=1 -> 1: the cross product, entries 0 or +-1/sqrt2
    for k in range(3):
        for k2 in range(3):
            s = sum(X[i, j, k] * X[i, j, k2] for i in range(3) for j in range(3))
            assert sympy.simplify(s - (1 if k == k2 else 0)) == 0
    assert set(abs(e) for e in sympy.flatten(X.tolist())) == {0, 1 / sympy.sqrt(2)}


# ---------------------------------------------------------------- 6j and 9j

def _j(x):
    return sympy.Rational(x)


def test_sixj_known_values():
    assert sixj(1, 1, 1, 1, 1, 1) == sympy.Rational(1, 6)
    assert sixj(0, 0, 0, 0, 0, 0) == 1
    # {a b c; b a 0} = (-1)^(a+b+c) / sqrt((2a+1)(2b+1))
    for a, b, c in [("1/2", "1/2", 1), (1, 2, 2), ("3/2", 1, "5/2"), (2, 2, 3)]:
        a, b, c = _j(a), _j(b), _j(c)
        expect = (-1) ** int(a + b + c) / sympy.sqrt((2 * a + 1) * (2 * b + 1))
        assert sympy.simplify(sixj(a, b, c, b, a, 0) - expect) == 0
    assert sixj(1, 1, 3, 1, 1, 1) == 0                # triangle fails
    assert sixj("1/2", "1/2", "1/2", 1, 1, 1) == 0    # half-integer triad sum
    # argument forms
    assert sixj(Irrep(2), Irrep(2), Irrep(2), 1.0, Fraction(1), "1") == sympy.Rational(1, 6)
    with pytest.raises(ValueError):
        sixj(0.3, 1, 1, 1, 1, 1)


def test_sixj_symmetries_and_orthogonality():
    h = [sympy.Rational(t, 2) for t in range(0, 6)]
    rng = np.random.default_rng(3)
    checked = 0
    while checked < 25:
        a, b, c, d, e, f = (h[i] for i in rng.integers(0, len(h), 6))
        v = sixj(a, b, c, d, e, f)
        if v == 0:
            continue
        checked += 1
        assert sixj(b, a, c, e, d, f) == v          # swap two columns
        assert sixj(a, c, b, d, f, e) == v
        assert sixj(c, b, a, f, e, d) == v
        assert sixj(d, e, c, a, b, f) == v          # swap upper/lower in two columns
        assert sixj(a, e, f, d, b, c) == v
    # sum_x (2x+1)(2y+1) {j1 j2 x; j3 j4 y}{j1 j2 x; j3 j4 y'} = delta_yy'
    for j1, j2, j3, j4 in [(1, "3/2", "1/2", 2), (2, 2, 1, 1), ("3/2", "5/2", 1, 2)]:
        j1, j2, j3, j4 = (_j(t) for t in (j1, j2, j3, j4))
        half = [_j(t) / 2 for t in range(0, 14)]
        ys = [y for y in half if coupling._triad(j1, j4, y) and coupling._triad(j3, j2, y)]
        assert len(ys) >= 2
        for y in ys:
            for y2 in ys:
                s = sum((2 * x + 1) * (2 * y + 1) * sixj(j1, j2, x, j3, j4, y) * sixj(j1, j2, x, j3, j4, y2)
                        for x in half)
                assert sympy.simplify(s - (1 if y == y2 else 0)) == 0, (y, y2, s)


def test_sixj_agrees_with_cg_recoupling():
    """<(j1 j2)j12, j3; J | j1, (j2 j3)j23; J> = (-1)^(j1+j2+j3+J) sqrt((2j12+1)(2j23+1)) {j1 j2 j12; j3 J j23}.

    This ties the signs of ``cg("SU2", ...)`` to those of ``sixj``.
    """
    grp = GROUPS["SU2"]
    ok = lambda *t: grp.admissible(*(Irrep(x) for x in t))  # noqa: E731
    n = 0
    for t1 in range(4):
        for t2 in range(4):
            for t3 in range(4):
                for t12 in range(7):
                    for tJ in range(10):
                        for t23 in range(7):
                            if not (ok(t1, t2, t12) and ok(t12, t3, tJ) and ok(t2, t3, t23) and ok(t1, t23, tJ)):
                                continue
                            ir = Irrep
                            A = np.einsum("abm,mcM->abcM", cg("SU2", ir(t1), ir(t2), ir(t12)),
                                          cg("SU2", ir(t12), ir(t3), ir(tJ)))
                            B = np.einsum("bcn,anM->abcM", cg("SU2", ir(t2), ir(t3), ir(t23)),
                                          cg("SU2", ir(t1), ir(t23), ir(tJ)))
                            overlaps = np.einsum("abcM,abcM->M", A.conj(), B).real
                            hh = [sympy.Rational(t, 2) for t in (t1, t2, t3, t12, tJ, t23)]
                            expect = ((-1) ** int(hh[0] + hh[1] + hh[2] + hh[4])
                                      * sympy.sqrt((2 * hh[3] + 1) * (2 * hh[5] + 1))
                                      * sixj(hh[0], hh[1], hh[3], hh[2], hh[4], hh[5]))
                            np.testing.assert_allclose(overlaps, float(expect), atol=1e-13)
                            n += 1
    assert n > 100


def test_ninej():
    from sympy.physics.wigner import wigner_9j
    for args in [(1, 1, 1, 1, 1, 1, 1, 1, 1), (1, 1, 0, 1, 1, 0, 0, 0, 0),
                 (1, 2, 1, 2, 1, 1, 1, 1, 2), ("1/2", "1/2", 1, "1/2", "1/2", 1, 1, 1, 0),
                 (2, 1, 1, 1, 2, 1, 1, 1, 2)]:
        ours = ninej(*args)
        ref = wigner_9j(*(sympy.Rational(a) for a in args))
        assert abs(float(ours) - float(ref)) < 1e-14
    # {a b e; c d e; f f 0} = (-1)^(b+c+e+f) / sqrt((2e+1)(2f+1)) {a b e; d c f}
    for a, b, c, d, e, f in [(1, 1, 1, 1, 1, 1), (1, 2, 2, 1, 2, 1), (2, "3/2", "1/2", 1, "5/2", 2)]:
        a, b, c, d, e, f = (_j(x) for x in (a, b, c, d, e, f))
        expect = (-1) ** int(b + c + e + f) / sympy.sqrt((2 * e + 1) * (2 * f + 1)) * sixj(a, b, e, d, c, f)
        assert sympy.simplify(ninej(a, b, e, c, d, e, f, f, 0) - expect) == 0
    assert ninej(1, 1, 3, 1, 1, 1, 1, 1, 1) == 0


# ---------------------------------------------------------------- the disk cache

def _table_files(d):
    return sorted(p for p in os.listdir(d) if p.endswith(".npz")) if os.path.isdir(d) else []


def test_cache_path_env(monkeypatch, tmp_path):
    assert coupling.cache_path() == str(tmp_path / "cache")
    monkeypatch.delenv("FUSIONLANG_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert coupling.cache_path() == str(tmp_path / "xdg" / "fusionlang")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert coupling.cache_path() == str(tmp_path / "home" / ".cache" / "fusionlang")
    p = coupling.cache_path("O3")
    assert p == coupling.cache_path("SO3") and p != coupling.cache_path("SU2")
    assert f"-f{coupling.FORMAT_VERSION}-" in os.path.basename(p)


def test_cache_cold_then_warm(fresh_cache, monkeypatch):
    t = time.perf_counter()
    paths = coupling.warm_cache()
    cold = time.perf_counter() - t
    assert cold < 10
    assert sorted(os.path.basename(p) for p in paths.values()) == _table_files(fresh_cache)
    assert not [p for p in os.listdir(fresh_cache) if p.startswith(".tmp")]     # no temp files left
    before = {k: np.array(cg(*k)) for k in [("SU2", Irrep(15), Irrep(14), Irrep(3)),
                                             ("O3", Irrep(16, 1), Irrep(10, -1), Irrep(8, -1))]}
    coupling.clear_memory_cache()

    def no_build(kind):
        raise AssertionError("the warm path must not recompute")
    monkeypatch.setattr(coupling, "_build_table", no_build)
    t = time.perf_counter()
    coupling.warm_cache()
    assert time.perf_counter() - t < 1.0
    for k, v in before.items():
        np.testing.assert_array_equal(cg(*k), v)


def test_cache_warm_read_in_new_process(fresh_cache):
    code = ("import time, sys; t=time.perf_counter(); from fusionlang.symmetry import coupling; "
            "t1=time.perf_counter(); coupling.warm_cache(); print(time.perf_counter()-t1)")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    files = _table_files(fresh_cache)
    assert len(files) == 2
    mtimes = [os.stat(os.path.join(fresh_cache, f)).st_mtime_ns for f in files]
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True)
    assert float(out.stdout.strip()) < 0.5
    assert [os.stat(os.path.join(fresh_cache, f)).st_mtime_ns for f in files] == mtimes   # not rewritten


def _corrupt_variants(path):
    raw = open(path, "rb").read()
    yield "garbage", b"this is not a table" * 100
    yield "empty", b""
    yield "truncated", raw[: len(raw) // 2]
    # flip bytes in the middle of the data: the zip still opens, the checksum fails
    mid = bytearray(raw)
    for i in range(len(raw) // 2, len(raw) // 2 + 64):
        mid[i] ^= 0x55
    yield "flipped", bytes(mid)


def _forged_table(path, kind):
    """A well-formed file whose checksum matches wrong contents (fewer keys)."""
    with np.load(path) as z:
        meta, keys, offsets, data = str(z["meta"][()]), z["keys"][:-1], z["offsets"][:-1], z["data"]
    data = data[: offsets[-1]] * 0.5
    digest = coupling._digest(meta, keys, offsets, data)
    np.savez(path, meta=np.array(meta), keys=keys, offsets=offsets, data=data, sha256=np.array(digest))


@pytest.mark.parametrize("group, key", [("SU2", (3, 4, 5)), ("SO3", (4, 6, 8))])
def test_cache_corrupt_file_recovers(fresh_cache, group, key):
    irreps = tuple(Irrep(x) for x in key)
    ref = np.array(cg(group, *irreps))
    path = coupling.cache_path(group)
    variants = list(_corrupt_variants(path))
    for name, blob in variants:
        with open(path, "wb") as fh:
            fh.write(blob)
        coupling.clear_memory_cache()
        np.testing.assert_array_equal(cg(group, *irreps), ref, err_msg=name)
        # and the file was repaired
        coupling.clear_memory_cache()
        assert coupling._read_table(coupling._kind(GROUPS[group]), path) is not None, name
    _forged_table(path, group)
    coupling.clear_memory_cache()
    assert coupling._read_table(coupling._kind(GROUPS[group]), path) is None
    np.testing.assert_array_equal(cg(group, *irreps), ref)


def test_cache_data_tampered_with_checksum_rejected(fresh_cache):
    ref = np.array(cg("SO3", Irrep(2), Irrep(2), Irrep(2)))
    path = coupling.cache_path("SO3")
    with np.load(path) as z:
        parts = {k: z[k] for k in z.files}
    parts["data"] = parts["data"].copy()
    parts["data"][:] = 0.0                     # wrong numbers, stale checksum
    np.savez(path, **parts)
    coupling.clear_memory_cache()
    np.testing.assert_array_equal(cg("SO3", Irrep(2), Irrep(2), Irrep(2)), ref)


def test_other_version_files_are_ignored(fresh_cache):
    os.makedirs(fresh_cache, exist_ok=True)
    stale = os.path.join(fresh_cache, "cg-SO3-max16-v0.0.1-f0-deadbeef.npz")
    with open(stale, "wb") as fh:
        fh.write(b"old")
    C = cg("SO3", Irrep(2), Irrep(2), Irrep(0))
    assert_isometric(C)
    assert os.path.exists(coupling.cache_path("SO3")) and coupling.cache_path("SO3") != stale


def test_unwritable_cache_dir_is_a_file(tmp_path, monkeypatch):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("x")
    monkeypatch.setenv("FUSIONLANG_CACHE_DIR", str(blocker))
    coupling.clear_memory_cache()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        coupling.warm_cache()
        C = cg("SU2", Irrep(3), Irrep(3), Irrep(2))
        R = cg("O3", Irrep(4, 1), Irrep(2, -1), Irrep(4, -1))
    assert len([w for w in caught if issubclass(w.category, coupling.CouplingCacheWarning)]) <= 1
    assert_isometric(C)
    assert_isometric(R)
    assert blocker.read_text() == "x"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores permissions")
def test_unwritable_cache_dir_permissions(tmp_path, monkeypatch):
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o500)
    try:
        monkeypatch.setenv("FUSIONLANG_CACHE_DIR", str(d))
        coupling.clear_memory_cache()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert_isometric(cg("SO3", Irrep(4), Irrep(4), Irrep(4)))
        assert os.listdir(d) == []
    finally:
        d.chmod(0o700)


def test_readonly_dir_with_valid_table_is_read(fresh_cache, monkeypatch):
    coupling.warm_cache()
    coupling.clear_memory_cache()

    def refuse(*a, **k):
        raise AssertionError("must not write")
    monkeypatch.setattr(coupling, "_write_table", refuse)
    monkeypatch.setattr(coupling, "_build_table", refuse)
    assert_isometric(cg("SU2", Irrep(15), Irrep(15), Irrep(14)))
