"""fusionlang.nn.Irreps / Irrep: the language's and e3nn's strings, e3nn's operations, bridges."""
import numpy as np
import pytest
import torch
from e3nn import o3

from fusionlang.symmetry import groups
from fusionlang.nn import Irrep, Irreps, MulIr

STRINGS = ["16x0e+8x1o", "16x0e + 8x1o", "0e", "1x0e+1x1o+1x2e", "2x1e + 3x0o + 1x1e + 4x2o", "0x1o+2x0e", ""]


@pytest.mark.parametrize("text", STRINGS)
def test_parses_like_e3nn_and_prints_e3nn_form(text):
    ours, theirs = Irreps(text), o3.Irreps(text)
    assert ours == theirs
    assert str(ours) == str(theirs)
    assert Irreps(str(ours)) == ours
    assert (ours.dim, ours.num_irreps, ours.ls) == (theirs.dim, theirs.num_irreps, theirs.ls)
    assert ours.slices() == theirs.slices()


def test_language_forms():
    assert Irreps("16x(0e + 1o + 2e)") == Irreps("16x0e + 16x1o + 16x2e")
    assert Irreps("sh(3)") == Irreps("0e + 1o + 2e + 3o") == Irreps.spherical_harmonics(3)
    assert Irreps("2x(sh(1) + 3x1e)") == Irreps("2x0e + 2x1o + 6x1e")
    # multiplicity-1 terms print with an explicit 1x, which both the language and e3nn read
    assert str(Irreps("1o")) == "1x1o"


def test_bad_strings_give_the_languages_diagnostic():
    with pytest.raises(ValueError) as err:
        Irreps("16x(0e + 1y)")
    text = str(err.value)
    assert "F020" in text and "^^" in text and "help:" in text
    with pytest.raises(ValueError, match="F020"):
        Irreps("4x0e + 2x1")          # flat, but the label lacks a parity
    with pytest.raises(ValueError, match="parity"):
        Irrep("1")
    with pytest.raises(ValueError):
        Irrep(-1, 1)
    with pytest.raises(ValueError):
        Irrep(1, 0)


def test_accepts_every_irreps_like_value():
    want = Irreps("4x0e + 2x1o")
    assert Irreps(o3.Irreps("4x0e+2x1o")) == want
    assert Irreps(groups.parse_irreps("O3", "4x0e + 2x1o")) == want
    assert Irreps([(4, "0e"), (2, (1, -1))]) == want
    assert Irreps([(4, Irrep("0e")), MulIr(2, "1o")]) == want
    assert Irreps(["4x0e", "2x1o"]) == want
    assert Irreps(want) is want
    assert Irreps(Irrep("1o")) == Irreps("1x1o")
    assert Irrep(groups.Irrep(2, -1)) == Irrep("1o") == Irrep(1, -1) == Irrep((1, -1))
    # and e3nn reads ours
    assert o3.Irreps(want) == o3.Irreps("4x0e+2x1o")
    assert o3.Irrep(Irrep("2e")) == o3.Irrep("2e")
    assert want.to_group_irreps() == groups.parse_irreps("O3", "4x0e + 2x1o")


def test_reads_compiled_modules_metadata():
    from fusionlang.api import compile_source
    module = compile_source("group O3\ndiagram M {\n    in x : 8x(0e + 1o)\n    in y : sh(2)\n"
                            "    out z : 8x0e + 8x1o + 8x2e\n    z = fuse(x, y) [weights=uvu]\n}\n").modules["M"]
    assert [Irreps(s) for s in module.irreps_in] == [Irreps("8x0e + 8x1o"), Irreps("sh(2)")]
    assert Irreps(module.irreps_out) == o3.Irreps("8x0e+8x1o+8x2e")


def test_operations_match_e3nn():
    text = "2o + 1e + 0e + 1e + 3x1e + 0x2e + 2x0o"
    ours, theirs = Irreps(text), o3.Irreps(text)
    assert ours.simplify() == theirs.simplify()
    assert ours.remove_zero_multiplicities() == theirs.remove_zero_multiplicities()
    s, t = ours.sort(), theirs.sort()
    assert (s.irreps, s.p, s.inv) == (t.irreps, t.p, t.inv)
    assert ours.regroup() == theirs.regroup()
    assert ours + "4x0e" == theirs + "4x0e"
    assert "4x0e" + ours == o3.Irreps("4x0e") + theirs
    assert 2 * ours == 2 * theirs and ours * 3 == theirs * 3
    assert 3 * Irrep("1o") == 3 * o3.Irrep("1o")
    assert ours.count("1e") == theirs.count("1e") == 5
    assert ("0o" in ours) and ("3o" not in ours)
    assert ours.lmax == theirs.lmax
    assert ours[1:3] == theirs[1:3] and isinstance(ours[1:3], Irreps)
    assert list(Irrep("1o") * Irrep("2e")) == list(o3.Irrep("1o") * o3.Irrep("2e"))
    assert ours.filter(keep=["1e", "0e"]) == theirs.filter(keep=["1e", "0e"])
    assert Irrep("0e").is_scalar() and not Irrep("0o").is_scalar()
    for mul, ir in ours:                          # iteration of (mul, ir)
        assert isinstance(mul, int) and isinstance(ir, Irrep)


def test_sort_permutation_reorders_data():
    irreps = Irreps("2x1o + 3x0e + 1x2e + 1x0o")
    x = irreps.randn(4, generator=torch.Generator().manual_seed(0))
    s = irreps.sort()
    blocks = [x[..., sl] for sl in irreps.slices()]
    sorted_x = torch.cat([blocks[i] for i in s.inv], dim=-1)
    sorted_blocks = [sorted_x[..., sl] for sl in s.irreps.slices()]
    back = torch.cat([sorted_blocks[s.p[i]] for i in range(len(irreps))], dim=-1)
    assert torch.equal(back, x)
    assert s.irreps == Irreps("1x0o + 3x0e + 2x1o + 1x2e")


@pytest.mark.parametrize("k", [0, 1])
def test_D_matches_e3nn(k):
    irreps = "2x0e + 1x1o + 1x2e + 1x1e + 1x3o"
    a, b, c = torch.tensor(0.3), torch.tensor(1.1), torch.tensor(-2.0)
    ours = Irreps(irreps).D_from_angles(a, b, c, k)
    theirs = o3.Irreps(irreps).D_from_angles(a.double(), b.double(), c.double(), torch.tensor(k))
    assert torch.allclose(ours, theirs.double(), atol=1e-12)
    R = o3.angles_to_matrix(a.double(), b.double(), c.double()) * (-1) ** k
    assert torch.allclose(Irreps(irreps).D_from_matrix(R), ours, atol=1e-10)


def test_randn_normalization():
    x = Irreps("1000x2e").randn(2, normalization="norm", generator=torch.Generator().manual_seed(1))
    norms = x.reshape(2, 1000, 5).norm(dim=-1)
    assert abs(norms.pow(2).mean().item() - 1) < 0.1
    assert np.isclose(Irreps("3x1o").randn(5, 7).std().item(), 1, atol=0.3)
