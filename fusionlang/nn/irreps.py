"""O(3) irreps in e3nn's vocabulary: ``Irrep``, ``MulIr`` and ``Irreps``.

The classes are tuples exactly like e3nn's (``Irrep`` is ``(l, p)``, ``MulIr``
is ``(mul, ir)``, ``Irreps`` a tuple of ``MulIr``), so they compare equal to
e3nn's objects and either library accepts the other's.  Strings are parsed as
the `.fus` language parses an irreps expression (labels through
``fusionlang.groups``); anything beyond a flat sum such as ``16x0e + 8x1o``
(``16x(0e + 1o)``, ``sh(2)``) goes through the language's own front end, so a
bad string gets the language's diagnostic.
"""
from __future__ import annotations

import collections
import re
import numpy as np
import torch

from ..diagnostics import Diagnostic, Span
from ..frontend import analyze
from ..symmetry import groups
from ..symmetry.wigner import angles_from_matrix, irreps_D

__all__ = ["Irrep", "MulIr", "Irreps"]

_O3 = groups.GROUPS["O3"]

# A flat sum of e3nn-style terms: the fast path that needs no parser.
_TERM = r"\s*(?:([0-9]+)\s*x\s*)?([0-9]+[A-Za-z]+)\s*"
_FLAT = re.compile(rf"{_TERM}(?:\+{_TERM})*")
_TERM_RE = re.compile(_TERM)


def _label_error(exc: groups.LabelError) -> ValueError:
    help_line = f"\n  = help: {exc.help}" if exc.help else ""
    return ValueError(f"{exc.message}{help_line}")


class Irrep(tuple):
    """One O(3) irrep ``(l, p)``: degree ``l >= 0`` and parity ``p = +1`` (``e``) or ``-1`` (``o``).

    ``Irrep("1o")``, ``Irrep(1, -1)``, ``Irrep((1, -1))``, an e3nn ``Irrep`` or a
    ``fusionlang.groups.Irrep`` of group O3 all give the same object.
    """

    def __new__(cls, l, p=None):
        if p is None:
            if isinstance(l, Irrep):
                return l
            if isinstance(l, MulIr):
                return l.ir
            if isinstance(l, str):
                text = l.strip()
                try:
                    ir = _O3.parse_label(text)
                except groups.LabelError as exc:
                    raise _label_error(exc) from None
                return super().__new__(cls, (ir.l, ir.parity))
            if isinstance(l, groups.Irrep):
                if l.two_j % 2 or l.parity not in (1, -1):
                    raise ValueError(f"`{l}` is not an O3 irrep (it needs an integer l and a parity e or o)")
                return super().__new__(cls, (l.l, l.parity))
            if isinstance(l, tuple) and tuple.__len__(l) == 2:     # e3nn's Irrep refuses len()
                l, p = l
            else:
                raise ValueError(f"cannot read {l!r} as an O3 irrep; write it as '1o', (1, -1) or Irrep(1, -1)")
        if isinstance(l, (np.integer,)):
            l = int(l)
        if isinstance(p, (np.integer,)):
            p = int(p)
        if isinstance(l, bool) or not isinstance(l, int) or l < 0:
            raise ValueError(f"l must be a non-negative int, got {l!r}")
        if p not in (1, -1) or isinstance(p, bool):
            raise ValueError(f"the parity must be 1 (e) or -1 (o), got {p!r}")
        return super().__new__(cls, (l, p))

    @property
    def l(self) -> int:  # noqa: E743 - e3nn's name
        return self[0]

    @property
    def p(self) -> int:
        return self[1]

    @property
    def dim(self) -> int:
        return 2 * self.l + 1

    def is_scalar(self) -> bool:
        """``0e``: invariant under rotations and inversion."""
        return self.l == 0 and self.p == 1

    def __mul__(self, other):
        """The irreps of ``self (x) other``, ascending in l (a generator, as in e3nn)."""
        other = Irrep(other)
        p = self.p * other.p
        return (Irrep(l, p) for l in range(abs(self.l - other.l), self.l + other.l + 1))

    def __rmul__(self, mul):
        if not isinstance(mul, (int, np.integer)) or isinstance(mul, bool):
            return NotImplemented
        return Irreps([(int(mul), self)])

    def __add__(self, other):
        return Irreps(self) + Irreps(other)

    def __radd__(self, other):
        return Irreps(other) + Irreps(self)

    def __str__(self) -> str:
        return f"{self.l}{'e' if self.p == 1 else 'o'}"

    __repr__ = __str__

    def to_group_irrep(self) -> groups.Irrep:
        """The same irrep as the compiler's ``fusionlang.groups.Irrep``."""
        return groups.Irrep(2 * self.l, self.p)

    def D_from_angles(self, alpha, beta, gamma, k=0) -> torch.Tensor:
        """The representation matrix at ``R(alpha, beta, gamma)`` (times ``p**k``), float64 ``[..., dim, dim]``."""
        return Irreps(self).D_from_angles(alpha, beta, gamma, k)

    def D_from_matrix(self, R) -> torch.Tensor:
        """The representation matrix of a 3x3 orthogonal matrix (det -1 includes the inversion)."""
        return Irreps(self).D_from_matrix(R)


