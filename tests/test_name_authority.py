"""One name authority (issue 11, item 4): the generated module, its docstring, the picture and
`fusionc plan` name every wire, weight argument and weight parameter the same way, because all of
them read fusionlang.names.ModuleNames.  Each test reads the names back from the artefact a user
sees (inspect.signature and named_parameters of the class, the DOT text, the plan text, the class
docstring) and compares them with each other, for wire names that Python makes awkward."""
from __future__ import annotations

import inspect
import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fusionlang import compile_source
from fusionlang import names as pynames
from fusionlang.cli.commands import format_plan
from fusionlang.backend.emit_torch import forward_argument_names, internal_weight_name, module_names
from fusionlang.render import to_dot

# A diagram whose six names the tests choose: D the class, a and b inputs, t an internal-weight
# fuse, o an external-weight fuse, p a linear (internal weights) and q a second external fuse.
PROGRAM = """group O3
diagram {D} {{
    in   {a} : 2x0e + 1o
    in   {b} : 1o
    wire {t} : 2x0e + 1o + 1e
    out  {o} : 0e + 1o
    out  {p} : 2x1o
    out  {q} : 1e
    {t} = fuse({a}, {b}) [weights=uvw]
    {o} = fuse({t}, {b}) [weights=uvw, external]
    {p} = linear({t})
    {q} = fuse({a}, {b}) [weights=uvw, external]
}}
"""

GRAPH = """group O3
diagram {D} {{
    in   {h} : 4x0e + 4x1o per node
    in   {y} : 0e + 1o per edge
    out  {s} : 4x0e + 4x1o per node
    wire {hs} : 4x0e + 4x1o per edge
    wire {m} : 4x0e + 4x1o per edge
    wire {l} : 4x0e + 4x1o per edge
    {hs} = gather({h}, sender)
    {l} = linear({hs})
    {m} = fuse({l}, {y}) [weights=uvu, external]
    {s} = scatter({m}, receiver)
}}
"""


def _seen(program, name: str) -> dict:
    """The names as each artefact shows them."""
    plan = program.plans[name]
    cls = program.modules[name]
    headline = next(line for line in format_plan(program).splitlines() if line.startswith(f"diagram {name} "))
    diagram = next(d for d in program.diagrams if d.name == name)
    return {
        "signature": [p for p in inspect.signature(cls.forward).parameters if p != "self"],
        "parameters": [n for n, _ in cls().named_parameters()],
        "plan external": re.findall(r"(\w+) \[(?:\.\.\.|V|E), \d+\]", headline),
        "plan internal": re.findall(r"(\w+) \[\d+\]", headline),
        "picture external": re.findall(r"label=<(\w+)<br/><i>external</i>>", to_dot(diagram)),
        "docstring inputs": re.findall(r"^\s+input\s+(\w+)", cls.__doc__, re.M),
        "docstring weights": re.findall(r"^\s+weight\s+(\w+)", cls.__doc__, re.M),
        "plan": plan,
    }


def _agree(program, name: str) -> dict:
    seen = _seen(program, name)
    plan = seen["plan"]
    d = plan.diagram
    weighted = [v for v in plan.vertices if v.weight_numel]
    external = [v for v in weighted if v.external]
    internal = [v for v in weighted if not v.external]
    args = forward_argument_names(plan)
    assert seen["signature"] == args
    ext_args = args[len(d.inputs):len(d.inputs) + len(external)]
    assert seen["plan external"] == ext_args
    assert sorted(seen["picture external"]) == sorted(ext_args)
    assert seen["docstring inputs"][:len(d.inputs)] == args[:len(d.inputs)]
    assert seen["docstring inputs"][len(d.inputs):] == ext_args + (["edge_index"] if d.is_graph else [])
    params = [internal_weight_name(plan, v) for v in internal]
    assert sorted(seen["parameters"]) == sorted(params)
    assert seen["plan internal"] == params == seen["docstring weights"]
    # Arguments and parameters distinct identifiers that Python will not mangle inside the class (the
    # class's own name is a module global, which a local of forward may share).
    every = args + params
    assert len(set(every)) == len(every)
    assert all(n.isidentifier() and not n.startswith("__") for n in every + [program.modules[name].__name__])
    return seen


