"""Differential tests: fusionlang's binary fuse and linear against e3nn, in float64.

LANGUAGE.md section 6 promises that a binary `fuse` with weights is e3nn's
o3.TensorProduct (component / element normalisation, instructions in the order
for i1, for i2, for out) given the same flat weights, and that `linear` is
o3.Linear.  `weights=none` is e3nn's `uvuv` mode without weights.
"""
import random

import pytest
import torch

from fusionlang.api import compile_source
from helpers_codegen import float64_default  # noqa: F401 (an autouse fixture)

o3 = pytest.importorskip("e3nn.o3")

LABELS = ["0e", "0o", "1o", "1e", "2e", "2o", "3o"]


def reachable(in1, in2):
    from fusionlang.symmetry.groups import GROUPS, parse_irreps
    g = GROUPS["O3"]
    a, b = parse_irreps(g, in1), parse_irreps(g, in2)
    return sorted({str(c) for x in a for y in b for c in g.product(x.irrep, y.irrep)},
                  key=lambda s: (int(s[:-1]), s[-1]))


def random_case(rng: random.Random, mode: str):
    def irreps(mul_choices, n):
        labels = rng.sample(LABELS, n)
        return [(rng.choice(mul_choices), lab) for lab in labels]
    if mode == "uuu":
        u = rng.choice([1, 2, 3])
        a, b = irreps([u], rng.randint(1, 3)), irreps([u], rng.randint(1, 3))
    elif mode == "uvu":
        u = rng.choice([1, 2, 4])
        a, b = irreps([u], rng.randint(1, 3)), irreps([1, 2, 3], rng.randint(1, 3))
    else:
        a, b = irreps([1, 2, 3], rng.randint(1, 3)), irreps([1, 2, 3], rng.randint(1, 3))
    text = lambda terms: " + ".join(f"{m}x{lab}" for m, lab in terms)
    outs = reachable(text(a), text(b))
    chosen = rng.sample(outs, rng.randint(1, min(3, len(outs))))
    rng.shuffle(chosen)
    if mode in ("uvu", "uuu"):
        out = [(a[0][0], lab) for lab in chosen]
    elif mode == "none":
        return None   # built separately: output multiplicities follow the paths
    else:
        out = [(rng.choice([1, 2, 5]), lab) for lab in chosen]
    return text(a), text(b), text(out)


def instructions(in1, in2, out, mode, weighted=True):
    a, b, c = o3.Irreps(in1), o3.Irreps(in2), o3.Irreps(out)
    return [(i, j, k, mode, weighted) for i, (_, x) in enumerate(a) for j, (_, y) in enumerate(b)
            for k, (_, z) in enumerate(c) if z in x * y]


def compile_fuse(in1, in2, out, mode, external):
    option = f"[weights={mode}{', external' if external else ''}]"
    text = f"""group O3
diagram T {{
    in a : {in1}
    in b : {in2}
    out c : {out}
    c = fuse(a, b) {option}
}}
"""
    program = compile_source(text)
    return program.modules["T"]().double(), program


CASES = [(mode, seed, external) for mode in ("uvw", "uvu", "uuu") for seed in range(12) for external in (False, True)]


@pytest.mark.parametrize("mode,seed,external", CASES)
def test_fuse_equals_e3nn_tensor_product(mode, seed, external):
    rng = random.Random(f"{mode}-{seed}")
    in1, in2, out = random_case(rng, mode)
    ours, program = compile_fuse(in1, in2, out, mode, external)
    tp = o3.TensorProduct(in1, in2, out, instructions(in1, in2, out, mode),
                          irrep_normalization="component", path_normalization="element",
                          internal_weights=not external, shared_weights=not external).double()
    plan = program.plans["T"]
    assert plan.vertices[0].weight_numel == tp.weight_numel
    gen = torch.Generator().manual_seed(seed)
    batch = 7
    x1 = torch.randn(batch, tp.irreps_in1.dim, generator=gen, dtype=torch.float64)
    x2 = torch.randn(batch, tp.irreps_in2.dim, generator=gen, dtype=torch.float64)
    if external:
        w = torch.randn(batch, tp.weight_numel, generator=gen, dtype=torch.float64)
        expected, got = tp(x1, x2, w), ours(x1, x2, w)
    else:
        with torch.no_grad():
            ours.c_weight.copy_(torch.randn(tp.weight_numel, generator=gen, dtype=torch.float64))
            tp.weight.copy_(ours.c_weight)
        expected, got = tp(x1, x2), ours(x1, x2)
    assert got.shape == expected.shape
    scale = expected.abs().max().clamp_min(1.0)
    assert (got - expected).abs().max() / scale < 1e-10, (in1, in2, out)


