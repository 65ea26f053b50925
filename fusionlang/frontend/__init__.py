"""The frontend: .fus text -> AST (syntax.py, grammar/fusion.lark) -> Diagram IR (lower.py) -> diagnostics
(check.py); analysis.py runs the three, fmt.py prints an AST back as canonical text."""
from .analysis import Analysis, analyze, analyze_bytes, analyze_file, read_source

__all__ = ["Analysis", "analyze", "analyze_bytes", "analyze_file", "read_source"]
