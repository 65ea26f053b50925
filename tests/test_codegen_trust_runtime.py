"""Trust in compiled modules at run time (issue 10, items 5 and 8): modules from compile_source /
compile_file are real modules (torch.compile, torch.export, pickle, deepcopy, torch.save/load, also in
a fresh process), and every forward refuses wrong shapes with a message that says what it expected.
"""
from __future__ import annotations

import copy
import importlib
import io
import os
import pickle
import subprocess
import sys

import pytest
import torch

from fusionlang import generated
from fusionlang.api import compile_file, compile_source

from helpers_codegen import ROOT, call, example_files, external_vertices, forward_names, make_inputs

EDGE_MESSAGE = (ROOT / "examples" / "diagrams" / "edge_message.fus").read_text()
RADIAL = (ROOT / "examples" / "diagrams" / "radial_external.fus").read_text()


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    """Each test its own cache folder, so that the fresh-process tests see what this one wrote."""
    monkeypatch.setenv("FUSIONLANG_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


class Net(torch.nn.Module):
    """A user's model that holds a compiled module among ordinary layers."""

    def __init__(self, message: torch.nn.Module):
        super().__init__()
        self.message = message
        self.readout = torch.nn.Linear(144, 4)

    def forward(self, h, y):
        return self.readout(torch.nn.functional.silu(self.message(h, y)))


def _net(file: str = "edge_message.fus"):
    program = compile_source(EDGE_MESSAGE, file=file)
    torch.manual_seed(0)
    net = Net(program.modules["EdgeMessage"]()).double()
    gen = torch.Generator().manual_seed(1)
    args = (torch.randn(5, 144, generator=gen, dtype=torch.float64),
            torch.randn(5, 9, generator=gen, dtype=torch.float64))
    return program, net, args


# ----------------------------------------------------------------------------- 5. real modules


def test_module_is_registered_under_a_deterministic_importable_name():
    program, _, _ = _net()
    cls = program.modules["EdgeMessage"]
    assert cls.__module__ == generated.module_name(program.python)
    assert importlib.import_module(cls.__module__).EdgeMessage is cls
    # the same source gives the same module, in another process too
    assert compile_source(EDGE_MESSAGE, file="edge_message.fus").modules["EdgeMessage"] is cls
    code = ("from fusionlang.api import compile_source; import sys; "
            "print(compile_source(sys.stdin.read(), file='edge_message.fus').modules['EdgeMessage'].__module__)")
    r = subprocess.run([sys.executable, "-c", code], input=EDGE_MESSAGE, capture_output=True, text=True,
                       timeout=300, env=dict(os.environ, PYTHONPATH=str(ROOT), PYTHONHASHSEED="7"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == cls.__module__


def test_torch_compile_fullgraph_of_a_model_holding_a_compiled_module():
    _, net, args = _net()
    with torch.no_grad():
        eager = net(*args)
    torch._dynamo.reset()
    compiled = torch.compile(net, fullgraph=True, backend="aot_eager")
    with torch.no_grad():
        torch.testing.assert_close(compiled(*args), eager, rtol=1e-12, atol=1e-12)


def test_torch_export_of_a_model_holding_a_compiled_module():
    _, net, args = _net()
    exported = torch.export.export(net, args)
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(*args), net(*args), rtol=1e-12, atol=1e-12)


def test_pickle_round_trip():
    _, net, args = _net()
    again = pickle.loads(pickle.dumps(net))
    with torch.no_grad():
        assert torch.equal(again(*args), net(*args))


def test_deepcopy_is_independent():
    _, net, args = _net()
    twin = copy.deepcopy(net)
    with torch.no_grad():
        assert torch.equal(twin(*args), net(*args))
        twin.message.m_weight.add_(1.0)
        assert not torch.equal(twin(*args), net(*args))


def test_torch_save_load_whole_model():
    _, net, args = _net()
    buf = io.BytesIO()
    torch.save(net, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    with torch.no_grad():
        assert torch.equal(loaded(*args), net(*args))


LOAD_IN_FRESH_PROCESS = """
import sys, torch
model = torch.load(sys.argv[1], weights_only=False)
args = torch.load(sys.argv[2])
torch.save(model[0](*args), sys.argv[3])
print(type(model[0]).__module__)
"""


def _save_model(tmp_path, file="fresh.fus"):
    program = compile_source(EDGE_MESSAGE, file=file)
    torch.manual_seed(3)
    model = torch.nn.ModuleList([program.modules["EdgeMessage"]().double()])   # importable everywhere
    args = (torch.randn(4, 144, dtype=torch.float64), torch.randn(4, 9, dtype=torch.float64))
    torch.save(model, tmp_path / "model.pt")
    torch.save(args, tmp_path / "args.pt")
    with torch.no_grad():
        return program, model[0](*args)


def _load_in_fresh_process(tmp_path):
    return subprocess.run([sys.executable, "-c", LOAD_IN_FRESH_PROCESS, "model.pt", "args.pt", "out.pt"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_torch_load_of_a_whole_model_in_a_fresh_process(tmp_path):
    program, expected = _save_model(tmp_path)
    r = _load_in_fresh_process(tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == program.modules["EdgeMessage"].__module__
    assert torch.equal(torch.load(tmp_path / "out.pt"), expected)


def test_a_changed_cache_file_is_not_imported(tmp_path, cache_dir):
    """The fresh process imports the cached source only while it hashes to the module's name."""
    program, _ = _save_model(tmp_path, file="tampered.fus")
    name = program.modules["EdgeMessage"].__module__.rsplit(".", 1)[1]
    cached = cache_dir / "generated" / f"{name}.py"
    assert cached.read_text(encoding="utf-8") == program.python
    cached.write_text(program.python + "\nopen('TAMPERED', 'w').close()\n", encoding="utf-8")
    r = _load_in_fresh_process(tmp_path)
    assert r.returncode != 0 and "ModuleNotFoundError" in r.stderr and name in r.stderr
    assert not (tmp_path / "TAMPERED").exists()


def test_unwritable_cache_warns_and_still_works_in_process(tmp_path, monkeypatch):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    monkeypatch.setenv("FUSIONLANG_CACHE_DIR", str(blocker))
    with pytest.warns(generated.GeneratedCacheWarning):
        program = compile_source(EDGE_MESSAGE, file="unwritable.fus")
    net = Net(program.modules["EdgeMessage"]())
    args = (torch.randn(2, 144), torch.randn(2, 9))
    with torch.no_grad():
        assert torch.equal(pickle.loads(pickle.dumps(net))(*args), net(*args))


def test_a_fifo_in_the_cache_is_replaced_not_read(cache_dir):
    source = compile_source(EDGE_MESSAGE, file="fifo.fus").python
    target = cache_dir / "generated" / (generated.module_name(source).rsplit(".", 1)[1] + ".py")
    target.unlink()
    os.mkfifo(target)
    generated.load(source)            # would block forever reading a FIFO
    assert target.read_text(encoding="utf-8") == source


# ----------------------------------------------------------------------------- 8. shape checks


_PLANS = {}


def module_plan(module):
    return _PLANS[type(module)]


def _module_and_args(path, batch=3):
    program = compile_file(path)
    out = []
    for name, cls in program.modules.items():
        plan = program.plans[name]
        _PLANS[cls] = plan
        args = make_inputs(plan.diagram, plan, batch, seed=0)
        names = forward_names(plan.diagram, plan)
        out.append((name, plan, cls().double(), [args[n] for n in names], names))
    return out


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.name)
def test_every_argument_is_shape_checked(path):
    for name, plan, module, args, names in _module_and_args(path):
        d = plan.diagram
        if d.is_graph:   # rows are V or E there, checked by _check_rows (tests/test_graph_codegen.py)
            graph_case(module, d, args, names)
            continue
        n_inputs = len(d.inputs)
        for k, arg_name in enumerate(names):
            dim = args[k].shape[-1]
            irreps = str(d.irreps(d.inputs[k])) if k < n_inputs else None
            what = f"input `{arg_name}` ({irreps})" if irreps else f"external weights `{arg_name}`"
            wrong = list(args)
            wrong[k] = torch.zeros(3, dim + 1, dtype=args[k].dtype)
            with pytest.raises(ValueError) as info:
                module(*wrong)
            message = str(info.value)
            assert message.startswith(f"{type(module).__name__}: {what} ")
            assert f"last dimension of {dim}; got shape (3, {dim + 1})" in message
            if k > 0:   # a batch that disagrees with the first argument's
                wrong[k] = args[k][:2]
                with pytest.raises(ValueError) as info:
                    module(*wrong)
                assert str(info.value) == (f"{type(module).__name__}: {what} has batch shape (2,), but "
                                           f"`{names[0]}` has (3,); every input and external weight needs "
                                           "the same batch shape")
            wrong[k] = torch.zeros((), dtype=args[k].dtype)      # a 0-d tensor
            with pytest.raises(ValueError, match=f"last dimension of {dim}; got shape \\(\\)"):
                module(*wrong)


def graph_case(module, d, args, names):
    """A graph diagram's forward refuses a wrong last dimension of every input and external weight."""
    values = dict(zip(names, args))
    for k, arg_name in enumerate(names[:len(d.inputs) + len(external_vertices(module_plan(module)))]):
        wrong = dict(values)
        wrong[arg_name] = torch.zeros(values[arg_name].shape[0], values[arg_name].shape[-1] + 1,
                                      dtype=values[arg_name].dtype)
        with pytest.raises(ValueError, match=arg_name):
            call(module, names, wrong)


def test_the_issues_example_batch_mismatch():
    """edge_message.fus with h of shape (2, 144) and y of shape (1, 18) used to give a (2, 144) output."""
    module = compile_source(EDGE_MESSAGE).modules["EdgeMessage"]()
    with pytest.raises(ValueError) as info:
        module(torch.randn(2, 144), torch.randn(1, 18))
    assert str(info.value) == ("EdgeMessage: input `y` (1x0e + 1x1o + 1x2e) needs a last dimension of 9; "
                               "got shape (1, 18)")
    with pytest.raises(ValueError) as info:
        module(torch.randn(2, 144), torch.randn(1, 9))
    assert str(info.value) == ("EdgeMessage: input `y` (1x0e + 1x1o + 1x2e) has batch shape (1,), but `h` has "
                               "(2,); every input and external weight needs the same batch shape")
    # several batch dimensions must agree entirely
    with pytest.raises(ValueError, match="batch shape"):
        module(torch.randn(2, 3, 144), torch.randn(3, 2, 9))
    assert module(torch.randn(2, 3, 144), torch.randn(2, 3, 9)).shape == (2, 3, 144)


def test_external_weights_size_is_checked():
    module = compile_source(RADIAL).modules["RadialMessage"]()
    h, y = torch.randn(4, 32), torch.randn(4, 9)
    numel = module.weight_numel
    assert module(h, y, torch.randn(4, numel)).shape == (4, 72)
    with pytest.raises(ValueError, match=f"external weights `m_weights` needs a last dimension of {numel}; "
                                         f"got shape \\(4, {numel - 1}\\)"):
        module(h, y, torch.randn(4, numel - 1))
    with pytest.raises(ValueError, match="external weights `m_weights` has batch shape \\(1,\\)"):
        module(h, y, torch.randn(1, numel))


def test_shape_checks_under_torch_compile_and_export():
    """The checks are decided while tracing: fullgraph compiles, dynamic batch sizes export, and a
    wrong shape still raises the same error from the compiled module."""
    program = compile_source(RADIAL)
    module = program.modules["RadialMessage"]().double()
    plan = program.plans["RadialMessage"]
    args = make_inputs(plan.diagram, plan, 4, seed=0)
    args = tuple(args[n] for n in forward_names(plan.diagram, plan))
    torch._dynamo.reset()
    compiled = torch.compile(module, fullgraph=True, backend="aot_eager", dynamic=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(*args), module(*args), rtol=1e-12, atol=1e-12)
        five = tuple(torch.cat([a, a[:1]]) for a in args)
        torch.testing.assert_close(compiled(*five), module(*five), rtol=1e-12, atol=1e-12)
    bad = (args[0], torch.zeros(4, 10, dtype=torch.float64), args[2])
    # fullgraph: dynamo reports the raise it traced ("Observed exception") with the message inside
    with pytest.raises(Exception, match="input `y` \\(1x0e \\+ 1x1o \\+ 1x2e\\) needs a last dimension of 9"):
        compiled(*bad)
    # without fullgraph the ValueError itself comes out
    torch._dynamo.reset()
    with pytest.raises(ValueError, match="needs a last dimension of 9; got shape \\(4, 10\\)"):
        torch.compile(module, backend="aot_eager")(*bad)
    batch = torch.export.Dim("batch")
    exported = torch.export.export(module, args, dynamic_shapes=tuple({0: batch} for _ in args))
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(*five), module(*five), rtol=1e-12, atol=1e-12)
