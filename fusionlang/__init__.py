"""fusionlang: a compiler for SU(2)/O(3) fusion diagrams (.fus) to PyTorch modules and pictures."""
__version__ = "0.1.0"

from .diagnostics import Diagnostic, FusionError  # noqa: E402
from .frontend import Analysis, analyze, analyze_file  # noqa: E402

__all__ = ["Diagnostic", "FusionError", "Analysis", "analyze", "analyze_file", "__version__"]
