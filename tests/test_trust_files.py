"""Issue 10, items 6-7: every file the tools write is replaced atomically, so a kill at any moment
leaves the old file or the new one, never a mixture; a FIFO or a directory where the coefficient
cache expects its table is skipped with a warning instead of hanging the process.

The writers run in a subprocess whose file writes are slowed down (each write is cut into small
pieces with short sleeps, and announced on stderr), so that the SIGKILL lands in the middle of
writing, which is the moment that used to leave an empty or half-written file.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fusionlang.frontend.fmt import format_source

ROOT = Path(__file__).resolve().parents[1]
TRIALS = 3

# Runs `fusionlang` with every write into $SLOW_WRITE_DIR cut into pieces, announced on stderr.
HARNESS = r'''
import io, os, sys, time, builtins
SLOW = os.path.realpath(os.environ["SLOW_WRITE_DIR"])
real_open, real_fdopen = io.open, os.fdopen

class Slow:
    def __init__(self, fh):
        self._fh = fh
    def write(self, data):
        sys.stderr.write("WRITING\n"); sys.stderr.flush()
        step = max(1, len(data) // 40)
        for i in range(0, len(data), step):
            self._fh.write(data[i:i + step]); self._fh.flush(); time.sleep(0.003)
        return len(data)
    def __getattr__(self, name):
        return getattr(self._fh, name)
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        return self._fh.__exit__(*exc)
    def __iter__(self):
        return iter(self._fh)

def ours(path):
    return os.path.realpath(str(path)).startswith(SLOW)

def slow_open(file, mode="r", *args, **kwargs):
    fh = real_open(file, mode, *args, **kwargs)
    return Slow(fh) if any(c in mode for c in "wax+") and isinstance(file, (str, bytes, os.PathLike)) and ours(file) else fh

def slow_fdopen(fd, mode="r", *args, **kwargs):
    fh = real_fdopen(fd, mode, *args, **kwargs)
    return Slow(fh) if any(c in mode for c in "wax+") and ours(os.readlink(f"/proc/self/fd/{fd}")) else fh

io.open = builtins.open = slow_open
os.fdopen = slow_fdopen
if sys.argv[1] == "cache":
    from fusionlang.symmetry.coupling import warm_cache
    warm_cache()
else:
    from fusionlang.cli import main
    sys.exit(main(sys.argv[1:]))
'''

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs /proc (Linux)")


def env_for(directory: Path, **extra) -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                SLOW_WRITE_DIR=str(directory), **extra)


def run_to_completion(args, directory, **extra):
    proc = subprocess.run([sys.executable, "-c", HARNESS, *map(str, args)], env=env_for(directory, **extra),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def kill_while_writing(args, directory, rng, **extra) -> bool:
    """Start the writer, SIGKILL it a random moment after its first write began; False if it finished
    before writing anything (it then ran to completion)."""
    proc = subprocess.Popen([sys.executable, "-c", HARNESS, *map(str, args)], env=env_for(directory, **extra),
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 300
    try:
        for line in proc.stderr:
            if line.startswith("WRITING"):
                time.sleep(rng.uniform(0.0, 0.12))
                proc.send_signal(signal.SIGKILL)
                break
            if time.monotonic() > deadline:
                break
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode == -signal.SIGKILL


def assert_old_or_new(path: Path, old: bytes | None, new: bytes):
    if old is None and not path.exists():
        return
    data = path.read_bytes()
    assert data in (old, new), f"{path.name}: {len(data)} bytes, neither the old ({len(old or b'')}) nor the new ({len(new)})"


def stray_files_are_temporaries(directory: Path, names: set[str]):
    for p in directory.iterdir():
        assert p.name in names or (p.name.startswith(".") and p.name.endswith(".tmp")), p.name


SOURCE = (ROOT / "examples" / "diagrams" / "edge_message.fus").read_text()
UNFORMATTED = SOURCE.replace("    ", "  ").replace(" : ", ":") + "\n\n\n"


def test_fmt_in_place_is_atomic(tmp_path):
    rng = random.Random(6)
    path = tmp_path / "edge.fus"
    new = format_source(UNFORMATTED).encode()
    assert new != UNFORMATTED.encode()
    for _ in range(TRIALS):
        path.write_text(UNFORMATTED)
        kill_while_writing(["fmt", path], tmp_path, rng)
        assert_old_or_new(path, UNFORMATTED.encode(), new)
        stray_files_are_temporaries(tmp_path, {"edge.fus"})


def test_compile_output_is_atomic(tmp_path):
    rng = random.Random(7)
    from fusionlang.api import compile_file
    source = tmp_path / "edge.fus"
    source.write_text(SOURCE)
    new = compile_file(source).python.encode()
    out = tmp_path / "out.py"
    old = b"# the previous module\n" * 500
    killed = 0
    for _ in range(TRIALS - 1):         # each run imports torch: fewer trials
        out.write_bytes(old)
        killed += kill_while_writing(["compile", source, "-o", out], tmp_path, rng)
        assert_old_or_new(out, old, new)
    assert killed


def test_render_output_is_atomic(tmp_path):
    rng = random.Random(8)
    source = tmp_path / "edge.fus"
    source.write_text(SOURCE)
    reference = tmp_path / "reference"
    reference.mkdir()
    run_to_completion(["render", source, "-o", reference / "out.dot"], tmp_path)
    new = (reference / "out.dot").read_bytes()
    out = tmp_path / "out.dot"
    old = b"digraph old {}\n" * 300
    for _ in range(TRIALS):
        out.write_bytes(old)
        kill_while_writing(["render", source, "-o", out], tmp_path, rng)
        assert_old_or_new(out, old, new)


def test_build_outputs_are_atomic(tmp_path):
    rng = random.Random(9)
    src = tmp_path / "src"
    src.mkdir()
    (src / "mix.fus").write_text((ROOT / "examples" / "diagrams" / "channel_mixing.fus").read_text())
    from fusionlang.build import build_all
    reference = tmp_path / "reference"
    assert build_all(src, reference) == 0
    out = tmp_path / "out"
    out.mkdir()
    names = sorted(p.name for p in reference.iterdir())
    assert "mix.py" in names and "mix.dot" in names
    old = {name: f"old {name}\n".encode() * 200 for name in names}
    for _ in range(TRIALS - 1):         # each run imports torch: fewer trials
        for name, data in old.items():
            (out / name).write_bytes(data)
        kill_while_writing(["build", src, "-o", out], tmp_path, rng)
        for name in names:
            assert_old_or_new(out / name, old[name], (reference / name).read_bytes())
        stray_files_are_temporaries(out, set(names))


def test_coefficient_cache_is_atomic(tmp_path):
    from fusionlang.symmetry.coupling import _read_table, cache_path
    rng = random.Random(10)
    cache = tmp_path / "cache"
    cache.mkdir()
    target = Path(cache_path("SO3").replace(os.path.dirname(cache_path("SO3")), str(cache)))
    old = b"an old, unreadable table\n" * 1000
    for _ in range(TRIALS):
        for p in cache.iterdir():
            p.unlink()
        target.write_bytes(old)
        kill_while_writing(["cache"], cache, rng, FUSIONLANG_CACHE_DIR=str(cache))
        data = target.read_bytes()
        assert data == old or _read_table("SO3", str(target)) is not None, "a half-written table"


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_cache_skips_what_is_not_a_regular_file(tmp_path, kind):
    from fusionlang.symmetry.coupling import cache_path
    name = os.path.basename(cache_path("SO3"))
    target = tmp_path / name
    if kind == "fifo":
        os.mkfifo(target)
    else:
        target.mkdir()
    code = "from fusionlang.symmetry.coupling import cg; print(cg('SO3', '1', '1', '2').shape)"
    proc = subprocess.run([sys.executable, "-W", "always", "-c", code], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, FUSIONLANG_CACHE_DIR=str(tmp_path),
                                   PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "(3, 3, 5)"
    assert "not a regular file" in proc.stderr
    assert (target.is_fifo() if kind == "fifo" else target.is_dir())     # left alone


def test_write_atomic_keeps_permissions_and_follows_links(tmp_path):
    from fusionlang.files import write_atomic
    real = tmp_path / "real.fus"
    real.write_text("old")
    os.chmod(real, 0o640)
    link = tmp_path / "link.fus"
    link.symlink_to(real)
    write_atomic(link, "new")
    assert link.is_symlink() and real.read_text() == "new"
    assert (real.stat().st_mode & 0o777) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.fus", "real.fus"]
