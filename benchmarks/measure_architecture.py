"""The numbers of docs/architecture.md's "Measured" section, for any checkout of the repository.

    python benchmarks/measure_architecture.py [ROOT]

Import cycles (strongly connected components of the package's import graph, function-level imports
included), upward imports and function-level imports of internal modules (layers as in
tests/test_architecture.py; a checkout from before the packages existed is mapped onto them by the
module renames below), modules and lines per stage, the largest functions, and vulture's findings at
confidence 80 when vulture is installed.
"""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_architecture import LAYERS, LAZY_BY_DESIGN, cycles  # noqa: E402

# Where the modules of the flat layout (before commit "layout: packages") live now.
RENAMED = {
    "groups": "symmetry.groups", "coupling": "symmetry.coupling", "wigner": "symmetry.wigner",
    "paths": "symmetry.paths", "symmetric": "symmetry.symmetric", "budget": "cost.budget",
    "contract_order": "cost.contract_order", "syntax": "frontend.syntax", "check": "frontend.check",
    "fmt": "frontend.fmt", "frontend": "frontend.analysis", "plan": "backend.plan",
    "emit_torch": "backend.emit_torch", "cli": "cli.main", "commands": "cli.commands",
}


def modules(root: Path) -> dict[str, Path]:
    found = {}
    for path in sorted((root / "fusionlang").rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def canonical(name: str) -> str:
    """A module's name in today's layout (the same name where it did not move)."""
    parts = name.split(".")
    if len(parts) == 2 and parts[1] in RENAMED:
        return "fusionlang." + RENAMED[parts[1]]
    return name


def layer(name: str) -> int:
    name = canonical(name)
    best = (len(LAYERS) - 1, 0)
    for rank, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best[1]:
                best = (rank, len(prefix))
    return best[0]


def imports(root: Path):
    known = modules(root)
    for name, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        inner = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                 for n in ast.walk(f) if n is not f}
        package = path.name == "__init__.py"
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if package else name.split(".")[:-1]
                    base = base[:len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                targets = [f"{target}.{a.name}" if f"{target}.{a.name}" in known else target for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for t in targets:
                if t.split(".")[0] == "fusionlang" and t != name:
                    yield name, t, id(node) in inner


def stage(name: str) -> str:
    return LAYERS[layer(name)][0]


def functions(root: Path):
    for name, path in modules(root).items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield node.end_lineno - node.lineno + 1, f"{path.relative_to(root)}::{node.name}", \
                    len(node.args.args) + len(node.args.kwonlyargs) + len(node.args.posonlyargs)


def main(root: Path) -> None:
    edges: dict[str, set[str]] = {}
    lazy = upward = 0
    for a, b, inner in imports(root):
        if (a, b) in LAZY_BY_DESIGN:
            continue
        if not (b.startswith(a + ".") or a.startswith(b + ".")):
            edges.setdefault(a, set()).add(b)
        lazy += inner
        upward += layer(b) > layer(a)
    found = cycles(edges)
    print(f"import cycles: {len(found)}" + "".join(f"\n  {len(c)} modules: {', '.join(c)}" for c in found))
    print(f"upward imports: {upward}")
    print(f"function-level imports of internal modules: {lazy}")
    per: dict[str, list[int]] = {}
    for name, path in modules(root).items():
        row = per.setdefault(stage(name), [0, 0])
        row[0] += 1
        row[1] += len(path.read_text(encoding="utf-8").splitlines())
    print("stage | modules | lines")
    for name, _ in LAYERS:
        if name in per:
            print(f"{name} | {per[name][0]} | {per[name][1]}")
    ranked = sorted(functions(root), reverse=True)
    print("largest functions: " + "; ".join(f"{q} ({n} lines)" for n, q, _ in ranked[:3]))
    wide = sorted(((p, q) for _, q, p in ranked if p > 6), reverse=True)
    print(f"functions with more than 6 parameters: {len(wide)}"
          + (f" (widest: {wide[0][1]}, {wide[0][0]})" if wide else ""))
    if shutil.which("vulture") or _has_vulture():
        out = subprocess.run([sys.executable, "-m", "vulture", "fusionlang", "--min-confidence", "80"],
                             cwd=root, capture_output=True, text=True).stdout
        print(f"vulture --min-confidence 80: {len(out.splitlines())}")


def _has_vulture() -> bool:
    try:
        import vulture  # noqa: F401
        return True
    except ImportError:
        return False


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]).resolve())
