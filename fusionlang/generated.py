"""Programs compiled in-process (compile_source / compile_file) as real, importable modules.

A program's classes live in the module `fusionlang.generated.m<digest>`, where <digest>
is the start of the sha256 of its source: the same source always gives the same module.
The module is registered in sys.modules, so torch.compile, torch.export, pickle,
copy.deepcopy and torch.save / torch.load in the same process find its classes by name,
and its source is written to `<cache>/generated/m<digest>.py` (the cache folder of
coupling.cache_path), so that another process that unpickles a model imports it from
there, but only while the file's bytes still hash to its name.  See docs/python-api.md.
"""
from __future__ import annotations

import hashlib
import importlib.abc
import importlib.util
import linecache
import os
import re
import stat
import sys
import types
import warnings

from .diagnostics import FusionWarning
from .symmetry.coupling import cache_path
from .files import write_atomic

PREFIX = __name__ + "."
DIGEST_HEX = 20
_SHORT_NAME = re.compile(rf"m[0-9a-f]{{{DIGEST_HEX}}}\Z")

# A package to the import system; its submodules come from _CacheFinder alone, never from a folder.
__path__: list[str] = []


class GeneratedCacheWarning(FusionWarning):
    """A compiled program could not be written to the cache; it works in this process only."""


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:DIGEST_HEX]


def module_name(source: str) -> str:
    return f"{PREFIX}m{_digest(source.encode('utf-8'))}"


def generated_dir() -> str:
    return os.path.join(cache_path(), "generated")


def _regular_file_bytes(path: str) -> bytes | None:
    """The file's bytes, or None when it is missing or not a regular file (a FIFO would block)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return None


def _write(short: str, data: bytes) -> str | None:
    """Write the source beside nothing half-done (a temporary file renamed over the target);
    the path, or None with a warning when the cache cannot be written."""
    folder = generated_dir()
    target = os.path.join(folder, short + ".py")
    if _regular_file_bytes(target) == data:
        return target
    try:
        os.makedirs(folder, exist_ok=True)
        write_atomic(target, data)
        return target
    except OSError as exc:
        warnings.warn(f"fusionlang: cannot write {target!r} ({exc}); the compiled modules work in this "
                      "process, but a model pickled with them cannot be loaded in another one",
                      GeneratedCacheWarning, stacklevel=3)
        return None


def load(source: str) -> types.ModuleType:
    """The module for this generated source: already imported, or executed now and registered."""
    name = module_name(source)
    short = name[len(PREFIX):]
    # Written even when the module is loaded already: the cache folder may have changed since.
    path = _write(short, source.encode("utf-8"))
    module = sys.modules.get(name)
    if module is not None:
        return module
    module = types.ModuleType(name)
    if path is not None:
        module.__file__ = path
        filename = path
    else:   # tracebacks still show the lines
        filename = f"<fusionlang {name}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    code = compile(source, filename, "exec")
    sys.modules[name] = module
    try:
        exec(code, module.__dict__)
    except BaseException:
        del sys.modules[name]
        raise
    setattr(sys.modules[__name__], short, module)
    return module


class _Loader(importlib.abc.Loader):
    def __init__(self, path: str, data: bytes):
        self.path, self.data = path, data

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        module.__file__ = self.path
        exec(compile(self.data, self.path, "exec"), module.__dict__)


class _CacheFinder(importlib.abc.MetaPathFinder):
    """Finds `fusionlang.generated.m<digest>` in the cache, if the file still hashes to <digest>."""

    def find_spec(self, fullname, path=None, target=None):
        if not fullname.startswith(PREFIX) or not _SHORT_NAME.match(fullname[len(PREFIX):]):
            return None
        short = fullname[len(PREFIX):]
        file = os.path.join(generated_dir(), short + ".py")
        data = _regular_file_bytes(file)
        if data is None or "m" + _digest(data) != short:
            return None   # ModuleNotFoundError names the module; docs/python-api.md says why
        return importlib.util.spec_from_loader(fullname, _Loader(file, data), origin=file)


if not any(isinstance(f, _CacheFinder) for f in sys.meta_path):
    sys.meta_path.append(_CacheFinder())
