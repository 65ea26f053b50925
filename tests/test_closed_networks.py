"""Closed SU(2) networks evaluate to the recoupling identities they encode.

The tetrahedron of examples/diagrams/su2_tetrahedron.fus, with labels
a = j2, b = j3, c = j4, e = j1, f = j6, J = j5:

    V = sum_m C^e_{a b} C^J_{e c} C^f_{a c} C^J_{b f}

Swapping the last coupling's arguments, C^J_{b f} = (-1)^(b+f-J) C^J_{f b}, turns
V into (2J+1) times the recoupling coefficient between ((a b)e c)J and
((a c)f b)J, which is (-1)^(b+c+e+f) sqrt((2e+1)(2f+1)) {b a e; c J f}. So

    V = (-1)^(2b+c+e+2f-J) (2J+1) sqrt((2e+1)(2f+1)) {b a e; c J f}.

The theta graph (a (x) b -> c, then split back) is 2c + 1.
"""
import itertools
from fractions import Fraction

import pytest
import sympy
from sympy.physics.wigner import wigner_6j

from fusionlang.frontend import analyze
from fusionlang.reference import evaluate_closed

HALF = [Fraction(k, 2) for k in range(0, 5)]          # 0 .. 2


def label(j: Fraction) -> str:
    return str(j.numerator) if j.denominator == 1 else f"{j.numerator}/2"


def triad(x, y, z) -> bool:
    return abs(x - y) <= z <= x + y and (x + y + z).denominator == 1


def tetrahedron_labels():
    out = []
    for a, b, c, e, f, J in itertools.product(HALF, repeat=6):
        if triad(a, b, e) and triad(e, c, J) and triad(a, c, f) and triad(b, f, J):
            out.append((a, b, c, e, f, J))
    return out


LABELS = tetrahedron_labels()


def tetrahedron(a, b, c, e, f, J) -> str:
    return f"""group SU2
diagram Tetrahedron {{
    wire j1 : {label(e)}
    wire j2 : {label(a)}
    wire j3 : {label(b)}
    wire j4 : {label(c)}
    wire j5 : {label(J)}
    wire j6 : {label(f)}
    (j2, j3) = split(j1)
    (j1, j4) = split(j5)
    j6 = fuse(j2, j4)
    j5 = fuse(j3, j6)
}}
"""


def expected(a, b, c, e, f, J):
    phase = (-1) ** int(2 * b + c + e + 2 * f - J)
    r = lambda x: sympy.Rational(x.numerator, x.denominator)
    return phase * (2 * r(J) + 1) * sympy.sqrt((2 * r(e) + 1) * (2 * r(f) + 1)) * \
        wigner_6j(r(b), r(a), r(e), r(c), r(J), r(f))


def test_many_label_sets():
    assert len(LABELS) > 150


@pytest.mark.parametrize("labels", LABELS[::3], ids=lambda t: "-".join(label(x) for x in t))
def test_tetrahedron_is_a_6j_symbol(labels):
    result = analyze(tetrahedron(*labels))
    assert result.ok, [d.message for d in result.diagnostics]
    value = evaluate_closed(result.diagrams[0], exact=True)
    assert sympy.simplify(value - expected(*labels)) == 0
    assert abs(evaluate_closed(result.diagrams[0]) - float(expected(*labels))) < 1e-12


@pytest.mark.parametrize("a,b,c", [(Fraction(1, 2), Fraction(1, 2), Fraction(1)), (Fraction(1), Fraction(1), Fraction(2)),
                                   (Fraction(3, 2), Fraction(1), Fraction(1, 2)), (Fraction(2), Fraction(2), Fraction(0))])
def test_theta_is_the_dimension(a, b, c):
    text = f"""group SU2
diagram Theta {{
    wire a : {label(a)}
    wire b : {label(b)}
    wire c : {label(c)}
    c = fuse(a, b)
    (a, b) = split(c)
}}
"""
    result = analyze(text)
    assert evaluate_closed(result.diagrams[0], exact=True) == 2 * sympy.Rational(c.numerator, c.denominator) + 1
