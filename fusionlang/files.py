"""Writing files so that a kill at any moment leaves the old file or the new one, never a mixture.

Every file the tools write (fmt in place, compile -o, render -o, build, the coefficient cache) goes
through write_atomic: the bytes go to a temporary file beside the target, are flushed to disk, and
the temporary file is renamed over the target (a rename within one directory is atomic on POSIX
and Windows).  A kill before the rename leaves the old file (and a stray `.NAME.*.tmp`), after it
the new one.
"""
from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike, data: str | bytes, encoding: str = "utf-8") -> Path:
    """Replace the file at path by data (text is encoded), atomically; returns the path written.

    A symbolic link is followed, so the file it points to is replaced and the link kept.  The new
    file keeps the old one's permission bits (or gets the usual ones for a new file).  OSError as
    from open() when the directory cannot be written."""
    target = Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)
    payload = data.encode(encoding) if isinstance(data, str) else bytes(data)
    directory = target.parent if str(target.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            mode = stat.S_IMODE(os.stat(target).st_mode)
        except OSError:
            mode = 0o666 & ~_umask()
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return Path(path)
