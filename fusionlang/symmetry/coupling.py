"""Clebsch–Gordan coupling tensors, 6j / 9j symbols, and their cache on disk.

The exact Racah formula is in racah.py, the real-basis change in real_basis.py; this module checks
arguments, keeps the tables (in memory and on disk) and answers cg / cg_exact / sixj / ninej.

Conventions (see docs/coupling.md for the full story):

* ``SU2``: the complex standard basis ``|j m>``, component index ``j + m`` for
  ``m = -j..j``; ``cg("SU2", a, b, c)[j1+m1, j2+m2, j3+m3] = <j1 m1 j2 m2 | j3 m3>``
  (Condon–Shortley phases), returned as complex128.
* ``O3`` / ``SO3``: e3nn's real basis, index ``l + m``; the tensor equals
  ``e3nn.o3.wigner_3j(l1, l2, l3) * sqrt(2*l3 + 1)`` with the same sign,
  returned as float64.  Parity only selects which triples are admissible; it
  never changes the numbers.

Every tensor is *isometric*: ``sum_ij C[i,j,k] conj(C[i,j,k']) = delta_kk'``.

The numbers come from the Racah formula evaluated with exact Python integers
(one correctly rounded square root per entry), so they are accurate to an ulp.
Tables of every triple up to ``TABLE_MAX_TWO_J`` are kept in an on-disk cache
(``cache_path()``), guarded by a version key in the file name and a sha256 of
the contents; anything beyond the table (up to ``groups.MAX_TWO_J``) is
computed on demand and kept in memory.
"""
from __future__ import annotations

import hashlib
import io
import math
import os
import stat
import sys
import threading
import warnings
from fractions import Fraction
from functools import lru_cache
from typing import Union

import numpy as np

from ..diagnostics import FusionWarning
from ..files import write_atomic
from .groups import GROUPS, MAX_TWO_J, Group, Irrep
from .racah import cg_entry_exact, su2_compact, su2_dense
from .real_basis import _sympy, real_cg, real_to_complex, real_to_complex_exact

__all__ = [
    "cg", "cg_exact", "real_to_complex", "real_to_complex_exact", "sixj", "ninej",
    "warm_cache", "cache_path", "clear_memory_cache", "CouplingCacheWarning",
    "TABLE_MAX_TWO_J", "FORMAT_VERSION",
]

#: Bump when the file layout or the numbers' definition changes.
FORMAT_VERSION = 1

#: The largest ``two_j`` stored in the on-disk tables, per table kind.
#: ``"SO3"`` serves both O3 and SO3 (l <= 8); ``"SU2"`` holds j <= 15/2.
TABLE_MAX_TWO_J = {"SU2": 15, "SO3": 16}


class CouplingCacheWarning(FusionWarning, RuntimeWarning):
    """The on-disk coupling cache could not be written; results stay correct."""


# --------------------------------------------------------------------------
# argument handling

