"""Exact values of closed diagrams (`fusionc eval`): integers, rationals and square roots, never floats.

A closed diagram is a tensor network whose every wire joins an output port to an input port, so its
value does not depend on the basis of any wire: the e3nn real basis of O3/SO3 is a unitary change
Q of the standard basis, and on every wire a Q from one end meets a Q^H from the other.  The value
is therefore the same sum over magnetic numbers for all three groups,

    V = sum over m of  prod over vertices  c_path <j1 m1 j2 m2 | j3 m3>

with Condon-Shortley coefficients (n-ary fuses as their left-deep trees, inner wires included) and
c_path the normalisation 1/sqrt(number of paths into the output term).  Each coefficient is

    <j1 m1 j2 m2 | j3 m3> = sqrt(pre(j1 j2 j3)) * sqrt(prod over its 3 ends (j+m)! (j-m)!) * T/P

with pre independent of m and T/P Racah's alternating sum (symmetry/racah.py).  Every wire has
exactly two ends, so the square roots of factorials pair up into the integer (j+m)!(j-m)! and

    V = sqrt(prod pre / prod c^-2)  *  (sum over m of an integer product) / (prod of denominators).

The sum is a sparse contraction of integer tensors (magnetic numbers conserved at every vertex), in
a greedy pairwise order; a 9j symbol with every spin 12 takes well under a second.  Term choices
of wires with several irreps are enumerated path by path; channels (multiplicities, `none`
vertices) are contracted with the magnetic numbers as 0/1 tensors.
"""
from __future__ import annotations

import math
from fractions import Fraction
from itertools import product

from .diagnostics import FusionError
from .ir import Diagram
from .symmetry.racah import FACTORIALS, racah_sum


class NotEvaluable(FusionError, ValueError):
    """A closed diagram without a fixed value (weights, or a wire with a free end)."""


def evaluate_exact(diagram: Diagram):
    """The exact value of a closed diagram, as a sympy number (Integer, Rational, or a sum of
    rational multiples of square roots, in sympy's canonical form)."""
    import sympy
    terms = _value(diagram)
    return sympy.Add(*[sympy.Rational(q.numerator, q.denominator) * sympy.sqrt(r)
                       for r, q in sorted(terms.items()) if q])


def _value(diagram: Diagram) -> dict[int, Fraction]:
    """{squarefree radicand r: rational q}, the value being sum q * sqrt(r)."""
    if not diagram.is_closed:
        raise NotEvaluable(f"diagram `{diagram.name}` is open")
    vertices = diagram.typed_vertices()
    for name, wire in diagram.wires.items():
        reads = sum(1 for v in vertices for w in v.inputs if w == name)
        produced = sum(1 for v in vertices for w in v.outputs if w == name)
        if reads != 1 or produced != 1:
            raise NotEvaluable(f"wire `{name}` is produced {produced} and read {reads} time"
                               f"{'s' * (reads != 1)}: in a closed diagram each wire joins one output to one input")
    choices = []
    for v in vertices:
        if v.mode != "none":
            raise NotEvaluable(f"diagram `{diagram.name}` has weights, so its value is not fixed")
        if v.per_path:
            # Its output terms are per-path blocks, not the wire's declared terms that the reader sees.
            raise NotEvaluable(f"diagram `{diagram.name}`: exact evaluation of a `paths=separate` fuse is not "
                               "supported; write the paths as separate wires and fuses")
        totals: dict[int, int] = {}
        if v.kind == "fuse":
            for p in v.paths:
                totals[p.outs[0]] = totals.get(p.outs[0], 0) + 1
        choices.append((v, totals))
    result: dict[int, Fraction] = {}
    for assignment in _assignments(choices):
        radicand, rational = _one_assignment(diagram, assignment)
        if rational:
            square, free = _squarefree(radicand.numerator * radicand.denominator)
            # sqrt(n/d) = sqrt(n d) / d, and sqrt(n d) = square * sqrt(free).
            scale = rational * Fraction(square, radicand.denominator)
            result[free] = result.get(free, Fraction(0)) + scale
    return {r: q for r, q in result.items() if q}


