"""Pairwise contraction orders chosen by a cost model of eager PyTorch on a CPU.

A contraction such as ``zai,zbj,ijq,abq,qo->zao`` is evaluated as a sequence
of pairwise steps.  Each step is one of four kinds, and the emitter writes each
kind differently:

    mul      nothing is summed: a broadcast multiply
    matmul   indices summed, no index shared by both operands and the result: one GEMM
    bmm      a batched GEMM whose matrices are not tiny
    mulsum   a batched product written as broadcast multiply, then sum.  Below about 400
             multiply-adds per matrix product, PyTorch's CPU bmm loops over the batch
             element by element (a select and a naive kernel each, about a microsecond),
             so for thousands of tiny matrices the vectorised multiply-and-sum wins.

The cost of a step is its arithmetic plus WRITE_WEIGHT per element it writes
(memory traffic dominates these small, wide tensors).  Up to 8 operands the best
contraction tree is found exactly (dynamic programming over subsets); beyond
that, the cheapest next step is taken greedily.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

# In units of one GEMM FLOP, measured by benchmarks/bench_primitives.py on a 2-core x86 CPU with
# PyTorch 2.13 (float32, batch 4096).  BMM_FLOP_WEIGHT is the exception: the measured 3.5 (one
# shape) made the planner avoid bmm where it wins on benchmarks/bench_tensor_product.py's cases.
WRITE_WEIGHT = 14             # writing one element of a result
COPY_WEIGHT = 22              # copying one element into a new layout before a matmul
BMM_FLOP_WEIGHT = 1.0         # one FLOP of a contiguous batched matmul
SMALL_BMM = 400               # m*n*k below which PyTorch's CPU bmm takes its per-element loop
SMALL_BMM_OVERHEAD = 25_000   # one batch element of that loop (~0.4 us)
MULSUM_WEIGHT = 59            # one element of a broadcast multiply-and-sum
EXHAUSTIVE_LIMIT = 8


@dataclass(frozen=True)
class Step:
    positions: tuple[int, int]   # the two operands' places in the running list (results are appended)
    equation: str                # "ab,bc->ac": inputs in the order of positions
    kind: str                    # mul | matmul | bmm | mulsum
    flops: int
    written: int
    cost: int
    # For bmm: the letter groups (shared, first-only, second-only, summed) and every letter's size.
    groups: tuple[str, str, str, str] = ("", "", "", "")
    sizes: tuple[tuple[str, int], ...] = ()


def _size(letters, sizes) -> int:
    return math.prod(sizes[c] for c in letters)


def _grouped(sub: str, groups: list[list[str]]) -> bool:
    """Whether sub lists its letters group by group in the given group order (a view, no copy)."""
    seq = [c for g in groups for c in g if c in sub]
    return list(sub) == seq


def pair_step(a: str, b: str, keep: set[str], sizes: dict[str, int], out: str | None = None):
    """The step contracting subscripts a and b, keeping the letters in keep (or exactly `out`)."""
    union = "".join(dict.fromkeys(a + b))
    summed = [c for c in union if c not in keep] if out is None else [c for c in union if c not in out]
    shared = [c for c in a if c in b and c not in summed]
    a_only = [c for c in a if c not in b and c not in summed]
    b_only = [c for c in b if c not in a and c not in summed]
    # Summing over letters of size 1 is no reduction at all: such a step is a plain multiply.
    real_sum = [c for c in summed if sizes[c] > 1]
    if out is not None:
        result = out
    elif not real_sum or not shared:
        # An elementwise result keeps the larger operand's layout (so the batch stays outermost).
        big, small = (a, b) if _size(a, sizes) >= _size(b, sizes) else (b, a)
        result = "".join([c for c in big if c not in summed] + [c for c in small if c not in big and c not in summed])
    else:
        result = "".join(shared + a_only + b_only)   # a batched matmul's natural order: no copy after it
    full = _size(union, sizes)
    written = _size(result, sizes)
    flops = full * (2 if real_sum else 1)
    # Operands whose letters are not already grouped as the kernel wants are copied first.
    copies = 0
    for sub, own in ((a, a_only), (b, b_only)):
        if not (_grouped(sub, [shared, own, summed]) or _grouped(sub, [shared, summed, own])):
            copies += _size(sub, sizes)
    if out is not None and not _grouped(out, [shared, a_only, b_only]):
        copies += written
    copy_cost = COPY_WEIGHT * copies
    if not real_sum:
        kind, cost = "mul", full + WRITE_WEIGHT * written
    elif not shared:
        kind, cost = "matmul", flops + WRITE_WEIGHT * written + copy_cost
    else:
        m, n, k = _size(a_only, sizes), _size(b_only, sizes), _size(summed, sizes)
        per_batch = SMALL_BMM_OVERHEAD if m * n * k < SMALL_BMM else 0
        bmm = int(BMM_FLOP_WEIGHT * flops) + WRITE_WEIGHT * written + copy_cost + per_batch * _size(shared, sizes)
        mulsum = full * MULSUM_WEIGHT + WRITE_WEIGHT * written
        kind, cost = ("bmm", bmm) if bmm < mulsum else ("mulsum", mulsum)
    groups = ("".join(shared), "".join(a_only), "".join(b_only), "".join(summed))
    return result, kind, flops, written, cost, groups


def best_order(inputs: list[str], output: str, sizes: dict[str, int],
               objective: str = "cost") -> tuple[list[Step], int, int, int]:
    """The cheapest contraction tree, by dynamic programming over subsets of operands (exact up to
    EXHAUSTIVE_LIMIT operands, greedy beyond); returns (steps, flops, written, cost).

    objective "cost" minimises the time model; "flops" minimises arithmetic alone (for comparison).
    """
    n = len(inputs)
    if n > EXHAUSTIVE_LIMIT:
        return _greedy(inputs, output, sizes)
    full = (1 << n) - 1
    letters_of = [set(sub) for sub in inputs]
    # best[mask] = (score, cost, flops, written, subscript, tree); a tree is a leaf index or a pair.
    best: dict[int, tuple] = {1 << i: (0, 0, 0, 0, inputs[i], i) for i in range(n)}
    for mask in sorted(range(1, full + 1), key=lambda m: bin(m).count("1")):
        if mask in best:
            continue
        outside = set(output).union(*(letters_of[i] for i in range(n) if not mask >> i & 1))
        last = mask == full
        choice = None
        sub = (mask - 1) & mask
        while sub:
            other = mask ^ sub
            if sub < other:       # each split once
                sa, sb = best[sub], best[other]
                res, kind, flops, written, c, groups = pair_step(sa[4], sb[4], outside, sizes,
                                                                 output if last else None)
                cost, fl = sa[1] + sb[1] + c, sa[2] + sb[2] + flops
                score = cost if objective == "cost" else fl
                if choice is None or score < choice[0]:
                    step = (kind, flops, written, c, groups, f"{sa[4]},{sb[4]}->{res}")
                    choice = (score, cost, fl, sa[3] + sb[3] + written, res, (sa[5], sb[5], step))
            sub = (sub - 1) & mask
        best[mask] = choice
    _, cost, flops, written, _, tree = best[full]
    return _linearise(tree, n, sizes), flops, written, cost


def _linearise(tree, n: int, sizes) -> list[Step]:
    """Post-order steps; positions index the running list (operands, then results appended)."""
    items = list(range(n))
    steps: list[Step] = []

    def visit(node):
        if isinstance(node, int):
            return node
        left, right, (kind, flops, written, c, groups, eq) = node
        a, b = visit(left), visit(right)
        pa, pb = items.index(a), items.index(b)
        for p in sorted((pa, pb), reverse=True):
            items.pop(p)
        key = object()
        items.append(key)
        lhs = eq.split("->")[0].replace(",", "")
        used = tuple((ch, sizes[ch]) for ch in dict.fromkeys(lhs))
        steps.append(Step((pa, pb), eq, kind, flops, written, c, groups, used))
        return key

    visit(tree)
    return steps


def _greedy(inputs: list[str], output: str, sizes: dict[str, int]):
    ops = list(inputs)
    steps, flops, written, cost = [], 0, 0, 0
    while len(ops) > 1:
        options = []
        for j in range(len(ops)):
            for i in range(j):
                rest = [o for k, o in enumerate(ops) if k not in (i, j)]
                keep = set(output).union(*rest) if rest else set(output)
                res, kind, f, w, c, groups = pair_step(ops[i], ops[j], keep, sizes, None if rest else output)
                options.append((c, i, j, res, kind, f, w, groups))
        c, i, j, res, kind, f, w, groups = min(options)
        eq = f"{ops[i]},{ops[j]}->{res}"
        used = tuple((ch, sizes[ch]) for ch in dict.fromkeys(ops[i] + ops[j]))
        steps.append(Step((i, j), eq, kind, f, w, c, groups, used))
        for p in (j, i):
            ops.pop(p)
        ops.append(res)
        flops, written, cost = flops + f, written + w, cost + c
    return steps, flops, written, cost


def _parse(equation: str, shapes):
    lhs, output = equation.split("->")
    inputs = lhs.split(",")
    sizes: dict[str, int] = {}
    for sub, shape in zip(inputs, shapes):
        for c, n in zip(sub, shape):
            sizes[c] = n
    return inputs, output, sizes


def order_for(equation: str, shapes: list[tuple[int, ...]], objective: str = "cost"):
    return best_order(*_parse(equation, shapes), objective=objective)


def left_to_right(equation: str, shapes: list[tuple[int, ...]]) -> tuple[int, int]:
    """(flops, cost) of contracting the operands strictly in written order, under the same model."""
    inputs, output, sizes = _parse(equation, shapes)
    acc, flops, cost = inputs[0], 0, 0
    for k, nxt in enumerate(inputs[1:], 2):
        rest = inputs[k:]
        keep = set(output).union(*rest) if rest else set(output)
        acc, _, f, _, c, _ = pair_step(acc, nxt, keep, sizes, None if rest else output)
        flops, cost = flops + f, cost + c
    return flops, cost
