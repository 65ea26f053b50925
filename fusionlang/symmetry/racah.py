"""The Racah formula with exact Python integers: Clebsch–Gordan coefficients <j1 m1 j2 m2 | j3 m3> in
the standard basis (Condon–Shortley phases), as exact (sign, square) pairs or as float64 matrices with
one correctly rounded square root per entry.  Spins are given as twice their value (two_j)."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from .groups import MAX_TWO_J

FACTORIALS = [1]
for _i in range(1, 4 * MAX_TWO_J + 8):
    FACTORIALS.append(FACTORIALS[-1] * _i)
del _i


def racah_sum(n1: int, n2: int, n3: int, n4: int, n5: int) -> tuple[int, int]:
    """Racah's alternating sum as an exact fraction T / P (T = 0 when the range is empty):

    S = sum_k (-1)^k / (k! (n1-k)! (n2-k)! (n3-k)! (n4+k)! (n5+k)!)
    """
    f = FACTORIALS
    kmin, kmax = max(0, -n4, -n5), min(n1, n2, n3)
    if kmin > kmax:
        return 0, 1
    P = f[kmax] * f[n1 - kmin] * f[n2 - kmin] * f[n3 - kmin] * f[n4 + kmax] * f[n5 + kmax]
    T, s = 0, (1 if kmin % 2 == 0 else -1)
    for k in range(kmin, kmax + 1):
        T += s * (P // (f[k] * f[n1 - k] * f[n2 - k] * f[n3 - k] * f[n4 + k] * f[n5 + k]))
        s = -s
    return T, P


def cg_entry_exact(a: int, b: int, c: int, ma: int, mb: int) -> tuple[int, Fraction]:
    """<j1 m1 j2 m2 | j3 m1+m2> as (sign, square) with exact integers; args are twice the spins."""
    f = FACTORIALS
    mc = ma + mb
    n1 = (a + b - c) // 2
    n2 = (a - ma) // 2
    n3 = (b + mb) // 2
    n4 = (c - b + ma) // 2
    n5 = (c - a - mb) // 2
    T, P = racah_sum(n1, n2, n3, n4, n5)
    if T == 0:
        return 0, Fraction(0)
    num = ((c + 1) * f[(c + a - b) // 2] * f[(c - a + b) // 2] * f[n1]
           * f[(c + mc) // 2] * f[(c - mc) // 2] * f[n2] * f[(a + ma) // 2] * f[(b - mb) // 2] * f[n3]
           * T * T)
    den = f[(a + b + c) // 2 + 1] * P * P
    return (1 if T > 0 else -1), Fraction(num, den)


def su2_compact(a: int, b: int, c: int) -> np.ndarray:
    """The nonzero CS coefficients as a [a+1, b+1] float64 matrix.

    Entry [i, j] is <j1 m1 j2 m2 | j3 m1+m2> with m1 = i - j1, m2 = j - j2; it
    sits at index k = i + j - (a + b - c)/2 of the third axis (zero where that
    is out of range).
    """
    out = np.zeros((a + 1, b + 1))
    f = FACTORIALS
    n1 = (a + b - c) // 2
    pre = (c + 1) * f[(c + a - b) // 2] * f[(c - a + b) // 2] * f[n1]
    pre_den = f[(a + b + c) // 2 + 1]
    for ma in range(-a, a + 1, 2):
        n2 = (a - ma) // 2
        for mb in range(-b, b + 1, 2):
            mc = ma + mb
            if mc > c or mc < -c:
                continue
            n3 = (b + mb) // 2
            n4 = (c - b + ma) // 2
            n5 = (c - a - mb) // 2
            T, P = racah_sum(n1, n2, n3, n4, n5)
            if T == 0:
                continue
            num = pre * f[(c + mc) // 2] * f[(c - mc) // 2] * f[n2] * f[(a + ma) // 2] * f[(b - mb) // 2] * f[n3]
            v = math.sqrt(num * T * T / (pre_den * P * P))   # int / int is correctly rounded
            out[(a + ma) // 2, (b + mb) // 2] = v if T > 0 else -v
    return out


def su2_dense(a: int, b: int, c: int, compact: np.ndarray) -> np.ndarray:
    dense = np.zeros((a + 1, b + 1, c + 1), dtype=compact.dtype)
    i, j = np.meshgrid(np.arange(a + 1), np.arange(b + 1), indexing="ij")
    k = i + j - (a + b - c) // 2
    ok = (k >= 0) & (k <= c)
    dense[i[ok], j[ok], k[ok]] = compact[ok]
    return dense
