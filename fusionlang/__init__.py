"""fusionlang: a compiler for SU(2)/O(3) fusion diagrams (.fus) to PyTorch modules and pictures."""
from importlib import import_module

from . import render  # noqa: F401  (installs Jupyter's picture of a Diagram: ir.Diagram.svg_renderer)
from .cost.budget import Limits
from .diagnostics import Diagnostic, FusionError, InternalError
from .frontend import Analysis, analyze, analyze_file
from .version import __version__

__all__ = ["Diagnostic", "FusionError", "InternalError", "Limits", "Analysis", "analyze", "analyze_file",
           "compile_source", "compile_file", "CompiledProgram", "__version__"]

# The compiler proper imports torch; it is loaded on first use, so `import fusionlang` (and
# `fusionc check`) stays fast.  `from fusionlang import compile_source` works as usual.
_LAZY = {"compile_source": "api", "compile_file": "api", "CompiledProgram": "api"}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fusionlang' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
