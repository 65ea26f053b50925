"""Issue 10, items 2-3: `check` bounds everything a compile would allocate or compute, with a located
F054/F055/F056 (never rc 3), limits that a user can raise, and a mirror of the planner that agrees with
the planner (fusionlang/cost/budget.py).  Limits: docs/limits.md."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from fusionlang import Limits, analyze
from fusionlang.cost import budget
from fusionlang.ir import weight_mode
from fusionlang.symmetry.groups import GROUPS, Irreps, MulIrrep
from fusionlang.symmetry.paths import fuse_paths, left_deep_labels

ROOT = Path(__file__).resolve().parents[1]
HUGE = Limits(weights=1 << 60, constants=1 << 60, literals=1 << 60, intermediates=1 << 60, work=1 << 60,
              check_work=1 << 60)


def fusionc(*args, cwd=None, timeout=120):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "fusionlang", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=timeout)
    proc.elapsed = time.perf_counter() - start
    return proc


def diagram(inputs: dict[str, str], out: str, call: str) -> str:
    decls = "\n".join(f"    in {name} : {irreps}" for name, irreps in inputs.items())
    return f"group O3\ndiagram D {{\n{decls}\n    out y : {out}\n    y = {call}\n}}\n"


# Every example of the issue, and what the checker must say (code, words of the message).
ISSUE_EXAMPLES = {
    "uvw_65536": (diagram({"x": "65536x0e", "s": "0e"}, "65536x0e", "fuse(x, s) [weights=uvw]"),
                  "F056", "4,294,967,296 weights"),
    "self_fuse_4096": (diagram({"x": "4096x(0e + 1o + 2e + 3o)"}, "4096x(0e + 1o + 2e + 3o)", "fuse(x, x)"),
                       "F056", "weights"),
    "inner_13e": (diagram({"a": "7e"}, " + ".join(f"{l}e" for l in range(13)), "fuse(a, a, a)"),
                  "F055", "14e"),
    "twelve_1o": (diagram({"a": "1o"}, "0e", "fuse(" + ", ".join(["a"] * 12) + ")"), "F056", "work"),
    "linear_65536_65536": (diagram({"x": "65536x(65536x0e)"}, "0e", "linear(x)"), "F022", "4,294,967,296"),
}
for n in (16, 20, 24, 40):
    ISSUE_EXAMPLES[f"{n}_operands"] = (diagram({"a": "1o"}, "0e + 1o + 1e + 2e", "fuse(" + ", ".join(["a"] * n) + ")"),
                                       "F05", "")


@pytest.mark.parametrize("name", sorted(ISSUE_EXAMPLES))
def test_issue_examples_are_located_errors(name, tmp_path):
    text, code, words = ISSUE_EXAMPLES[name]
    path = tmp_path / f"{name}.fus"
    path.write_text(text)
    proc = fusionc("check", path)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    assert f"error[{code}" in proc.stderr and words in proc.stderr, proc.stderr
    assert proc.elapsed < 20, "a hang, not a diagnostic"          # well under a second when the machine is idle
    if code in ("F055", "F056"):       # at the vertex, with a way out
        line = text.splitlines().index(next(t for t in text.splitlines() if t.startswith("    y = "))) + 1
        assert f"{path}:{line}:9" in proc.stderr
        assert "help:" in proc.stderr
    # The compiler answers the same way (rc 1 with the diagnostic), never with rc 3.
    compiled = fusionc("compile", path, "-o", tmp_path / "out.py")
    assert compiled.returncode == 1 and f"error[{code}" in compiled.stderr
    assert not (tmp_path / "out.py").exists()


def test_checking_an_issue_example_does_little_work(monkeypatch):
    """The time of checking is bounded by counting before enumerating: 16 operands of 1o would build
    hundreds of millions of partial coupling trees."""
    import fusionlang.frontend.check as check_module
    import fusionlang.symmetry.paths as paths_module
    counted, enumerated = [], []
    census, labels = check_module.fuse_census, paths_module.left_deep_labels
    monkeypatch.setattr(check_module, "fuse_census", lambda *a: counted.append(a) or census(*a))
    monkeypatch.setattr(paths_module, "left_deep_labels", lambda *a: enumerated.append(a) or labels(*a))
    result = analyze(ISSUE_EXAMPLES["16_operands"][0])
    assert [d.code for d in result.diagnostics] == ["F056"]
    assert counted and not enumerated


def test_weights_help_names_the_modes_that_fit_and_the_option():
    result = analyze(ISSUE_EXAMPLES["uvw_65536"][0])
    (d,) = result.diagnostics
    assert "`weights=uvu` (65,536 weights)" in d.help and "--limit weights=" in d.help
    assert "limits={'weights'" in d.help


def test_limits_can_be_raised_and_lowered(tmp_path):
    text = diagram({"x": "64x0e", "s": "0e"}, "64x0e", "fuse(x, s) [weights=uvw]")     # 4,096 weights
    path = tmp_path / "d.fus"
    path.write_text(text)
    assert fusionc("check", path).returncode == 0
    low = fusionc("check", "--limit", "weights=4095", path)
    assert low.returncode == 1 and "4,096 weights" in low.stderr and "4,095" in low.stderr
    assert fusionc("check", "--limit", "weights=4096", path).returncode == 0
    assert not analyze(text, limits={"weights": 4095}).ok
    assert analyze(text, limits=Limits(weights=4096)).ok
    bad = fusionc("check", "--limit", "wieghts=5", path)
    assert bad.returncode == 2 and "weights" in bad.stderr and "Traceback" not in bad.stderr
    bad = fusionc("check", "--limit", "weights=lots", path)
    assert bad.returncode == 2 and "not a whole number" in bad.stderr


def test_limits_parse():
    assert Limits.parse(["weights=1e9", "work=2**30", "literals=1_000"]) == \
        Limits(weights=10**9, work=2**30, literals=1000)
    with pytest.raises(ValueError):
        Limits.parse(["weights=0"])
    with pytest.raises(ValueError):
        Limits.parse(["weights"])


def test_source_size_limit_is_raisable(tmp_path):
    text = "group O3\n" + "# padding\n" * 300
    assert [d.code for d in analyze(text, limits={"source_bytes": 1000}).diagnostics] == ["F005"]
    path = tmp_path / "big.fus"
    path.write_text(text + "diagram D {\n    in a : 0e\n    out b : 0e\n    b = fuse(a, a)\n}\n")
    assert fusionc("check", "--limit", "source_bytes=1000", path).returncode == 1
    assert fusionc("check", "--limit", "source_bytes=10000", path).returncode == 0


def test_totals_are_per_file():
    """Two vertices each under the limit, together over it: the error is at the second."""
    one = "    y{k} = fuse(x, s) [weights=uvw]\n"
    text = ("group O3\ndiagram D {\n    in x : 64x0e\n    in s : 0e\n    out y0 : 64x0e\n    out y1 : 64x0e\n"
            + one.format(k=0) + one.format(k=1) + "}\n")
    assert analyze(text, limits={"weights": 8192}).ok
    (d,) = analyze(text, limits={"weights": 8191}).diagnostics
    assert d.code == "F056" and d.span.line == 8 and "4,096 of the vertices before it" in d.message


def test_mirror_constants_match_planner():
    assert budget.PLAN_BATCH == __import__("fusionlang.backend.plan", fromlist=["PLAN_BATCH"]).PLAN_BATCH
    from fusionlang.backend import plan
    from fusionlang.cost import contract_order
    assert budget.MAX_FUSE_INPUTS == plan.MAX_FUSE_INPUTS
    assert budget.EDGES_PER_NODE == plan.EDGES_PER_NODE
    assert budget.CHANNEL_LETTERS == plan._CHANNEL_LETTERS and budget.COMPONENT_LETTERS == plan._COMPONENT_LETTERS
    assert budget.OPERATOR_COST_SCALE == plan.OPERATOR_COST_SCALE
    assert budget.OP_OVERHEAD_FLOPS == plan.OP_OVERHEAD_FLOPS
    assert budget.WRITE_WEIGHT == contract_order.WRITE_WEIGHT
    assert budget.EXHAUSTIVE_LIMIT == contract_order.EXHAUSTIVE_LIMIT
    assert budget.BMM_FLOP_WEIGHT == contract_order.BMM_FLOP_WEIGHT
    assert budget.STEP_COST_PER_ELEMENT == 2 + contract_order.WRITE_WEIGHT + 3 * contract_order.COPY_WEIGHT
    assert contract_order.MULSUM_WEIGHT <= budget.STEP_COST_PER_ELEMENT


# -- the mirror agrees with the planner ------------------------------------------------------------

TERMS = st.lists(st.tuples(st.integers(1, 3), st.integers(0, 2), st.sampled_from("eo")), min_size=1, max_size=3)


def _irreps(terms) -> str:
    return " + ".join(f"{m}x{l}{p}" for m, l, p in terms)


@st.composite
def vertices(draw):
    n = draw(st.integers(2, 3))
    wires = [draw(TERMS) for _ in range(n)]
    mode = draw(st.sampled_from(["uvw", "uvu", "uuu", "none"]))
    external = mode != "none" and draw(st.booleans())
    group = GROUPS["O3"]
    reach = {}
    for choice in __import__("itertools").product(*wires):
        irreps = [group.parse_label(f"{l}{p}") for _, l, p in choice]
        muls = [m for m, _, _ in choice]
        for _, final in left_deep_labels(group, irreps):
            want = {"uvw": draw(st.integers(1, 3)), "uvu": muls[0], "uuu": muls[0],
                    "none": int(np.prod(muls))}[mode]
            reach.setdefault(str(final), want)
    keep = draw(st.lists(st.sampled_from(sorted(reach)), min_size=1, max_size=3, unique=True))
    out = " + ".join(f"{reach[k]}x{k}" for k in keep)
    inputs = {f"x{r}": _irreps(w) for r, w in enumerate(wires)}
    options = f"weights={mode}" + (", external" if external else "")
    return diagram(inputs, out, f"fuse({', '.join(inputs)}) [{options}]")


def _planned_numbers(vp):
    """What the planner's choice holds: dense constant elements, numbers written as literals, and the
    elements its forward writes at the planning batch (pairwise plans record it)."""
    from fusionlang.backend.emit_torch import _contiguous
    dense = literals = 0
    for c in vp.contractions:
        if c.constant.ndim:
            dense += c.constant.size
            literals += np.count_nonzero(c.constant)
        if c.scatter is not None:
            dense += c.scatter.size
            literals += np.count_nonzero(c.scatter)
        if c.weight_index is not None and not _contiguous(c.weight_index.reshape(-1)):
            dense += c.weight_index.size
            literals += c.weight_index.size
    for b in vp.operator_blocks:
        dense += b.operator.size
        literals += np.count_nonzero(b.operator)
        if not _contiguous(b.weight_index.reshape(-1)):
            dense += b.weight_index.size
            literals += b.weight_index.size
    return dense, literals, sum(c.written for c in vp.contractions)


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(vertices())
def test_mirror_agrees_with_the_planner(text):
    from fusionlang.symmetry.paths import vertex_paths
    from fusionlang.backend.plan import plan_vertex
    result = analyze(text, limits=HUGE)
    assume(result.ok)
    d = result.diagrams[0]
    node, data = d.vertices()[0]
    ins = [d.irreps(w) for w in data["inputs"]]
    outs = [d.irreps(w) for w in data["outputs"]]
    paths = vertex_paths(d.group, "fuse", ins, outs)
    mode = weight_mode(data, d)
    budget._KNOWN.clear()
    bounds = budget.vertex_cost(d.group, "fuse", mode, data["external"], ins, outs, paths, HUGE)
    forced = budget.vertex_cost(d.group, "fuse", mode, data["external"], ins, outs, paths, HUGE,
                                room=budget.Cost(1 << 60, 0, 0, 1 << 60, 1 << 60, literals=0))
    vp = plan_vertex(d, node, data, budget.PLAN_BATCH)
    dense, literals, written = _planned_numbers(vp)
    assert forced.exact
    assert forced.constants == dense
    assert forced.weights == (0 if data["external"] else vp.weight_numel)
    assert literals <= forced.literals <= bounds.literals
    assert dense <= bounds.constants
    if not vp.operator_blocks:
        assert forced.intermediates == written
    assert written <= bounds.intermediates


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(TERMS, min_size=2, max_size=5), TERMS)
def test_census_counts_what_fuse_paths_enumerates(wires, out_terms):
    group = GROUPS["O3"]
    ins = [Irreps(MulIrrep(m, group.parse_label(f"{l}{p}")) for m, l, p in w) for w in wires]
    out = Irreps(MulIrrep(m, group.parse_label(f"{l}{p}")) for m, l, p in out_terms)
    census = budget.fuse_census(group, ins, out)
    assert census.paths == len(fuse_paths(group, ins, out))
    built = sum(len(prefix) for choice in __import__("itertools").product(*[range(len(w)) for w in ins])
                for prefix in _prefix_labelings(group, [ins[r][c].irrep for r, c in enumerate(choice)]))
    assert census.steps == built + np.prod([len(w) for w in ins])


def _prefix_labelings(group, irreps):
    partial = [((), irreps[0])]
    yield partial
    for nxt in irreps[1:]:
        partial = [(inner + (acc,), o) for inner, acc in partial for o in group.product(acc, nxt)]
        yield partial


def test_census_finds_inner_irreps_beyond_the_limit_only_on_paths():
    group = GROUPS["O3"]
    a = Irreps([MulIrrep(1, group.parse_label("7e"))])
    # 7e x 7e reaches 14e, and 14e x 7e reaches 7e..21e: beyond the limit on the way to 7e.
    census = budget.fuse_census(group, [a, a, a], Irreps([MulIrrep(1, group.parse_label("7e"))]))
    assert census.inner_beyond is not None and census.inner_beyond.two_j == 28
    # With the output 0e only 7e is inner: nothing beyond.
    zero = Irreps([MulIrrep(1, group.parse_label("0e"))])
    assert budget.fuse_census(group, [a, a, a], zero).inner_beyond is None


@pytest.mark.parametrize("group_name", ["SO3", "SU2"])
def test_nonzero_bound_of_coupling_tensors(group_name):
    """budget._Vertex.coefficients: at most 2 (real) or 1 (complex) nonzero entries per pair of fixed indices."""
    from fusionlang.symmetry.coupling import cg
    group = GROUPS[group_name]
    per_pair = 1 if group.is_complex else 2
    step = 1 if group.allows_half else 2
    for a in range(0, 13, step):
        for b in range(0, 13, step):
            for c in range(abs(a - b), a + b + 1, 2):
                if c > 24:
                    continue
                ia, ib, ic = (group.parse_label(_label(group, x)) for x in (a, b, c))
                t = cg(group_name, ia, ib, ic)
                nonzero = np.count_nonzero(np.abs(t) > 1e-14)
                assert nonzero <= per_pair * min((a + 1) * (b + 1), (a + 1) * (c + 1), (b + 1) * (c + 1))


def _label(group, two_j):
    return f"{two_j}/2" if two_j % 2 else str(two_j // 2)


def test_what_check_accepts_compiles_near_the_limits(tmp_path):
    """A vertex just under each limit compiles; one just over is an error, not a crash."""
    from fusionlang.api import compile_source
    text = diagram({"x": "32x(0e + 1o)", "s": "0e + 1o + 2e"}, "32x(0e + 1o)", "fuse(x, s) [weights=uvw]")
    result = analyze(text)
    assert result.ok
    d = result.diagrams[0]
    from fusionlang.symmetry.paths import vertex_paths
    node, data = d.vertices()[0]
    ins = [d.irreps(w) for w in data["inputs"]]
    outs = [d.irreps(w) for w in data["outputs"]]
    cost = budget.vertex_cost(d.group, "fuse", "uvw", False, ins, outs, vertex_paths(d.group, "fuse", ins, outs),
                              Limits())
    for name in ("weights", "constants", "literals"):
        exact = getattr(cost, name)
        program = compile_source(text, limits={name: exact})
        assert program.modules["D"]().forward is not None
        assert not analyze(text, limits={name: exact - 1}).ok


def test_fuse_of_many_inputs_compiles_and_is_equivariant():
    """The planner names a fuse's indices with letters that cannot collide (7 and more inputs used to
    produce a wrong einsum)."""
    from fusionlang.api import compile_source
    from fusionlang.verify import equivariance_error
    text = diagram({"a": "2x0e", "b": "1o"}, "2x0e + 2x1e", "fuse(a, b, b, b, b, b, b) [weights=uvu]")
    program = compile_source(text)
    err = equivariance_error(program.modules["D"](), program.plans["D"].diagram, program.plans["D"], trials=2)
    assert err < 1e-5


def test_graph_and_symmetric_examples_are_bounded_above():
    """Graph diagrams (edge vertices planned for EDGES_PER_NODE times the rows, then rewritten) and
    symmetric fuses are checked with bounds: a limit just under what the planner chooses is refused."""
    from fusionlang.frontend.check import check
    from fusionlang.backend.plan import plan_diagram
    checked = 0
    for path in sorted((ROOT / "examples" / "diagrams").glob("*.fus")):
        text = path.read_text()
        if "per edge" not in text and "symmetric" not in text:
            continue
        result = analyze(text)
        assert result.ok, path.name
        for d in result.diagrams:
            if d.is_closed:
                continue
            plan = plan_diagram(d)
            written = sum(c.written for v in plan.vertices for c in v.contractions)
            for name, planned in (("intermediates", written), ("weights", plan.weight_numel)):
                if planned > 0:
                    codes = [x.code for x in check([d], limits={name: planned - 1})]
                    assert "F056" in codes, (path.name, name, planned)
                    checked += 1
    assert checked >= 4


def test_a_file_limit_is_reported_once_with_a_count():
    one = "    y{k} = fuse(x, s) [weights=uvw]\n"
    text = ("group O3\ndiagram D {\n    in x : 64x0e\n    in s : 0e\n"
            + "".join(f"    out y{k} : 64x0e\n" for k in range(4)) + "".join(one.format(k=k) for k in range(4)) + "}\n")
    (d,) = analyze(text, limits={"weights": 4096}).diagnostics
    assert d.code == "F056" and d.span.line == 10
    assert d.notes == [("2 more vertices after it would go over this limit too (reported once per file)", None)]