@pytest.mark.parametrize("seed", range(8))
def test_unweighted_fuse_equals_e3nn_uvuv(seed):
    rng = random.Random(f"none-{seed}")
    ma, mb = rng.choice([1, 2]), rng.choice([1, 3])
    text = lambda terms: " + ".join(f"{m}x{lab}" for m, lab in terms)
    in1 = text([(ma, lab) for lab in rng.sample(LABELS[:5], rng.randint(1, 2))])
    in2 = text([(mb, lab) for lab in rng.sample(LABELS[:5], rng.randint(1, 2))])
    outs = reachable(in1, in2)
    out = text([(ma * mb, lab) for lab in rng.sample(outs, rng.randint(1, min(3, len(outs))))])
    ours, _ = compile_fuse(in1, in2, out, "none", False)
    tp = o3.TensorProduct(in1, in2, out, instructions(in1, in2, out, "uvuv", weighted=False),
                          irrep_normalization="component", path_normalization="element").double()
    gen = torch.Generator().manual_seed(seed)
    x1 = torch.randn(5, tp.irreps_in1.dim, generator=gen, dtype=torch.float64)
    x2 = torch.randn(5, tp.irreps_in2.dim, generator=gen, dtype=torch.float64)
    assert (ours(x1, x2) - tp(x1, x2)).abs().max() < 1e-10


def test_unweighted_single_path_is_the_isometric_cg():
    """weights=none with one path is wigner_3j * sqrt(2 l3 + 1), as LANGUAGE.md section 6 says."""
    ours, _ = compile_fuse("1o", "2e", "1o", "none", False)
    gen = torch.Generator().manual_seed(0)
    x1 = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    x2 = torch.randn(4, 5, generator=gen, dtype=torch.float64)
    w3j = o3.wigner_3j(1, 2, 1).double() * 3 ** 0.5
    assert (ours(x1, x2) - torch.einsum("zi,zj,ijk->zk", x1, x2, w3j)).abs().max() < 1e-12


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("external", [False, True])
def test_linear_equals_e3nn_linear(seed, external):
    rng = random.Random(f"linear-{seed}")
    labels = rng.sample(LABELS, 3)
    src = [(rng.choice([1, 3, 8]), lab) for lab in labels + rng.sample(labels, 1)]
    dst = [(rng.choice([1, 2, 5]), lab) for lab in rng.sample(labels, 2)]
    text = lambda terms: " + ".join(f"{m}x{lab}" for m, lab in terms)
    option = " [external]" if external else ""
    program = compile_source(f"group O3\ndiagram L {{\n in x : {text(src)}\n out y : {text(dst)}\n"
                             f" y = linear(x){option}\n}}\n")
    ours = program.modules["L"]().double()
    lin = o3.Linear(text(src), text(dst), internal_weights=not external, shared_weights=not external).double()
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(6, lin.irreps_in.dim, generator=gen, dtype=torch.float64)
    if external:
        w = torch.randn(6, lin.weight_numel, generator=gen, dtype=torch.float64)
        expected, got = lin(x, w), ours(x, w)
    else:
        with torch.no_grad():
            ours.y_weight.copy_(torch.randn(lin.weight_numel, generator=gen, dtype=torch.float64))
            lin.weight.copy_(ours.y_weight)
        expected, got = lin(x), ours(x)
    assert (got - expected).abs().max() < 1e-10
