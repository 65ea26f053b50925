"""fusionlang: a compiler for SU(2)/O(3) fusion diagrams (.fus) to PyTorch modules and pictures."""
__version__ = "0.1.0"

from .budget import Limits  # noqa: E402
from .diagnostics import Diagnostic, FusionError, InternalError  # noqa: E402
from .frontend import Analysis, analyze, analyze_file  # noqa: E402

__all__ = ["Diagnostic", "FusionError", "InternalError", "Limits", "Analysis", "analyze", "analyze_file",
           "compile_source", "compile_file", "CompiledProgram", "__version__"]

# The compiler proper imports torch; it is loaded on first use, so `import fusionlang` (and
# `fusionc check`) stays fast.  `from fusionlang import compile_source` works as usual.
_LAZY = {"compile_source": "api", "compile_file": "api", "CompiledProgram": "api"}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fusionlang' has no attribute {name!r}")
    from importlib import import_module
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
