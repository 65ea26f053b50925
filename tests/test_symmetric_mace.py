"""Our symmetric vertex against mace-torch's SymmetricContraction (runs where mace-torch is importable;
skipped otherwise; see docs/performance.md for the virtual environment that has it).

MACE's correlation-3 block for `0e + 1o + 2e + 3o` into `0e + 1o` has one weight per complete path
(74 per channel); its functions span a space of rank 20, the same space as our
`fuse(A, A, A) [weights=uuu, symmetric]` with its 20 weights.  Shown by least-squares fits both ways
on random inputs, in float64, one channel.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

mace_sc = pytest.importorskip("mace.modules.symmetric_contraction")   # before e3nn: mace sets up torch.load
o3 = pytest.importorskip("e3nn.o3")

from fusionlang.api import compile_source  # noqa: E402

IRREPS = "0e + 1o + 2e + 3o"


@pytest.fixture(autouse=True)
def float64_default():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def _mace_correlation3_features(x):
    """Column k: MACE's output with the k-th correlation-3 weight set to 1 and every other weight 0."""
    block = mace_sc.SymmetricContraction(o3.Irreps("1x0e + 1x1o + 1x2e + 1x3o"), o3.Irreps("1x0e + 1x1o"),
                                         correlation=3, num_elements=1)
    y = torch.ones(len(x), 1)
    columns = []
    with torch.no_grad():
        for p in block.parameters():
            p.zero_()
        for contraction in block.contractions:          # one per output irrep
            weights = contraction.weights_max            # [elements, correlation-3 weights, channels]
            for k in range(weights.shape[1]):
                weights.zero_()
                weights[0, k, 0] = 1.0
                columns.append(block(x[:, None, :], y).numpy())
            weights.zero_()
    return np.stack(columns, axis=-1), [c.weights_max.shape[1] for c in block.contractions]


def _our_features(x):
    text = f"group O3\ndiagram D {{\n    in A : {IRREPS}\n    out B : 0e + 1o\n    B = fuse(A, A, A) [weights=uuu, symmetric]\n}}\n"
    program = compile_source(text)
    module = program.modules["D"]().double()
    columns = []
    with torch.no_grad():
        for k in range(program.plans["D"].weight_numel):
            module.B_weight.zero_()
            module.B_weight[k] = 1.0
            columns.append(module(x).numpy())
    return np.stack(columns, axis=-1)


def test_symmetric_vertex_spans_the_functions_of_mace_symmetric_contraction():
    x = torch.randn(40, 16, generator=torch.Generator().manual_seed(0))
    theirs, counts = _mace_correlation3_features(x)
    ours = _our_features(x)
    assert counts == [23, 51]                        # MACE: one weight per complete path
    assert ours.shape[-1] == 20                      # ours: the rank of Sym^3 into 0e + 1o
    T, S = theirs.reshape(-1, theirs.shape[-1]), ours.reshape(-1, ours.shape[-1])
    scale = np.abs(T).max()
    for a, b in ((S, T), (T, S)):                   # each fitted by the other
        fit = np.linalg.lstsq(a, b, rcond=None)[0]
        assert np.abs(a @ fit - b).max() < 1e-10 * scale
    # MACE's 74 weights span no more than our 20.
    assert np.linalg.matrix_rank(T, tol=1e-9 * scale * np.sqrt(T.shape[0])) == 20
