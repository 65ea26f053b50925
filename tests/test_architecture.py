"""The package's shape (docs/architecture.md): stages as layers, imports only downward, no cycle, and no
import of an internal module inside a function (such imports hide cycles)."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "fusionlang"

# Lowest first.  A module may import its own layer (no cycle) and the layers below it, never above.
LAYERS = [
    ("base", ["fusionlang.version", "fusionlang.diagnostics", "fusionlang.files", "fusionlang.names"]),
    ("symmetry", ["fusionlang.symmetry"]),
    ("cost", ["fusionlang.cost"]),
    ("ir", ["fusionlang.ir"]),
    ("frontend", ["fusionlang.frontend"]),
    ("backend", ["fusionlang.backend"]),
    ("other backends", ["fusionlang.triton_backend"]),
    ("evaluators and pictures", ["fusionlang.reference", "fusionlang.exact", "fusionlang.verify",
                                 "fusionlang.render", "fusionlang.generated"]),
    ("api", ["fusionlang.api"]),
    ("layers for model authors", ["fusionlang.nn"]),
    ("data sets", ["fusionlang.data"]),
    ("models", ["fusionlang.models"]),
    ("training", ["fusionlang.train"]),
    ("the main job", ["fusionlang.build"]),
    ("cli", ["fusionlang.cli"]),
    ("package", ["fusionlang", "fusionlang.__main__"]),
]

# fusionlang/__init__.py loads the compiler (api) on first use of compile_source & co (PEP 562's module
# __getattr__), so that `import fusionlang` stays light; test_trust_cli checks that it does.
LAZY_BY_DESIGN = {("fusionlang", "fusionlang.api")}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(module: str, is_package: bool, node: ast.ImportFrom | ast.Import) -> list[str]:
    """The fusionlang modules an import statement names (a `from X import name` may name a submodule)."""
    known = modules()
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "fusionlang"]
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[:len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if target.split(".")[0] != "fusionlang":
        return []
    found = []
    for alias in node.names:
        sub = f"{target}.{alias.name}"
        found.append(sub if sub in known else target)
    return found


def imports() -> list[tuple[str, str, int, bool]]:
    """(importer, imported, line, inside a function) for every import of a fusionlang module."""
    out = []
    for name, path in modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        functions = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                     for n in ast.walk(f) if n is not f}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _resolve(name, path.name == "__init__.py", node):
                    if target != name:
                        out.append((name, target, node.lineno, id(node) in functions))
    return out


def layer_of(module: str) -> int:
    best = None
    for rank, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (rank, len(prefix))
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS (and to docs/architecture.md)")
    return best[0]


def test_every_module_has_a_layer():
    for name in modules():
        layer_of(name)


def test_imports_go_downward():
    upward = [f"{a} (layer {LAYERS[layer_of(a)][0]}) imports {b} (layer {LAYERS[layer_of(b)][0]}), line {line}"
              for a, b, line, _ in imports() if layer_of(b) > layer_of(a)]
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_no_function_level_import_of_internal_modules():
    inner = [f"{a} line {line}: imports {b} inside a function" for a, b, line, lazy in imports()
             if lazy and (a, b) not in LAZY_BY_DESIGN]
    assert not inner, "\n".join(inner) + "\n(import at the top of the module; a cycle must be broken, not hidden)"


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def import_graph(with_lazy: bool = True) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for a, b, _, lazy in imports():
        if with_lazy or not lazy:
            edges.setdefault(a, set()).add(b)
    return edges


def test_no_import_cycle():
    # Lazy imports count too: a cycle through a function-level import is still a cycle of the design.
    # A package's __init__ that re-exports its own submodules is not a cycle of the design.
    edges = {a: {b for b in bs if not (b.startswith(a + ".") or a.startswith(b + "."))}
             for a, bs in import_graph().items()}
    edges = {a: bs - {b for b in bs if (a, b) in LAZY_BY_DESIGN} for a, bs in edges.items()}
    assert cycles(edges) == []


def test_the_checker_finds_what_it_looks_for():
    """The graph builder is not vacuous: it sees the known edges of the pipeline."""
    edges = import_graph()
    assert "fusionlang.ir" in edges["fusionlang.frontend.lower"]
    assert "fusionlang.symmetry.coupling" in edges["fusionlang.backend.plan"] | edges["fusionlang.symmetry.trees"]
    assert "fusionlang.cli.commands" in edges["fusionlang.cli.main"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert layer_of("fusionlang.symmetry.groups") < layer_of("fusionlang.frontend.check") < layer_of("fusionlang.api")


@pytest.mark.parametrize("stage", ["symmetry", "cost", "frontend", "backend", "cli"])
def test_stages_are_packages(stage):
    assert (PACKAGE / stage / "__init__.py").is_file()


def test_no_dead_code():
    """vulture (a dev tool, in the test extra) finds no unused import, variable or unreachable code."""
    pytest.importorskip("vulture")
    proc = subprocess.run([sys.executable, "-m", "vulture", "fusionlang", "--min-confidence", "80"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout == "", proc.stdout + proc.stderr


def test_docstrings_point_to_files_in_the_repository():
    """The language's contract is docs/language.md here; LANGUAGE.md is not in the repository."""
    stale = [f"{path.relative_to(ROOT)}:{n}" for path in sorted(PACKAGE.rglob("*.py"))
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if "LANGUAGE.md" in line]
    assert not stale, stale


def test_the_cli_starts_without_torch():
    """`fusionc check` and `fusionc fmt` need no torch: importing the CLI (every command) leaves it unloaded."""
    code = "import sys, fusionlang.cli; assert 'torch' not in sys.modules, 'torch imported'"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
