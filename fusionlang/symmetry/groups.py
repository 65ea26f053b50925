"""Symmetry groups O3, SO3 and SU2: irrep labels, dimensions and selection rules.

An irrep is stored as twice its spin (so that SU2's half-integers are exact
integers) and, for O3, a parity of +1 (even, ``e``) or -1 (odd, ``o``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..diagnostics import FusionError

# Hard limits on labels, documented in docs/limits.md.  They bound the work any
# input can cause: coupling tables grow like j^6, wire dimensions like mul * j.
MAX_TWO_J = 24          # l <= 12 for O3/SO3, j <= 12 for SU2
MAX_MULTIPLICITY = 65536


class LabelError(FusionError, ValueError):
    """A label that does not name an irrep of the group; carries a fix."""

    def __init__(self, message: str, help: str | None = None):
        super().__init__(message)
        self.message = message
        self.help = help


@dataclass(frozen=True, order=True)
class Irrep:
    two_j: int
    parity: int = 0     # +1 / -1 for O3, 0 for groups without parity

    @property
    def dim(self) -> int:
        return self.two_j + 1

    @property
    def l(self) -> int:
        """The integer spin (O3/SO3 only)."""
        return self.two_j // 2

    def __str__(self) -> str:
        if self.parity:
            return f"{self.l}{'e' if self.parity > 0 else 'o'}"
        if self.two_j % 2:
            return f"{self.two_j}/2"
        return str(self.two_j // 2)


@dataclass(frozen=True)
class MulIrrep:
    mul: int
    irrep: Irrep

    @property
    def dim(self) -> int:
        return self.mul * self.irrep.dim

    def __str__(self) -> str:
        return f"{self.mul}x{self.irrep}"


class Irreps(tuple):
    """A direct sum of irreps with multiplicities, in written order (mul_ir layout)."""

    def __new__(cls, terms=()):
        return super().__new__(cls, tuple(terms))

    @property
    def dim(self) -> int:
        return sum(t.dim for t in self)

    @property
    def irreps(self) -> list[Irrep]:
        return [t.irrep for t in self]

    def slices(self) -> list[slice]:
        out, start = [], 0
        for t in self:
            out.append(slice(start, start + t.dim))
            start += t.dim
        return out

    def __str__(self) -> str:
        return " + ".join(str(t) for t in self) if self else "0"

    def __repr__(self) -> str:
        return f"Irreps({str(self)!r})"


def triangle(a: Irrep, b: Irrep, c: Irrep) -> bool:
    return abs(a.two_j - b.two_j) <= c.two_j <= a.two_j + b.two_j


@dataclass(frozen=True)
class Group:
    name: str
    has_parity: bool
    allows_half: bool
    is_complex: bool

    def admissible(self, a: Irrep, b: Irrep, c: Irrep) -> bool:
        """Whether c occurs in a (x) b: the selection rules of docs/language.md section 5."""
        if not triangle(a, b, c):
            return False
        if (a.two_j + b.two_j + c.two_j) % 2:
            return False
        if self.has_parity and c.parity != a.parity * b.parity:
            return False
        return True

    def product(self, a: Irrep, b: Irrep) -> list[Irrep]:
        """Every irrep in a (x) b, ascending."""
        parity = a.parity * b.parity if self.has_parity else 0
        lo, hi = abs(a.two_j - b.two_j), a.two_j + b.two_j
        return [Irrep(tj, parity) for tj in range(lo, hi + 1, 2)]

    def sh(self, lmax: int) -> list[Irrep]:
        """The irreps of spherical harmonics up to lmax: 0e + 1o + 2e + ..."""
        return [Irrep(2 * l, (-1) ** l if self.has_parity else 0) for l in range(lmax + 1)]

    def example_labels(self) -> str:
        return {"O3": "0e, 1o, 2e", "SO3": "0, 1, 2", "SU2": "0, 1/2, 1, 3/2"}[self.name]

    def parse_label(self, text: str) -> Irrep:
        """Parse one irrep literal of this group, or raise LabelError with a fix."""
        m = _LABEL.fullmatch(text)
        if not m:
            raise LabelError(f"`{text}` is not an irrep label of group {self.name}",
                             f"{self.name} irreps are written {self.example_labels()}")
        digits, den, suffix = m.group(1), m.group(3), m.group(4)
        if len(digits) > 6 or (den and len(den) > 6):
            raise LabelError(f"irrep `{text}` is beyond the limit l, j <= {MAX_TWO_J // 2}")
        if den is not None:
            if not self.allows_half:
                raise LabelError(f"`{text}` is a half-integer spin, which group {self.name} does not have",
                                 "half-integer spins need `group SU2`")
            if den != "2" or int(digits) % 2 == 0:
                raise LabelError(f"`{text}` is not a spin: write half-integers as an odd number over 2",
                                 "for example 1/2, 3/2, 5/2")
            two_j, parity = int(digits), 0
        elif suffix:
            if not self.has_parity:
                hint = (f"{self.name} irreps have no parity: write `{digits}`")
                raise LabelError(f"`{text}` has a parity suffix, which group {self.name} does not have", hint)
            if suffix not in ("e", "o"):
                raise LabelError(f"`{text}` is not an O3 irrep: the parity is `e` (even) or `o` (odd)",
                                 f"for example `{digits}e` or `{digits}o`")
            two_j, parity = 2 * int(digits), (1 if suffix == "e" else -1)
        else:
            if self.has_parity:
                l = int(digits)
                guess = "e" if l % 2 == 0 else "o"
                raise LabelError(f"`{text}` lacks a parity: O3 irreps are written with `e` or `o`",
                                 f"write `{digits}{guess}` (the parity of the spherical harmonic Y_{l}) "
                                 f"or `{digits}{'o' if guess == 'e' else 'e'}`")
            two_j, parity = 2 * int(digits), 0
        if two_j > MAX_TWO_J:
            raise LabelError(f"irrep `{text}` is beyond the limit l, j <= {MAX_TWO_J // 2}",
                             "fusionlang bounds spins so that coupling tables stay small; see docs/limits.md")
        return Irrep(two_j, parity)


_LABEL = re.compile(r"([0-9]+)(?:(/)([0-9]+)|([A-Za-z]+))?")

GROUPS = {
    "O3": Group("O3", has_parity=True, allows_half=False, is_complex=False),
    "SO3": Group("SO3", has_parity=False, allows_half=False, is_complex=False),
    "SU2": Group("SU2", has_parity=False, allows_half=True, is_complex=True),
}


def parse_irreps(group: Group | str, text: str) -> Irreps:
    """Parse a plain sum such as ``16x0e + 8x1o`` (a convenience for Python users and tests)."""
    if isinstance(group, str):
        group = GROUPS[group]
    terms = []
    for part in text.replace(" ", "").split("+"):
        mul, _, label = part.rpartition("x")
        terms.append(MulIrrep(int(mul) if mul else 1, group.parse_label(label)))
    return Irreps(terms)
