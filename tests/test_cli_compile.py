"""The command line around the code generator: compile, plan, verify, eval, build."""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch

from fusionlang.api import compile_file
from fusionlang.cli import main

from helpers_codegen import EXAMPLES, ROOT, example_files, language_blocks

THETA = next(t for t in language_blocks() if "diagram Theta" in t)


def fusionc(*args, cwd=None):
    """`python -m fusionlang ARGS` in a fresh process."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "fusionlang", *map(str, args)], cwd=cwd or ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def _import(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ----------------------------------------------------------------------------- compile


def test_compile_writes_importable_module(tmp_path):
    out = tmp_path / "edge.py"
    r = fusionc("compile", EXAMPLES / "edge_message.fus", "-o", out)
    assert r.returncode == 0, r.stderr
    assert out.exists()
    assert out.read_text() == compile_file(EXAMPLES / "edge_message.fus").python
    mod = _import(out, "cli_edge")
    m = mod.EdgeMessage()
    assert m(torch.randn(3, 144), torch.randn(3, 9)).shape == (3, 144)
    assert "edge.py" in r.stderr and "EdgeMessage" in r.stderr


def test_compile_several_diagrams_in_process(tmp_path, capsys):
    out = tmp_path / "vp.py"
    assert main(["compile", str(EXAMPLES / "so3_vector_products.fus"), "-o", str(out)]) == 0
    mod = _import(out, "cli_vp")
    assert sorted(mod.__all__) == ["CrossProduct", "VectorProducts"]


def test_compile_closed_only_file_writes_module_without_classes(tmp_path):
    out = tmp_path / "theta.py"
    src = tmp_path / "theta.fus"
    src.write_text(THETA)
    assert main(["compile", str(src), "-o", str(out)]) == 0
    mod = _import(out, "cli_theta")
    assert mod.__all__ == []
    assert "Theta" in out.read_text()          # mentioned as a closed diagram


def test_compile_errors_exit_1_and_write_nothing(tmp_path):
    # A subprocess: cli._report binds sys.stderr as a default argument at import time, so
    # pytest's capsys/capfd cannot see the diagnostics in process.
    src = tmp_path / "bad.fus"
    src.write_text(next(b for b in language_blocks(valid_only=False) if "# error here" in b))
    out = tmp_path / "bad.py"
    r = fusionc("compile", src, "-o", out)
    assert r.returncode == 1
    assert not out.exists()
    assert "bad.fus:6:" in r.stderr and "Traceback" not in r.stderr


def test_compile_missing_file_exits_2(tmp_path, capsys):
    assert main(["compile", str(tmp_path / "nope.fus"), "-o", str(tmp_path / "x.py")]) == 2
    assert "no such file" in capsys.readouterr().err


# ----------------------------------------------------------------------------- plan


_TOTAL = re.compile(r"total FLOPs ([\d,]+) vs naive ([\d,]+) \(([\d.]+)x\)")


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.name)
def test_plan_prints_chosen_and_naive_flops(path, capsys):
    assert main(["plan", str(path)]) == 0
    text = capsys.readouterr().out
    program = compile_file(path)
    totals = _TOTAL.findall(text)
    assert len(totals) == len(program.plans)
    for (chosen, naive, ratio), plan in zip(totals, program.plans.values()):
        chosen, naive = int(chosen.replace(",", "")), int(naive.replace(",", ""))
        assert chosen == plan.flops > 0 and naive == plan.naive_flops > 0
        assert abs(float(ratio) - naive / chosen) < 0.01
    for name in program.plans:
        assert f"diagram {name} (" in text
    closed = [d.name for d in program.diagrams if d.is_closed]
    if closed:
        assert "closed diagrams" in text and all(n in text for n in closed)


_MODELLED = re.compile(r"modelled cost ([\d,]+) vs naive ([\d,]+)")


def test_plan_edge_message_beats_naive(capsys):
    """The planner minimises modelled time (FLOPs, memory written, calls), not FLOPs alone."""
    assert main(["plan", str(EXAMPLES / "edge_message.fus"), "--batch", "256"]) == 0
    text = capsys.readouterr().out
    (chosen, naive), = _MODELLED.findall(text)
    assert int(chosen.replace(",", "")) < int(naive.replace(",", ""))
    assert "batch 256" in text


def test_plan_subprocess():
    r = fusionc("plan", EXAMPLES / "three_body.fus")
    assert r.returncode == 0, r.stderr
    assert _TOTAL.search(r.stdout)


# ----------------------------------------------------------------------------- verify


_VERIFY = re.compile(r"^(\S+)\s+worst equivariance error (\S+)\s+(ok|FAILED)$", re.M)


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.name)
def test_verify_examples(path, capsys):
    code = main(["verify", str(path), "--trials", "2"])
    out = capsys.readouterr().out
    program = compile_file(path)
    rows = _VERIFY.findall(out)
    assert [r[0] for r in rows] == list(program.modules)
    for name, err, status in rows:
        assert status == "ok" and float(err) <= 1e-9, (name, err)
    if not program.modules:
        assert "no open diagrams" in out
    assert code == 0


def test_verify_subprocess():
    r = fusionc("verify", EXAMPLES / "interaction_block.fus")
    assert r.returncode == 0, r.stderr
    (name, err, status), = _VERIFY.findall(r.stdout)
    assert name == "Interaction" and status == "ok" and float(err) <= 1e-9


# ----------------------------------------------------------------------------- eval


def test_eval_theta_prints_3(tmp_path):
    src = tmp_path / "theta.fus"
    src.write_text(THETA)
    r = fusionc("eval", src, "--diagram", "Theta")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0] == "Theta = 3"
    assert float(lines[1].split("~")[1]) == 3.0


@pytest.mark.parametrize("name,exact", [("su2_tetrahedron.fus:Tetrahedron", "-sqrt(6)"),
                                        ("su2_ninej.fus:NineJ", "15/4")])
def test_eval_examples(name, exact, capsys):
    file, diagram = name.split(":")
    if not (EXAMPLES / file).exists():
        pytest.skip(f"{file} not in examples")
    assert main(["eval", str(EXAMPLES / file), "--diagram", diagram]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"{diagram} = {exact}"


def test_eval_open_diagram_exits_1_with_message():
    r = fusionc("eval", EXAMPLES / "edge_message.fus", "--diagram", "EdgeMessage")
    assert r.returncode == 1
    assert "EdgeMessage" in r.stderr and "open" in r.stderr
    assert "Traceback" not in r.stderr
    assert r.stdout == ""


def test_eval_unknown_diagram_exits_2(tmp_path, capsys):
    src = tmp_path / "theta.fus"
    src.write_text(THETA)
    assert main(["eval", str(src), "--diagram", "Nope"]) == 2
    err = capsys.readouterr().err
    assert "Nope" in err and "Theta" in err and "Traceback" not in err


# ----------------------------------------------------------------------------- build


def test_build_two_files(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(EXAMPLES / "edge_message.fus", src)
    (src / "theta.fus").write_text(THETA)
    out = tmp_path / "out"
    r = fusionc("build", src, "-o", out)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    header = next(i for i, l in enumerate(lines) if l.startswith("file "))
    assert set(lines[header + 1]) == {"-"}
    rows = lines[header + 2:header + 4]
    assert rows[0].split()[:3] == ["edge_message.fus", "EdgeMessage", "open"] and " ok " in rows[0] + " "
    assert rows[1].split()[:3] == ["theta.fus", "Theta", "closed"] and "value 3" in rows[1]
    assert re.search(r"^2 files, 2 diagrams, 0 failures", r.stdout, re.M)
    assert (out / "edge_message.py").exists()
    assert not (out / "theta.py").exists()         # closed only: nothing to import
    assert (out / "edge_message.dot").exists() and (out / "theta.dot").exists()
