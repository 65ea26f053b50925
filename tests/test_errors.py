"""One error hierarchy: every exception fusionlang defines is a FusionError (every warning a FusionWarning);
user errors carry diagnostics, bugs are InternalErrors that the CLI reports with exit code 3."""
from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import fusionlang
from fusionlang import FusionError, InternalError, compile_source
from fusionlang.diagnostics import FusionWarning


def defined_classes():
    """Every class defined in a fusionlang module (optional dependencies are imported only where used)."""
    for info in pkgutil.walk_packages(fusionlang.__path__, "fusionlang."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == info.name:
                yield cls


def test_every_exception_is_a_fusion_error():
    exceptions = [c for c in defined_classes() if issubclass(c, BaseException)]
    names = {c.__name__ for c in exceptions}
    assert {"LabelError", "ParseFailed", "RenderError", "UsageError", "TooManyPaths", "InternalError"} <= names
    strays = [f"{c.__module__}.{c.__qualname__}" for c in exceptions
              if not issubclass(c, FusionWarning if issubclass(c, Warning) else FusionError)]
    assert not strays, f"exceptions outside the hierarchy: {strays}"


def test_exceptions_keep_their_builtin_bases():
    """Code that caught ValueError before still catches the same errors."""
    from fusionlang.exact import NotEvaluable
    from fusionlang.names import UnsafeName
    from fusionlang.render import UnsupportedFormat
    from fusionlang.symmetry.coupling import CouplingCacheWarning
    from fusionlang.symmetry.groups import LabelError
    for cls in (NotEvaluable, UnsafeName, UnsupportedFormat, LabelError):
        assert issubclass(cls, ValueError) and issubclass(cls, FusionError)
    assert issubclass(CouplingCacheWarning, RuntimeWarning) and issubclass(CouplingCacheWarning, FusionWarning)
    error = LabelError("`3q` is not an irrep", "write 3e")
    assert str(error) == "`3q` is not an irrep" and error.help == "write 3e" and error.diagnostics == []


def test_user_errors_carry_diagnostics():
    with pytest.raises(FusionError) as info:
        compile_source("group O3\ndiagram D {\n    in x : 1x1o\n    out y : 1x2e\n    y = linear(x)\n}\n")
    error = info.value
    assert not isinstance(error, InternalError)
    assert error.diagnostics and all(d.is_error for d in error.diagnostics)
    assert str(error) == "\n\n".join(d.render(error.source) for d in error.diagnostics)
    assert "--> <input>:5:" in str(error)


def test_internal_error_is_a_fusion_error_without_diagnostics():
    error = InternalError.wrapping(KeyError("v0"), "plan")
    assert isinstance(error, FusionError) and error.diagnostics == [] and error.source is None
    assert isinstance(error.cause, KeyError)
    assert "bug in fusionlang" in error.render()


def test_cli_reports_an_escaped_exception_as_internal(monkeypatch, capsys, tmp_path):
    from fusionlang import cli
    from fusionlang.cli import commands
    path = tmp_path / "ok.fus"
    path.write_text("group O3\ndiagram D {\n    in x : 2x0e\n    out y : 2x0e\n    y = linear(x)\n}\n")

    def broken(*args, **kwargs):
        raise InternalError("the planner lost a wire")

    monkeypatch.setattr(commands, "compile_analysis", broken)
    assert cli.main(["plan", str(path)]) == cli.EXIT_INTERNAL
    err = capsys.readouterr().err
    assert "internal error: the planner lost a wire" in err and "please report it" in err