def _assignments(choices):
    """One path per vertex, consistent on every wire's term (depth first)."""
    chosen: list = []
    terms: dict[str, int] = {}

    def visit(k):
        if k == len(choices):
            yield list(chosen)
            return
        v, totals = choices[k]
        wires = v.inputs + v.outputs
        for p in v.paths:
            picks = list(p.ins) + list(p.outs)
            if any(terms.get(w, t) != t for w, t in zip(wires, picks)):
                continue
            added = [w for w in wires if w not in terms]
            for w, t in zip(wires, picks):
                terms[w] = t
            chosen.append((v, p, totals))
            yield from visit(k + 1)
            chosen.pop()
            for w in added:
                del terms[w]

    yield from visit(0)


def _one_assignment(diagram: Diagram, assignment) -> tuple[Fraction, Fraction]:
    """(radicand, rational) with value sqrt(radicand) * rational, for one path per vertex."""
    tensors: list[tuple[list[str], dict]] = []
    two_j: dict[str, int] = {}
    muls: dict[str, int] = {}
    radicand = Fraction(1)
    denominator = 1
    for v, p, totals in assignment:
        ins, outs = v.in_irreps, v.out_irreps
        # The binary couplings of the path: (first, second, result) wire keys, two_j of each.
        if v.kind == "split":
            a, b = v.outputs
            ja, jb = outs[0][p.outs[0]], outs[1][p.outs[1]]
            jc = ins[0][p.ins[0]]
            steps = [((a, ja), (b, jb), (v.inputs[0], jc))]
            channel_in = [(a, ja.mul), (b, jb.mul)]
            channel_out = (v.inputs[0], jc.mul)
        else:
            names = v.inputs
            terms = [ins[r][t] for r, t in enumerate(p.ins)]
            out_term = outs[0][p.outs[0]]
            inner = [(f"{v.outputs[0]}#inner{k}", label) for k, label in enumerate(p.inner)]
            labels = [(key, _Term(1, label)) for key, label in inner] + [(v.outputs[0], out_term)]
            steps = []
            acc = (names[0], terms[0])
            for r in range(1, len(names)):
                steps.append((acc, (names[r], terms[r]), labels[r - 1]))
                acc = labels[r - 1]
            channel_in = [(n, t.mul) for n, t in zip(names, terms)]
            channel_out = (v.outputs[0], out_term.mul)
            radicand /= totals[p.outs[0]]
        for (wa, ta), (wb, tb), (wc, tc) in steps:
            two_j.update({wa: ta.irrep.two_j, wb: tb.irrep.two_j, wc: tc.irrep.two_j})
            table, pre, d = _coupling_table(ta.irrep.two_j, tb.irrep.two_j, tc.irrep.two_j)
            tensors.append(([wa, wb, wc], dict(table)))
            radicand *= pre
            denominator *= d
        for name, mul in channel_in + [channel_out]:
            muls[name] = mul
        # Channels: with no weights, the output channel is the input channels' flattened index.
        if any(m != 1 for _, m in channel_in) or channel_out[1] != 1:
            keys = [f"{n}#channel" for n, _ in channel_in] + [f"{channel_out[0]}#channel"]
            sizes = [m for _, m in channel_in]
            table = {}
            for us in product(*[range(m) for m in sizes]):
                flat = 0
                for u, m in zip(us, sizes):
                    flat = flat * m + u
                table[us + (flat,)] = 1
            tensors.append((keys, table))
    # Each wire's (j+m)!(j-m)!, the product of the square roots at its two ends, goes into the first
    # coupling that has the wire (every index is then in exactly two tensors).
    for name, tj in two_j.items():
        keys, table = next(t for t in tensors if name in t[0])
        k = keys.index(name)
        for m in table:
            table[m] *= FACTORIALS[(tj + m[k]) // 2] * FACTORIALS[(tj - m[k]) // 2]
    total = _contract(tensors)
    return radicand, Fraction(total, denominator)


class _Term:
    def __init__(self, mul, irrep):
        self.mul, self.irrep = mul, irrep


_TABLES: dict[tuple[int, int, int], tuple[dict, Fraction, int]] = {}


def _coupling_table(a: int, b: int, c: int):
    """({(m_a, m_b, m_c): integer}, pre, D) with <a m_a b m_b | c m_c> = sqrt(pre) *
    sqrt(prod of the three ends' (j+m)!(j-m)!) * integer / D; arguments are twice the spins."""
    key = (a, b, c)
    if key in _TABLES:
        return _TABLES[key]
    f = FACTORIALS
    n1 = (a + b - c) // 2
    pre = Fraction((c + 1) * f[(c + a - b) // 2] * f[(c - a + b) // 2] * f[n1], f[(a + b + c) // 2 + 1])
    sums = {}
    for ma in range(-a, a + 1, 2):
        for mb in range(-b, b + 1, 2):
            mc = ma + mb
            if abs(mc) > c:
                continue
            T, P = racah_sum(n1, (a - ma) // 2, (b + mb) // 2, (c - b + ma) // 2, (c - a - mb) // 2)
            if T:
                sums[(ma, mb, mc)] = Fraction(T, P)
    d = 1
    for value in sums.values():
        d = d * value.denominator // math.gcd(d, value.denominator)
    table = {m: int(value * d) for m, value in sums.items()}
    _TABLES[key] = (table, pre, d)
    return _TABLES[key]


def _contract(tensors: list[tuple[list[str], dict]]) -> int:
    """Sum over every index of the product of sparse integer tensors; each index name occurs in
    exactly two tensors (or in one, for the per-wire factors merged first).  Greedy pairwise order:
    the pair whose result has the fewest entries (estimated), merging one-index factors first."""
    tensors = [(list(keys), dict(table)) for keys, table in tensors]
    while len(tensors) > 1:
        best = None
        for i in range(len(tensors)):
            for j in range(i + 1, len(tensors)):
                shared = set(tensors[i][0]) & set(tensors[j][0])
                if not shared:
                    continue
                estimate = len(tensors[i][1]) * len(tensors[j][1]) / max(1, _overlap(tensors[i], tensors[j], shared))
                if best is None or estimate < best[0]:
                    best = (estimate, i, j)
        if best is None:                              # disconnected parts multiply
            i, j = 0, 1
        else:
            _, i, j = best
        b = tensors.pop(j)
        a = tensors.pop(i)
        tensors.append(_join(a, b))
    keys, table = tensors[0]
    return sum(table.values())


def _overlap(a, b, shared) -> int:
    """How many distinct values the shared indices take in the smaller tensor."""
    small = a if len(a[1]) <= len(b[1]) else b
    pos = [small[0].index(k) for k in sorted(shared)]
    return len({tuple(key[p] for p in pos) for key in small[1]})


def _join(a, b):
    """Contract two sparse tensors over their shared indices (a hash join)."""
    keys_a, table_a = a
    keys_b, table_b = b
    shared = [k for k in keys_a if k in keys_b]
    pos_a = [keys_a.index(k) for k in shared]
    pos_b = [keys_b.index(k) for k in shared]
    rest_a = [i for i, k in enumerate(keys_a) if k not in shared]
    rest_b = [i for i, k in enumerate(keys_b) if k not in shared]
    index: dict[tuple, list] = {}
    for key, value in table_b.items():
        index.setdefault(tuple(key[p] for p in pos_b), []).append((tuple(key[i] for i in rest_b), value))
    out: dict[tuple, int] = {}
    for key, value in table_a.items():
        rows = index.get(tuple(key[p] for p in pos_a))
        if not rows:
            continue
        head = tuple(key[i] for i in rest_a)
        for tail, other in rows:
            k = head + tail
            out[k] = out.get(k, 0) + value * other
    return [keys_a[i] for i in rest_a] + [keys_b[i] for i in rest_b], {k: v for k, v in out.items() if v}


def _squarefree(n: int) -> tuple[int, int]:
    """(s, r) with n = s^2 r and r squarefree.  n is a product of factorials of small numbers and of
    path counts, so trial division by the primes below SMALL_PRIME_BOUND factors it; what remains (in
    principle nothing) is kept under the root, where sympy simplifies it."""
    square, free = 1, 1
    for p in _small_primes():
        if n == 1:
            break
        if n % p:
            continue
        count = 0
        while n % p == 0:
            n //= p
            count += 1
        square *= p ** (count // 2)
        if count % 2:
            free *= p
    root = math.isqrt(n)
    if root * root == n:
        return square * root, free
    return square, free * n


SMALL_PRIME_BOUND = 1 << 16


def _small_primes() -> list[int]:
    global _PRIMES
    if _PRIMES is None:
        sieve = bytearray([1]) * SMALL_PRIME_BOUND
        sieve[0:2] = b"\x00\x00"
        for i in range(2, math.isqrt(SMALL_PRIME_BOUND) + 1):
            if sieve[i]:
                sieve[i * i::i] = bytearray(len(sieve[i * i::i]))
        _PRIMES = [i for i in range(SMALL_PRIME_BOUND) if sieve[i]]
    return _PRIMES


_PRIMES = None