def _group(group_name: str) -> Group:
    try:
        return GROUPS[group_name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown group {group_name!r}; expected one of {sorted(GROUPS)}") from None


def _kind(group: Group) -> str:
    return "SU2" if group.name == "SU2" else "SO3"


def _as_irrep(group: Group, x) -> Irrep:
    if isinstance(x, str):
        x = group.parse_label(x)
    if not isinstance(x, Irrep):
        raise TypeError(f"expected an Irrep (or a label string), got {x!r}")
    if x.two_j < 0 or x.two_j > MAX_TWO_J:
        raise ValueError(f"irrep {x} is beyond the limit two_j <= {MAX_TWO_J}")
    if not group.allows_half and x.two_j % 2:
        raise ValueError(f"irrep with two_j={x.two_j} (a half-integer spin) is not an irrep of {group.name}")
    if group.has_parity and x.parity not in (1, -1):
        raise ValueError(f"O3 irreps need a parity of +1 or -1, got {x!r}")
    if not group.has_parity and x.parity != 0:
        raise ValueError(f"{group.name} irreps have no parity, got {x!r}")
    return x


def _triple(group_name, a, b, c):
    group = _group(group_name)
    a, b, c = (_as_irrep(group, x) for x in (a, b, c))
    if not group.admissible(a, b, c):
        raise ValueError(f"{c} does not occur in {a} x {b} for group {group.name} "
                         f"(the selection rules of docs/language.md section 5)")
    return group, (a.two_j, b.two_j, c.two_j)


# --------------------------------------------------------------------------
# tables and the on-disk cache

def _table_keys(kind: str) -> list[tuple[int, int, int]]:
    top = TABLE_MAX_TWO_J[kind]
    step = 1 if kind == "SU2" else 2
    keys = []
    for a in range(0, top + 1, step):
        for b in range(0, top + 1, step):
            for c in range(abs(a - b), min(a + b, top) + 1, 2):
                keys.append((a, b, c))
    return keys


def _stored_shape(kind: str, key) -> tuple[int, ...]:
    a, b, c = key
    return (a + 1, b + 1) if kind == "SU2" else (a + 1, b + 1, c + 1)


def _compute_stored(kind: str, key) -> np.ndarray:
    """What the table stores for one triple: SU2 the compact matrix, SO3 the dense real tensor."""
    a, b, c = key
    compact = su2_compact(a, b, c)
    if kind == "SU2":
        return compact
    return real_cg(a, b, c, su2_dense(a, b, c, compact.astype(np.complex128)))


def _source_digest() -> str:
    """A digest of the modules that define the stored numbers: this one, racah.py and real_basis.py."""
    here = os.path.dirname(os.path.abspath(__file__))
    h = hashlib.sha256()
    try:
        for name in ("coupling.py", "racah.py", "real_basis.py"):
            with open(os.path.join(here, name), "rb") as fh:
                h.update(fh.read())
    except OSError:  # pragma: no cover - frozen installs
        return "nosrc"
    return h.hexdigest()[:12]


def _package_version() -> str:
    pkg = sys.modules.get(__package__ or "")
    return str(getattr(pkg, "__version__", "0")) if pkg is not None else "0"


_VERSION_KEY = None


def _version_key() -> str:
    global _VERSION_KEY
    if _VERSION_KEY is None:
        _VERSION_KEY = f"{_package_version()}-f{FORMAT_VERSION}-{_source_digest()}"
    return _VERSION_KEY


def cache_path(group_name: str | None = None) -> str:
    """The cache directory, or with a group name the table file it uses.

    The directory is ``$FUSIONLANG_CACHE_DIR`` if set, else
    ``$XDG_CACHE_HOME/fusionlang``, else ``~/.cache/fusionlang``.  The file name
    carries the table kind, its size and the version key (package version,
    format version and a digest of this module's source), so a new release
    never reads an old table.
    """
    d = os.environ.get("FUSIONLANG_CACHE_DIR")
    if not d:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = xdg if xdg else os.path.join(os.path.expanduser("~"), ".cache")
        d = os.path.join(base, "fusionlang")
    if group_name is None:
        return d
    kind = _kind(_group(group_name))
    safe = "".join(ch if ch.isalnum() or ch in ".-_" else "_" for ch in _version_key())
    return os.path.join(d, f"cg-{kind}-max{TABLE_MAX_TWO_J[kind]}-v{safe}.npz")


def _digest(meta: str, keys: np.ndarray, offsets: np.ndarray, data: np.ndarray) -> str:
    h = hashlib.sha256(meta.encode())
    for arr in (keys, offsets, data):
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


class _Table:
    def __init__(self, kind: str, keys: list, offsets: np.ndarray, data: np.ndarray):
        data.flags.writeable = False
        self.kind = kind
        self.data = data
        self.index = {k: (int(offsets[i]), int(offsets[i + 1])) for i, k in enumerate(keys)}

    def stored(self, key) -> np.ndarray | None:
        span = self.index.get(key)
        if span is None:
            return None
        return self.data[span[0]:span[1]].reshape(_stored_shape(self.kind, key))


def _expected_layout(kind: str):
    keys = _table_keys(kind)
    sizes = [math.prod(_stored_shape(kind, k)) for k in keys]
    offsets = np.zeros(len(keys) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    return keys, offsets


def _read_table(kind: str, path: str) -> _Table | None:
    """The table at path if it is complete and its checksum holds, else None."""
    if _not_a_file(path):
        return None
    try:
        # Opened without blocking and checked again through the descriptor: a FIFO swapped in after
        # the check above must not hang the process.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                return None
            raw = fh.read()
    except OSError:
        return None
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as z:
            meta = str(z["meta"][()])
            keys = z["keys"]
            offsets = z["offsets"]
            data = z["data"]
            digest = str(z["sha256"][()])
    except Exception:   # missing, truncated, not a zip, wrong members: all the same to us
        return None
    exp_keys, exp_offsets = _expected_layout(kind)
    want_meta = f"{kind}|{TABLE_MAX_TWO_J[kind]}|{_version_key()}"
    if (meta != want_meta or keys.shape != (len(exp_keys), 3) or offsets.shape != exp_offsets.shape
            or data.dtype != np.float64 or data.ndim != 1 or data.shape[0] != exp_offsets[-1]):
        return None
    if not np.array_equal(keys, np.asarray(exp_keys, dtype=keys.dtype)) or not np.array_equal(offsets, exp_offsets):
        return None
    if digest != _digest(meta, keys.astype(np.int64), offsets, data):
        return None
    return _Table(kind, exp_keys, exp_offsets, data)


_warned = False


def _warn_once(msg: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(msg, CouplingCacheWarning, stacklevel=4)


def _write_table(kind: str, path: str, keys, offsets, data) -> None:
    meta = f"{kind}|{TABLE_MAX_TWO_J[kind]}|{_version_key()}"
    keys_arr = np.asarray(keys, dtype=np.int64)
    digest = _digest(meta, keys_arr, offsets, data)
    if _not_a_file(path):
        return                   # something else sits where the table goes: leave it alone (warned)
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.array(meta), keys=keys_arr, offsets=offsets, data=data, sha256=np.array(digest))
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_atomic(path, buffer.getvalue())
    except OSError as e:
        _warn_once(f"fusionlang: cannot write the coupling cache at {path!r} ({e}); "
                   "coefficients are recomputed in every process (set FUSIONLANG_CACHE_DIR to a writable directory)")


def _not_a_file(path: str) -> bool:
    """True (with a warning) where path exists but is not a regular file: a FIFO would block a
    reader forever, a directory cannot be replaced."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    if stat.S_ISREG(mode):
        return False
    _warn_once(f"fusionlang: {path!r} is not a regular file, so the coupling cache skips it; "
               "coefficients are recomputed in every process (remove it, or set FUSIONLANG_CACHE_DIR)")
    return True


def _build_table(kind: str):
    keys, offsets = _expected_layout(kind)
    data = np.empty(int(offsets[-1]), dtype=np.float64)
    for i, k in enumerate(keys):
        data[offsets[i]:offsets[i + 1]] = _compute_stored(kind, k).ravel()
    return _Table(kind, keys, offsets, data), keys, offsets, data


_LOCK = threading.RLock()
_TABLES: dict[str, _Table] = {}
_RESULTS: dict[tuple, np.ndarray] = {}


def _table(kind: str) -> _Table:
    t = _TABLES.get(kind)
    if t is not None:
        return t
    with _LOCK:
        t = _TABLES.get(kind)
        if t is None:
            path = cache_path(kind)
            t = _read_table(kind, path)
            if t is None:
                t, keys, offsets, data = _build_table(kind)
                _write_table(kind, path, keys, offsets, data)
            _TABLES[kind] = t
        return t


def clear_memory_cache() -> None:
    """Forget every table and tensor held in memory (the disk cache is untouched)."""
    global _warned
    with _LOCK:
        _TABLES.clear()
        _RESULTS.clear()
        _warned = False
    _cg_exact_cached.cache_clear()


def warm_cache() -> dict[str, str]:
    """Load (computing and writing if needed) every table; returns {kind: file path}."""
    out = {}
    for kind, group in (("SO3", "SO3"), ("SU2", "SU2")):
        _table(kind)
        out[kind] = cache_path(group)
    return out


def cg(group_name: str, a: Irrep, b: Irrep, c: Irrep) -> np.ndarray:
    """The isometric coupling tensor of ``c`` in ``a (x) b``, shape [a.dim, b.dim, c.dim].

    float64 in e3nn's real basis for O3/SO3 (``wigner_3j(l1,l2,l3)*sqrt(2*l3+1)``),
    complex128 Condon–Shortley coefficients in the standard basis for SU2.
    Irreps may also be given as label strings (``"1o"``, ``"3/2"``).  The result
    is cached and shared, hence read-only.  Raises ValueError for a triple the
    selection rules forbid.
    """
    group, key = _triple(group_name, a, b, c)
    kind = _kind(group)
    rkey = (kind, key)
    r = _RESULTS.get(rkey)
    if r is not None:
        return r
    with _LOCK:
        r = _RESULTS.get(rkey)
        if r is not None:
            return r
        tab = _table(kind) if max(key) <= TABLE_MAX_TWO_J[kind] else None
        stored = tab.stored(key) if tab is not None else None
        if stored is None:
            stored = _compute_stored(kind, key)
        if kind == "SU2":
            r = su2_dense(*key, stored.astype(np.complex128))
        else:
            r = np.array(stored, dtype=np.float64)   # a private copy: the table stays untouched
        r.flags.writeable = False
        _RESULTS[rkey] = r
        return r


# --------------------------------------------------------------------------
# exact values (sympy)

def _cg_exact_complex(a, b, c):
    sp = _sympy()
    out = {}
    for ma in range(-a, a + 1, 2):
        for mb in range(-b, b + 1, 2):
            if abs(ma + mb) > c:
                continue
            s, sq = cg_entry_exact(a, b, c, ma, mb)
            if s:
                out[((a + ma) // 2, (b + mb) // 2, (c + ma + mb) // 2)] = s * sp.sqrt(
                    sp.Rational(sq.numerator, sq.denominator))
    return out


@lru_cache(maxsize=None)
def _cg_exact_cached(kind: str, key):
    sp = _sympy()
    a, b, c = key
    shape = (a + 1, b + 1, c + 1)
    comp = _cg_exact_complex(a, b, c)
    if kind == "SU2":
        flat = [comp.get((i, j, k), sp.Integer(0))
                for i in range(shape[0]) for j in range(shape[1]) for k in range(shape[2])]
        return sp.ImmutableDenseNDimArray(flat, shape)
    q1, q2, q3 = (real_to_complex_exact(x // 2) for x in key)
    acc = {}
    # C_real[x, y, z] = sum Q1[i,x] Q2[k,y] conj(Q3[n,z]) C[i,k,n]; Q has two entries per column
    for (i, k, n), v in comp.items():
        for x in {i, a - i}:
            qx = q1[i, x]
            if qx == 0:
                continue
            for y in {k, b - k}:
                qy = q2[k, y]
                if qy == 0:
                    continue
                for z in {n, c - n}:
                    qz = q3[n, z]
                    if qz == 0:
                        continue
                    acc[(x, y, z)] = acc.get((x, y, z), 0) + qx * qy * sp.conjugate(qz) * v
    flat = []
    for x in range(shape[0]):
        for y in range(shape[1]):
            for z in range(shape[2]):
                e = sp.expand(acc.get((x, y, z), sp.Integer(0)))
                re, im = e.as_real_imag()
                if im != 0 and sp.nsimplify(im) != 0:  # pragma: no cover - a broken invariant
                    raise AssertionError(f"exact real CG {key} has an imaginary part {im}")
                flat.append(sp.radsimp(re))
    return sp.ImmutableDenseNDimArray(flat, shape)


def cg_exact(group_name: str, a: Irrep, b: Irrep, c: Irrep):
    """``cg`` with exact sympy entries, as a ``sympy.ImmutableDenseNDimArray`` of shape [a.dim, b.dim, c.dim].

    SU2: the Condon–Shortley coefficients (each ``±sqrt(rational)``).
    O3/SO3: the real-basis tensor ``Re(Q1 (x) Q2 (x) conj(Q3) . C)``, exactly
    (entries are sums of ``±sqrt(rational)``); ``float(cg_exact(...)[i, j, k])``
    agrees with ``cg(...)[i, j, k]`` to rounding.  Cached in memory.
    """
    group, key = _triple(group_name, a, b, c)
    return _cg_exact_cached(_kind(group), key)


# --------------------------------------------------------------------------
# recoupling symbols

Spin = Union[Irrep, int, "Fraction", str, float]


def _spin(x):
    """An exact spin (sympy Rational) from an Irrep, int, Fraction/Rational, '3/2' or a half-integer float."""
    sp = _sympy()
    if isinstance(x, Irrep):
        return sp.Rational(x.two_j, 2)
    if isinstance(x, bool):
        raise TypeError(f"not a spin: {x!r}")
    if isinstance(x, str):
        v = sp.Rational(x)
    elif isinstance(x, float):
        if not math.isfinite(x) or (2 * x) != int(2 * x):
            raise ValueError(f"not a (half-)integer spin: {x!r}")
        v = sp.Rational(int(2 * x), 2)
    elif isinstance(x, Fraction):
        v = sp.Rational(x.numerator, x.denominator)
    else:
        v = sp.sympify(x)
        if not v.is_Rational:
            raise ValueError(f"not a (half-)integer spin: {x!r}")
        v = sp.Rational(v)
    if v < 0 or (2 * v).q != 1:
        raise ValueError(f"not a (half-)integer spin >= 0: {x!r}")
    return v


def _triad(a, b, c) -> bool:
    return abs(a - b) <= c <= a + b and (a + b + c).q == 1


def sixj(j1: Spin, j2: Spin, j3: Spin, j4: Spin, j5: Spin, j6: Spin):
    """The Wigner 6j symbol {j1 j2 j3; j4 j5 j6} as an exact sympy number.

    Spins may be Irreps (spin = two_j/2; parity ignored), ints, sympy Rationals,
    fractions.Fraction, strings such as ``"3/2"`` or half-integer floats.
    Returns 0 when a triad (j1 j2 j3), (j1 j5 j6), (j4 j2 j6), (j4 j5 j3) fails
    the triangle rule or has a half-integer sum.
    """
    from sympy.physics.wigner import wigner_6j
    j = [_spin(x) for x in (j1, j2, j3, j4, j5, j6)]
    for t in ((0, 1, 2), (0, 4, 5), (3, 1, 5), (3, 4, 2)):
        if not _triad(*(j[i] for i in t)):
            return _sympy().Integer(0)
    return wigner_6j(*j)


def ninej(j1: Spin, j2: Spin, j3: Spin, j4: Spin, j5: Spin, j6: Spin, j7: Spin, j8: Spin, j9: Spin):
    """The Wigner 9j symbol {j1 j2 j3; j4 j5 j6; j7 j8 j9} (rows as written), exact.

    Evaluated as sum_x (-1)^(2x) (2x+1) {j1 j4 j7; j8 j9 x}{j2 j5 j8; j4 x j6}{j3 j6 j9; x j1 j2}.
    Spins as for ``sixj``.
    """
    sp = _sympy()
    j = [_spin(x) for x in (j1, j2, j3, j4, j5, j6, j7, j8, j9)]
    rows = ((0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8))
    if not all(_triad(*(j[i] for i in t)) for t in rows):
        return sp.Integer(0)
    J1, J2, J3, J4, J5, J6, J7, J8, J9 = j
    lo = max(abs(J1 - J9), abs(J4 - J8), abs(J2 - J6))
    hi = min(J1 + J9, J4 + J8, J2 + J6)
    total = sp.Integer(0)
    x = lo
    while x <= hi:
        term = (sixj(J1, J4, J7, J8, J9, x) * sixj(J2, J5, J8, J4, x, J6) * sixj(J3, J6, J9, x, J1, J2))
        if term != 0:
            total += (-1) ** int(2 * x) * (2 * x + 1) * term
        x += 1
    return sp.radsimp(sp.expand(total))
