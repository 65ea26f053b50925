"""The Python API of docs/language.md section 8: compile_source / compile_file."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import generated
from .backend.emit_torch import emit_module_source
from .backend.plan import PLAN_BATCH, Plan, plan_diagram
from .diagnostics import Diagnostic, FusionError
from .frontend import Analysis, analyze, analyze_file
from .names import python_name
from .render import RenderError, dot_to, to_dot_file
from .triton_backend import select_backend
from .triton_backend.emit import emit_triton_module_source


@dataclass
class CompiledProgram:
    analysis: Analysis
    plans: dict[str, Plan]
    python: str
    modules: dict[str, type] = field(default_factory=dict)
    warnings: list[Diagnostic] = field(default_factory=list)
    backend: str = "torch"      # the backend that generated `python` ("torch" or "triton")

    @property
    def diagrams(self):
        return self.analysis.diagrams

    def _repr_svg_(self):
        """Jupyter shows every diagram of the program (None when graphviz's dot is missing)."""
        try:
            return dot_to("svg", to_dot_file(self.analysis.diagrams)).decode("utf-8")
        except RenderError:
            return None


def compile_analysis(analysis: Analysis, batch: int = PLAN_BATCH, form: str = "cheaper",
                     graph_rewrites: bool = True, backend: str = "auto") -> CompiledProgram:
    """form as in plan.plan_vertex: the planner's choice, or "operator" / "pairwise" forced.
    graph_rewrites=False plans graph diagrams vertex by vertex as written (plan.plan_graph).
    backend: "torch", "triton" (Triton kernels for fuse vertices, docs/gpu.md) or "auto" (Triton
    where CUDA is available and triton imports); the modules compute the same numbers either way."""
    backend = select_backend(backend)
    if not analysis.ok:
        raise FusionError([d for d in analysis.diagnostics if d.is_error], analysis.source)
    open_diagrams = [d for d in analysis.diagrams if not d.is_closed]
    plans = {d.name: plan_diagram(d, batch, form, graph=graph_rewrites) for d in open_diagrams}
    closed = [d.name for d in analysis.diagrams if d.is_closed]
    emit = emit_triton_module_source if backend == "triton" else emit_module_source
    python = emit(list(plans.values()), Path(analysis.file).name, closed)
    # A real module (fusionlang.generated.m<digest>): pickle, torch.compile and friends find it by name.
    module = generated.load(python)
    modules = {name: getattr(module, python_name(name)) for name in plans}
    return CompiledProgram(analysis, plans, python, modules,
                           [d for d in analysis.diagnostics if not d.is_error], backend)


def compile_source(text: str, file: str = "<input>", limits=None, backend: str = "auto") -> CompiledProgram:
    """Parse, check, plan and generate; raises FusionError with every diagnostic on errors.
    limits: a fusionlang.Limits or {name: n} raising what a compile may allocate (docs/limits.md);
    backend: "auto", "torch" or "triton" (docs/gpu.md)."""
    return compile_analysis(analyze(text, file, limits), backend=backend)


def compile_file(path: str | Path, limits=None, backend: str = "auto") -> CompiledProgram:
    return compile_analysis(analyze_file(path, limits), backend=backend)