class MulIr(tuple):
    """``(mul, ir)``: ``mul`` copies of the irrep ``ir`` (e3nn's ``_MulIr``)."""

    def __new__(cls, mul, ir=None):
        if ir is None:
            mul, ir = mul
        if isinstance(mul, np.integer):
            mul = int(mul)
        if isinstance(mul, bool) or not isinstance(mul, int) or mul < 0:
            raise ValueError(f"a multiplicity is a non-negative int, got {mul!r}")
        return super().__new__(cls, (mul, Irrep(ir)))

    @property
    def mul(self) -> int:
        return self[0]

    @property
    def ir(self) -> Irrep:
        return self[1]

    @property
    def dim(self) -> int:
        return self.mul * self.ir.dim

    def __str__(self) -> str:
        return f"{self.mul}x{self.ir}"

    __repr__ = __str__


def _terms_of_text(text: str) -> list[MulIr]:
    if not text.strip():
        return []
    if _FLAT.fullmatch(text):
        terms = []
        for part in text.split("+"):
            mul, label = _TERM_RE.fullmatch(part).groups()
            try:
                ir = _O3.parse_label(label)
            except groups.LabelError:
                return _terms_by_language(text)     # raises with the language's diagnostic
            terms.append(MulIr(int(mul) if mul is not None else 1, Irrep(ir)))
        return terms
    return _terms_by_language(text)


def _terms_by_language(text: str) -> list[MulIr]:
    """Parse an irreps expression with the `.fus` front end (parentheses, ``sh(L)``)."""
    if any(c in text for c in "{}#\n\r"):
        raise ValueError(f"`{text}` is not an irreps expression (write for example `16x0e + 8x1o`)")
    prefix = "    in x : "
    source = f"group O3\ndiagram D {{\n{prefix}{text}\n}}\n"
    analysis = analyze(source, "<irreps>")
    errors = [d for d in analysis.diagnostics if d.is_error]
    if errors:
        d = errors[0]
        span = None
        if d.span is not None and d.span.line == 3:
            col = max(1, d.span.column - len(prefix))
            end = max(col + 1, d.span.end_column - len(prefix)) if d.span.end_line == 3 else len(text) + 1
            span = Span(1, col, 1, end, col - 1, end - 1)
        shown = Diagnostic(d.code, d.message, span, d.help, "error", "<irreps>")
        raise ValueError(f"`{text}` is not an irreps expression:\n{shown.render(text)}")
    return [MulIr(t.mul, Irrep(t.irrep)) for t in analysis.diagrams[0].irreps("x")]


def _is_pair(item) -> bool:
    return isinstance(item, tuple) and tuple.__len__(item) == 2     # e3nn's Irrep refuses len()


_Sorted = collections.namedtuple("sort", ["irreps", "p", "inv"])


