"""The models' .fus diagrams (package data in ``diagrams/``), compiled at the sizes a model asks for.

Each file states its default sizes in ``let`` lines.  ``diagram_module`` rewrites
those lines (``let A = ...``) to the requested irreps and compiles the text with
the file's own name, so diagnostics and the generated module's header point at
the shipped file, and the same sizes always give the same generated module
(which keeps pickling and ``torch.load`` of whole models working; see
docs/python-api.md).
"""
from __future__ import annotations

import functools
import re
from pathlib import Path

from ..api import compile_source

__all__ = ["DIAGRAM_DIR", "diagram_path", "diagram_source", "diagram_module", "channels_of"]

DIAGRAM_DIR = Path(__file__).resolve().parent / "diagrams"

_LET = re.compile(r"^let\s+([A-Za-z_][A-Za-z0-9_]*)\s*=.*$", re.MULTILINE)


def diagram_path(file_stem: str) -> Path:
    return DIAGRAM_DIR / f"{file_stem}.fus"


def diagram_source(file_stem: str, **irreps: str) -> str:
    """The text of ``diagrams/<file_stem>.fus`` with its ``let`` lines set to ``irreps`` (names must exist)."""
    text = diagram_path(file_stem).read_text()
    declared = set(_LET.findall(text))
    unknown = set(irreps) - declared
    if unknown:
        raise ValueError(f"{file_stem}.fus has no `let` for {sorted(unknown)} (it declares {sorted(declared)})")

    def replace(match: re.Match) -> str:
        name = match.group(1)
        return f"let {name} = {irreps[name]}" if name in irreps else match.group(0)

    return _LET.sub(replace, text)


@functools.lru_cache(maxsize=None)
def _compiled(file_stem: str, lets: tuple):
    # The torch backend everywhere: the models need double backward (forces in the loss), which the
    # Triton backend runs through the torch form anyway, and one backend keeps checkpoints portable.
    program = compile_source(diagram_source(file_stem, **dict(lets)), file=f"{file_stem}.fus", backend="torch")
    return program


def diagram_module(file_stem: str, diagram: str, **irreps: str):
    """The compiled ``nn.Module`` class of ``diagram`` in ``diagrams/<file_stem>.fus`` at the given sizes."""
    return _compiled(file_stem, tuple(sorted(irreps.items()))).modules[diagram]


def channels_of(mul: int, ls, parity_of_l=lambda l: "e" if l % 2 == 0 else "o") -> str:
    """``mul x (0e + 1o + 2e ...)`` for the degrees ``ls`` with the parity of the spherical harmonics."""
    terms = " + ".join(f"{l}{parity_of_l(l)}" for l in ls)
    return f"{mul}x({terms})" if mul != 1 else terms