@pytest.mark.parametrize("names,external,internal", [
    # A keyword wire: the argument is `lambda_`, its weights `lambda_weights` (the wire's own name).
    (dict(D="D", a="lambda", b="b", t="t", o="lambda_", q="q", p="p"),
     ["lambda__weights", "q_weights"], ["t_weight", "p_weight"]),
    # Weight names meeting wires and each other after escaping.
    (dict(D="D", a="o_weights", b="t_weight", t="t", o="o", q="o_weights_", p="p"),
     ["o_weights__", "o_weights__weights"], ["t_weight_", "p_weight"]),
    # `_` and names ending in an underscore; reserved names as wires.
    (dict(D="class", a="self", b="self_", t="_", o="type", q="_weights", p="torch"),
     ["type_weights", "_weights_weights"], ["_weight", "torch_weight"]),
])
def test_tricky_names_agree_everywhere(names, external, internal):
    program = compile_source(PROGRAM.format(**names))
    seen = _agree(program, names["D"] if names["D"] != "class" else "class")
    assert seen["plan external"] == external
    assert seen["plan internal"] == internal


def test_the_wire_underscore_gets_one_leading_underscore_in_the_picture_too():
    """The picture used to say `__weights` where the argument is `_weights` (names.derived_name)."""
    program = compile_source(PROGRAM.format(D="D", a="a", b="b", t="t", o="_", q="q", p="p"))
    seen = _agree(program, "D")
    assert "_weights" in seen["picture external"] and "__weights" not in seen["picture external"]


def test_a_weights_argument_that_meets_an_input_is_renamed_in_the_picture_too():
    """An input `o_weights` beside the external fuse `o`: the argument is `o_weights_` in the module,
    the plan and the picture (the picture used to say `o_weights`, the input's name)."""
    program = compile_source(PROGRAM.format(D="D", a="o_weights", b="b", t="t", o="o", q="q", p="p"))
    seen = _agree(program, "D")
    assert "o_weights_" in seen["picture external"] and seen["signature"][0] == "o_weights"


def test_docstring_names_the_wire_where_python_renames_it():
    program = compile_source(PROGRAM.format(D="D", a="lambda", b="b", t="t", o="o", q="q", p="p"))
    assert "input  lambda_ (wire `lambda`) : " in program.modules["D"].__doc__


def test_graph_diagram_with_a_moved_linear_keeps_the_written_weight_name():
    """The planner moves `l = linear(hs)` to the nodes (a new wire); its parameter keeps the name
    of the wire written in the diagram, and the new wire takes no name the diagram's wires have."""
    names = dict(D="G", h="h", y="lambda", s="s", hs="hs", m="m", l="l")
    program = compile_source(GRAPH.format(**names))
    plan = program.plans["G"]
    assert plan.rewrites, "the planner was expected to move the linear"
    seen = _agree(program, "G")
    assert seen["plan internal"] == ["l_weight"] and seen["plan external"] == ["m_weights"]
    table = module_names(plan)
    added = [w for w in plan.emitted.wires if w not in plan.diagram.wires]
    assert added and len(set(table.wires.values())) == len(table.wires)


USABLE = st.sampled_from(["a", "b", "x", "lambda", "class", "self", "self_", "_", "_weights", "_weight",
                          "x_weights", "x_weight", "x_weights_", "type", "torch", "batch", "dtype", "o",
                          "o_weights", "o_weight", "p_weight", "q_weights", "t", "irreps_in", "weight_numel"])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(USABLE, min_size=7, max_size=7, unique=True))
@example(["D", "o_weights", "q_weights", "t", "o", "q", "p"])
def test_names_agree_for_any_names(names):
    fields = dict(zip("Dabtoqp", names))
    program = compile_source(PROGRAM.format(**fields))
    _agree(program, fields["D"])


def test_module_names_alone_matches_the_module():
    """names.ModuleNames is the only source: built from the plain names, it gives the module's."""
    program = compile_source(PROGRAM.format(D="D", a="o_weights", b="self", t="t", o="o", q="q", p="p"))
    plan = program.plans["D"]
    table = pynames.ModuleNames("D", list(plan.diagram.wires), external=["o", "q"], internal=["t", "p"])
    assert table.weight_arguments == {"o": "o_weights_", "q": "q_weights"}
    assert table.weight_parameters == {"t": "t_weight", "p": "p_weight"}
    assert table.wires["self"] == "self_"
    assert forward_argument_names(plan) == ["o_weights", "self_", "o_weights_", "q_weights"]
