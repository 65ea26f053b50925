"""Shared helpers for the code-generator tests (test_codegen*.py, test_cli_compile.py).

Kept out of a conftest on purpose: import it as `from helpers_codegen import ...`
(pytest puts tests/ on sys.path in rootdir-relative "rootdir" import mode).
"""
from __future__ import annotations

import inspect
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from fusionlang.backend.emit_torch import forward_argument_names
from fusionlang.backend.emit_torch import internal_weight_name as emit_internal_weight_name
from fusionlang.names import derived_name
from fusionlang.reference import evaluate
from fusionlang.verify import graph_rows, random_graph

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "diagrams"
LANGUAGE = ROOT.parent / "shared" / "LANGUAGE.md"
DOCS_COPY = ROOT / "docs" / "language.md"

TOL = 1e-10


@pytest.fixture(autouse=True)
def float64_default():
    """Autouse in the modules that import it: e3nn builds its wigner_3j buffers in the default
    dtype, and float32 would cost 1e-8 of accuracy in comparisons made to 1e-10."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def language_path() -> Path:
    return LANGUAGE if LANGUAGE.exists() else DOCS_COPY


def language_blocks(valid_only: bool = True) -> list[str]:
    """The ```-fenced .fus programs of LANGUAGE.md (without the invalid-on-purpose ones)."""
    blocks = re.findall(r"```\n(.*?)```", language_path().read_text(), re.S)
    blocks = [b for b in blocks if b.lstrip().startswith(("group", "#"))]
    if valid_only:
        blocks = [b for b in blocks if "# error here" not in b]
    return blocks


def example_files() -> list[Path]:
    return sorted(EXAMPLES.glob("*.fus"))


def all_sources() -> list[tuple[str, str]]:
    """(id, text) for every example file and every valid LANGUAGE.md block."""
    out = [(p.name, p.read_text()) for p in example_files()]
    out += [(f"LANGUAGE.md#{k}", text) for k, text in enumerate(language_blocks())]
    return out


def external_vertices(plan):
    return [v for v in plan.vertices if v.external and v.weight_numel]


def forward_names(diagram, plan) -> list[str]:
    """The documented forward signature: inputs in declaration order, then `<out>_weights`."""
    names = forward_argument_names(plan)
    plain = [w for w in diagram.inputs] + [derived_name(f"{v.outputs[0]}_weights") for v in external_vertices(plan)]
    # Names differ from the wires' only where Python needs it (keywords, reserved or colliding names;
    # the wire `_` gives `_weights`, as `__weights` would be mangled inside the class).
    for got, wire in zip(names, plain):
        assert got == wire or (got.startswith(wire) and set(got[len(wire):]) == {"_"}), (got, wire)
    assert len(set(names)) == len(names)
    return names


def internal_weight_name(v, plan=None) -> str:
    return emit_internal_weight_name(plan, v)


def rows_of(diagram, batch: int, domain: str | None) -> int:
    """Leading size of a wire or external weight: the batch, or for a graph diagram V or E."""
    return graph_rows(diagram, batch)[domain] if diagram.is_graph else batch


def make_inputs(diagram, plan, batch: int, seed: int, dtype=torch.float64):
    """Random inputs (complex for SU2) and external weights, as torch tensors keyed by argument name;
    for a graph diagram also a random edge_index (and num_nodes where the forward takes it)."""
    gen = torch.Generator().manual_seed(seed)
    real = torch.float64 if dtype in (torch.float64, torch.complex128) else torch.float32
    args = {}
    names = forward_argument_names(plan)
    for w, name in zip(diagram.inputs, names):
        shape = (rows_of(diagram, batch, diagram.domain(w)), diagram.irreps(w).dim)
        x = torch.randn(shape, generator=gen, dtype=real)
        if diagram.group.is_complex:
            x = torch.complex(x, torch.randn(shape, generator=gen, dtype=real))
        args[name] = x
    for v, name in zip(external_vertices(plan), names[len(diagram.inputs):]):
        args[name] = torch.randn(rows_of(diagram, batch, v.domain), v.weight_numel, generator=gen, dtype=real)
    if diagram.is_graph:
        args["edge_index"] = random_graph(rows_of(diagram, batch, "node"), rows_of(diagram, batch, "edge"), gen)
        if "num_nodes" in names:
            args["num_nodes"] = rows_of(diagram, batch, "node")
    return args


def call(module, names, args):
    """module(*arguments) in forward's order; num_nodes (keyword-only) by name."""
    return module(*[args[n] for n in names if n != "num_nodes"],
                  **({"num_nodes": args["num_nodes"]} if "num_nodes" in names else {}))


def as_tuple(out):
    return out if isinstance(out, tuple) else (out,)


def reference_outputs(module, diagram, plan, args) -> dict:
    """reference.evaluate with the module's own internal weights and the same external weights."""
    params = dict(module.named_parameters())
    weights = {}
    for v in plan.vertices:
        if not v.weight_numel:
            continue
        if v.external:
            name = forward_argument_names(plan)[len(diagram.inputs) + external_vertices(plan).index(v)]
            weights[v.weight_owner or v.outputs[0]] = args[name].detach().numpy()
        else:
            p = params[internal_weight_name(v, plan)]
            assert p.shape == (v.weight_numel,)
            weights[v.weight_owner or v.outputs[0]] = p.detach().to(torch.float64).numpy()
    inputs = {w: args[name].detach().numpy() for w, name in zip(diagram.inputs, forward_argument_names(plan))}
    if diagram.is_graph:
        return evaluate(diagram, inputs, weights, args["edge_index"].numpy(), args.get("num_nodes"))
    return evaluate(diagram, inputs, weights)


def relative_error(got, expected) -> float:
    got = np.asarray(got)
    expected = np.asarray(expected)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    scale = max(float(np.abs(expected).max()) if expected.size else 0.0, 1e-30)
    return float(np.abs(got - expected).max()) / scale if expected.size else 0.0


def module_vs_reference(program, name: str, batch: int = 3, seed: int = 0) -> float:
    """Worst relative error of the float64 module against the reference evaluator, over all outputs."""
    plan = program.plans[name]
    diagram = plan.diagram
    module = program.modules[name]().double()
    names = forward_names(diagram, plan)
    assert list(inspect.signature(module.forward).parameters) == names
    args = make_inputs(diagram, plan, batch, seed)
    with torch.no_grad():
        outs = as_tuple(call(module, names, args))
    expected = reference_outputs(module, diagram, plan, args)
    assert len(outs) == len(diagram.outputs)
    worst = 0.0
    for w, y in zip(diagram.outputs, outs):
        assert y.shape == (rows_of(diagram, batch, diagram.domain(w)), diagram.irreps(w).dim)
        worst = max(worst, relative_error(y.numpy(), expected[w]))
    return worst
