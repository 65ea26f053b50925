"""Golden files for generated code: tests/golden/<example>.py is exactly what `fusionc compile`
writes for examples/diagrams/<example>.fus (torch backend), so that every change to the emitted
code is reviewed as a diff in the commit that makes it.

After an intended change to the generator, rewrite them with

    python -m pytest tests/test_golden_code.py --update-golden     (or FUSION_UPDATE_GOLDEN=1)

and review `git diff tests/golden` before committing (docs/generated-code.md).
"""
from __future__ import annotations

import difflib
import importlib.util
import os
from pathlib import Path

import pytest
import torch

from fusionlang import compile_source
from fusionlang.verify import external_weights, graph_arguments, random_inputs

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).resolve().parent / "golden"
# One of each kind: a plain fuse, an n-ary fuse, a graph diagram, a symmetric fuse, an SU2 program.
EXAMPLES = ["edge_message", "three_body", "mace_interaction", "mace_symmetric_product_basis", "spin_chain"]


def _generated(stem: str) -> str:
    text = (ROOT / "examples" / "diagrams" / f"{stem}.fus").read_text()
    return compile_source(text, file=f"{stem}.fus", backend="torch").python


@pytest.mark.parametrize("stem", EXAMPLES)
def test_generated_code_matches_golden(stem):
    path = GOLDEN / f"{stem}.py"
    got = _generated(stem)
    if os.environ.get("FUSION_UPDATE_GOLDEN") == "1":
        path.write_text(got)
        return
    assert path.exists(), f"{path} is missing; run pytest {__file__} --update-golden"
    expected = path.read_text()
    if got != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), got.splitlines(True),
                                            f"tests/golden/{stem}.py", "generated now", n=2))
        lines = diff.splitlines()
        pytest.fail(f"the generated code of {stem}.fus changed; review it and rewrite the golden file with "
                    f"`pytest tests/test_golden_code.py --update-golden`:\n" + "\n".join(lines[:80])
                    + ("\n..." if len(lines) > 80 else ""))


@pytest.mark.parametrize("stem", EXAMPLES)
def test_golden_file_is_a_working_standalone_module(stem):
    """The golden file runs on its own (torch and the standard library only) and computes what the
    in-process module computes."""
    spec = importlib.util.spec_from_file_location(f"golden_{stem}", GOLDEN / f"{stem}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    program = compile_source((ROOT / "examples" / "diagrams" / f"{stem}.fus").read_text(), backend="torch")
    for name, plan in program.plans.items():
        gen = torch.Generator().manual_seed(0)
        args = [*random_inputs(plan.diagram, 2, gen), *external_weights(plan, 2, gen)]
        graph_args, kwargs = graph_arguments(plan.diagram, 2, gen)
        outs = []
        for cls in (getattr(module, program.modules[name].__name__), program.modules[name]):
            torch.manual_seed(0)
            with torch.no_grad():
                outs.append(cls().double()(*args, *graph_args, **kwargs))
        torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
