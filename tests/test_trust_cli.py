"""Issue 10, items 4, 14 and 16: `fusionc` answers bad input with diagnostics (rc 1), never with an
internal error (rc 3); an exception that escapes is reported as an InternalError that asks for a
report; compile_source / compile_file are importable from the package top level without an import
cycle; `fusionc build` gives net.v1.fus and net.v2.fus their own outputs."""
from __future__ import annotations

import ast
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

import fusionlang
from fusionlang import cli

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples" / "diagrams").glob("*.fus"))


# -- item 4 -----------------------------------------------------------------------------------------

def test_an_escaping_exception_is_an_internal_error(monkeypatch, tmp_path, capsys):
    path = tmp_path / "a.fus"
    path.write_text(EXAMPLES[0].read_text())

    def broken(*args, **kwargs):
        raise KeyError(0)

    monkeypatch.setattr(cli.common, "analyze_file", broken)
    assert cli.main(["check", str(path)]) == cli.EXIT_INTERNAL
    err = capsys.readouterr().err
    assert "internal error: KeyError in `fusionc check`: 0" in err
    assert "this is a bug in fusionlang" in err and "please report it" in err


def test_internal_error_type():
    error = fusionlang.InternalError.wrapping(ValueError("boom"), "plan")
    assert isinstance(error, fusionlang.FusionError) and isinstance(error.cause, ValueError)
    assert error.render().startswith("internal error: ValueError in plan: boom")


def mutations(text: str, rng: random.Random, n: int) -> list[str]:
    """Small edits of a valid file: delete, duplicate or swap a line, change a number, cut a token."""
    out = []
    numbers = ["0", "1", "3", "12", "13", "64", "65536", "65537", "4096", "1/2", "99999999999"]
    for _ in range(n):
        lines = text.split("\n")
        op = rng.randrange(6)
        k = rng.randrange(len(lines))
        if op == 0:
            del lines[k]
        elif op == 1:
            lines.insert(k, lines[rng.randrange(len(lines))])
        elif op == 2:
            j = rng.randrange(len(lines))
            lines[k], lines[j] = lines[j], lines[k]
        elif op == 3:
            lines[k] = __import__("re").sub(r"\d+", lambda m: rng.choice(numbers), lines[k], count=1)
        elif op == 4 and lines[k]:
            cut = rng.randrange(len(lines[k]))
            lines[k] = lines[k][:cut] + lines[k][cut + rng.randrange(1, 4):]
        else:
            lines[k] = lines[k].replace("weights=", rng.choice(["weights=uvw, ", "weights=none, ", "external, weights="]))
        out.append("\n".join(lines))
    return out


def test_mutated_examples_never_give_an_internal_error(tmp_path, capsys):
    """Check every mutation, and compile (in-process, through the CLI) those that check clean."""
    rng = random.Random(4)
    compiled = 0
    for source in EXAMPLES:
        for k, text in enumerate(mutations(source.read_text(), rng, 12)):
            path = tmp_path / f"{source.stem}_{k}.fus"
            path.write_text(text)
            rc = cli.main(["check", "-q", str(path)])
            err = capsys.readouterr().err
            assert rc in (0, 1), f"{path.name}: rc {rc}\n{text}\n{err[-2000:]}"
            assert "Traceback" not in err
            if rc == 0 and compiled < 25 and "group SU2" not in text:
                compiled += 1
                rc = cli.main(["compile", str(path), "-o", str(tmp_path / "out.py")])
                err = capsys.readouterr().err
                assert rc == 0, f"{path.name}: checked clean, then compile gave rc {rc}\n{text}\n{err[-2000:]}"
    assert compiled > 10


# -- item 14 ----------------------------------------------------------------------------------------

def test_compile_functions_at_the_top_level():
    code = ("import sys, fusionlang\n"
            "assert 'torch' not in sys.modules\n"          # `import fusionlang` stays light
            "from fusionlang import compile_source, compile_file, CompiledProgram\n"
            "p = compile_source(open(sys.argv[1]).read())\n"
            "assert isinstance(p, CompiledProgram) and p.modules\n"
            "assert compile_file(sys.argv[1]).python == p.python.replace('<input>', sys.argv[1].split('/')[-1])\n")
    proc = subprocess.run([sys.executable, "-c", code, str(ROOT / "examples" / "diagrams" / "channel_mixing.fus")],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")))
    assert proc.returncode == 0, proc.stderr
    assert {"compile_source", "compile_file"} <= set(fusionlang.__all__) <= set(dir(fusionlang))


def module_imports() -> dict[str, set[str]]:
    """fusionlang module -> the fusionlang modules it imports when it is imported (module level)."""
    graph = {}
    for path in (ROOT / "fusionlang").glob("*.py"):
        name = path.stem
        found = set()
        for node in ast.parse(path.read_text()).body:          # top level only: lazy imports are fine
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    found.add(node.module.split(".")[0])
                else:
                    found.update("__init__" if a.name == "__version__" else a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fusionlang"):
                found.add(node.module.split(".")[1] if "." in node.module else "__init__")
        graph[name] = found - {name}
    return graph


def test_imports_are_cycle_free():
    graph = module_imports()
    state: dict[str, int] = {}

    def visit(node, stack):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join(stack + [node, nxt]))
            if nxt not in state:
                visit(nxt, stack + [node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert "api" not in graph["__init__"]


# -- item 16 ----------------------------------------------------------------------------------------

def test_build_keeps_dotted_names_apart(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    mixing = (ROOT / "examples" / "diagrams" / "channel_mixing.fus").read_text()
    (src / "net.v1.fus").write_text(mixing)
    (src / "net.v2.fus").write_text(mixing.replace("diagram Mixer", "diagram MixerTwo"))
    out = tmp_path / "out"
    assert cli.main(["build", str(src), "-o", str(out)]) == 0
    capsys.readouterr()
    assert (out / "net.v1.py").exists() and (out / "net.v2.py").exists() and not (out / "net.py").exists()
    assert "class Mixer(" in (out / "net.v1.py").read_text()
    assert "class MixerTwo(" in (out / "net.v2.py").read_text()


def test_output_stems_are_distinct():
    from fusionlang.build import output_stems
    files = [Path(n) for n in ["net.v1.fus", "net.v2.fus", "net.fus", "Net.fus", "a.b.c.fus"]]
    stems = output_stems(files)
    assert len({s.casefold() for s in stems.values()}) == len(files)
    assert stems[Path("net.v1.fus")] == "net.v1" and stems[Path("a.b.c.fus")] == "a.b.c"