class Irreps(tuple):
    """A direct sum of O(3) irreps in written order (e3nn's ``mul_ir`` layout).

    Accepts a string (``"16x0e+8x1o"``, ``"16x0e + 8x1o"``, the language's
    ``"16x(0e + 1o)"`` or ``"sh(2)"``), another ``Irreps`` (ours, e3nn's or
    ``fusionlang.groups.Irreps``), an ``Irrep``, or an iterable of irreps and
    ``(mul, irrep)`` pairs.  ``str()`` prints e3nn's form, which the language
    also reads.
    """

    def __new__(cls, irreps=None):
        if isinstance(irreps, Irreps) and type(irreps) is cls:
            return irreps
        terms: list[MulIr] = []
        if irreps is None:
            pass
        elif isinstance(irreps, str):
            terms = _terms_of_text(irreps)
        elif isinstance(irreps, (Irrep, groups.Irrep)):
            terms = [MulIr(1, Irrep(irreps))]
        elif isinstance(irreps, groups.MulIrrep):
            terms = [MulIr(irreps.mul, Irrep(irreps.irrep))]
        else:
            try:
                items = list(irreps)
            except TypeError:
                raise ValueError(f"cannot read {irreps!r} as irreps; write for example '16x0e + 8x1o'") from None
            for item in items:
                if isinstance(item, str):
                    terms.extend(_terms_of_text(item))
                elif isinstance(item, (Irrep, groups.Irrep)):
                    terms.append(MulIr(1, Irrep(item)))
                elif isinstance(item, groups.MulIrrep):
                    terms.append(MulIr(item.mul, Irrep(item.irrep)))
                elif _is_pair(item) and isinstance(item[1], (tuple, str, groups.Irrep)):
                    terms.append(MulIr(item[0], Irrep(item[1])))
                elif _is_pair(item):
                    # a bare (l, p) pair
                    terms.append(MulIr(1, Irrep(item)))
                else:
                    raise ValueError(f"cannot read {item!r} as a term of an irreps; use (mul, '1o') or '1o'")
        self = super().__new__(cls, terms)
        # str(self), computed once: torch.compile cannot trace str.join
        self._text = "+".join(str(t) for t in terms)
        return self

    # -- sizes ---------------------------------------------------------------

    @property
    def dim(self) -> int:
        return sum(t.dim for t in self)

    @property
    def num_irreps(self) -> int:
        return sum(t.mul for t in self)

    @property
    def ls(self) -> list[int]:
        return [t.ir.l for t in self for _ in range(t.mul)]

    @property
    def lmax(self) -> int:
        if not self:
            raise ValueError("an empty Irreps has no lmax")
        return max(t.ir.l for t in self)

    def slices(self) -> list[slice]:
        """The slice of each term in a tensor ``[..., dim]``."""
        out, start = [], 0
        for t in self:
            out.append(slice(start, start + t.dim))
            start += t.dim
        return out

    # -- e3nn's operations ---------------------------------------------------

    def __getitem__(self, i):
        item = super().__getitem__(i)
        return Irreps(item) if isinstance(i, slice) else item

    def __contains__(self, ir) -> bool:
        ir = Irrep(ir)
        return any(t.ir == ir for t in self)

    def count(self, ir) -> int:
        """The total multiplicity of ``ir``."""
        ir = Irrep(ir)
        return sum(t.mul for t in self if t.ir == ir)

    def index(self, *args):  # tuple.index makes no sense for a direct sum
        raise NotImplementedError("Irreps.index is not defined; use slices() or a loop over the terms")

    def __add__(self, other) -> "Irreps":
        return Irreps(tuple(self) + tuple(Irreps(other)))

    def __radd__(self, other) -> "Irreps":
        return Irreps(tuple(Irreps(other)) + tuple(self))

    def __mul__(self, n) -> "Irreps":
        """``irreps * n``: the terms repeated n times (e3nn's meaning)."""
        if isinstance(n, Irreps):
            raise NotImplementedError("the product of two Irreps is a tensor product: use FullTensorProduct")
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool):
            return NotImplemented
        return Irreps(tuple(self) * int(n))

    __rmul__ = __mul__

    def simplify(self) -> "Irreps":
        """Merge neighbouring equal irreps and drop zero multiplicities (order kept, nothing sorted)."""
        out: list[list] = []
        for mul, ir in self:
            if out and out[-1][1] == ir:
                out[-1][0] += mul
            elif mul > 0:
                out.append([mul, ir])
        return Irreps([(m, ir) for m, ir in out])

    def remove_zero_multiplicities(self) -> "Irreps":
        return Irreps([t for t in self if t.mul > 0])

    def sort(self):
        """Stable sort by ``(l, p)`` (odd before even at equal l, as e3nn).

        Returns ``(irreps, p, inv)``: term ``i`` moves to position ``p[i]``, and
        position ``j`` holds the old term ``inv[j]``.
        """
        order = sorted(range(len(self)), key=lambda i: (self[i].ir, i))
        inv = tuple(order)
        p = [0] * len(inv)
        for j, i in enumerate(inv):
            p[i] = j
        return _Sorted(Irreps([self[i] for i in inv]), tuple(p), inv)

    def regroup(self) -> "Irreps":
        """``sort()`` then ``simplify()``."""
        return self.sort().irreps.simplify()

    def filter(self, keep=None, *, drop=None, lmax: int | None = None) -> "Irreps":
        """The terms whose irrep is in ``keep`` (and not in ``drop``, and ``l <= lmax``)."""
        def as_set(x):
            if x is None:
                return None
            if isinstance(x, (str, Irrep)):
                x = Irreps(x)
            return {Irrep(t.ir if isinstance(t, MulIr) else t) for t in x}

        keep_set, drop_set = as_set(keep), as_set(drop)
        return Irreps([t for t in self
                       if (keep_set is None or t.ir in keep_set)
                       and (drop_set is None or t.ir not in drop_set)
                       and (lmax is None or t.ir.l <= lmax)])

    @staticmethod
    def spherical_harmonics(lmax: int, p: int = -1) -> "Irreps":
        """``0e + 1o + 2e + ...`` up to lmax (``p=1``: all even)."""
        return Irreps([(1, (l, p ** l)) for l in range(lmax + 1)])

    def __str__(self) -> str:
        return self._text

    __repr__ = __str__

    # -- bridges -------------------------------------------------------------

    def to_group_irreps(self) -> groups.Irreps:
        """The compiler's ``fusionlang.groups.Irreps`` (for ``fusionlang.wigner.irreps_D`` and friends)."""
        return groups.Irreps(groups.MulIrrep(t.mul, t.ir.to_group_irrep()) for t in self)

    def D_from_angles(self, alpha, beta, gamma, k=0) -> torch.Tensor:
        """Block-diagonal representation matrix, float64 ``[..., dim, dim]``, e3nn's Y-X-Y angles.

        ``k`` = 1 (or a tensor of 0/1) includes the inversion: blocks of odd irreps change sign.
        """
        def arr(v):
            return v.detach().cpu().double().numpy() if isinstance(v, torch.Tensor) else np.asarray(v, np.float64)

        a, b, c = arr(alpha), arr(beta), arr(gamma)
        D = torch.from_numpy(irreps_D("O3", [(t.mul, t.ir.to_group_irrep()) for t in self], a, b, c))
        kk = torch.as_tensor(arr(k))
        if bool((kk != 0).any()):
            signs = torch.tensor([float(t.ir.p) for t in self for _ in range(t.dim)], dtype=torch.float64)
            # p**k on the diagonal: -1 for odd irreps where k is 1
            flip = torch.where((kk != 0)[..., None], signs, torch.ones_like(signs))
            D = D * flip[..., None, :]
        return D

    def D_from_matrix(self, R) -> torch.Tensor:
        """Representation matrix of an orthogonal 3x3 ``R`` (``det R = -1`` includes the inversion)."""
        R = torch.as_tensor(R, dtype=torch.float64)
        det = torch.linalg.det(R)
        k = (det < 0).double()
        proper = R * torch.where(det < 0, -1.0, 1.0)[..., None, None]
        alpha, beta, gamma = angles_from_matrix(proper.numpy())
        return self.D_from_angles(alpha, beta, gamma, k)

    def randn(self, *size, normalization: str = "component", dtype=None, device=None,
              generator=None, requires_grad: bool = False) -> torch.Tensor:
        """Random features ``[*size, dim]``: unit variance per component, or unit norm per irrep with ``norm``."""
        x = torch.randn(*size, self.dim, dtype=dtype, device=device, generator=generator)
        if normalization == "norm":
            scale = torch.cat([torch.full((t.dim,), t.ir.dim ** -0.5) for t in self]) if self else torch.ones(0)
            x = x * scale.to(x)
        elif normalization != "component":
            raise ValueError(f"normalization is 'component' or 'norm', got {normalization!r}")
        return x.requires_grad_(requires_grad)

