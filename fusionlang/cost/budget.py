"""What a compile would allocate and compute, bounded before anything is allocated.

The checker calls this module for every vertex that passed the selection rules.
It mirrors, at the level of shapes only, what plan.py and emit_torch.py build:

* weights        the internal parameters (flat, one block per path; e3nn's layout);
* constants      elements of the generated module's constant buffers (coupling tensors K,
                 scatter matrices, weight-index tensors), dense, as the planner builds them;
* literals       the numbers emit_torch writes out in the generated source: nonzero
                 coupling coefficients and weight-index lists that are not one slice;
* intermediates  the elements a forward writes at the planning batch;
* work           the steps a compile takes: enumerating paths, grouping them in every way
                 the planner tries, searching each contraction's order, filling constants;
* check_work     the checker's own steps (this module's included).

Constants, literals and intermediates are bounded first (the planner's largest grouping; its
cost model, see _crude_intermediates); where a bound does not fit, the plan the planner will
choose is worked out (_Known.exact) and its own numbers used.  Nothing here allocates more than
the paths themselves.  Everything is a total over one file (one compile), but intermediates,
a total over one diagram (one forward).  The limits are documented in docs/limits.md and can be raised
(``Limits``; ``fusionc --limit NAME=N``).  tests/test_trust_limits.py checks the mirror
against the real planner.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from itertools import product

from ..symmetry.groups import MAX_TWO_J, Group, Irrep, Irreps
from ..symmetry.paths import path_weight_shape
from ..symmetry.paths import weight_numel as _numel
from .contract_order import left_to_right, order_for

# The batch size plan.PLAN_BATCH optimises for (a test keeps the two equal; plan.py imports numpy
# and the coupling tables, which the checker does not need).
PLAN_BATCH = 1024
EDGES_PER_NODE = 20           # plan.EDGES_PER_NODE: graph diagrams plan edge vertices for 20 * PLAN_BATCH rows

# Weights of the operator form's cost model (plan.py): a chosen operator plan costs at most
# 1 / OPERATOR_COST_SCALE times the best pairwise plan, and every element a step writes costs at
# least WRITE_WEIGHT in either form.
OPERATOR_COST_SCALE = 0.6
WRITE_WEIGHT = 14
OP_OVERHEAD_FLOPS = 300_000
EXHAUSTIVE_LIMIT = 8
# plan.py's index letters (a test keeps them equal): a fuse of more inputs cannot be named.
CHANNEL_LETTERS = "abcdefgh" + "ABCDEFGHIJKL"
COMPONENT_LETTERS = "ijklmn" + "rstuvxy" + "MNOPQRS"
MAX_FUSE_INPUTS = len(CHANNEL_LETTERS)

# Work units: one unit is about one microsecond on a 2-core x86 CPU, calibrated against plan_vertex
# on binary, ternary, quaternary and n-ary vertices (measured planning time 0.1 to 0.9 us a unit:
# the estimate errs high) and against this module's own loops (CHECK_UNITS_*).
UNITS_PER_PAIR_STEP = 12      # contract_order.pair_step, inside the order search
UNITS_PER_PATH = 40           # one path of one grouping: its coupling tensor placed into K
UNITS_PER_GROUP = 60          # one contraction of one grouping: arrays, equation, bookkeeping
ELEMENTS_PER_UNIT = 16        # filling K (float64) and index arrays
UNITS_PER_LABELING = 1        # one partial coupling tree built by paths.left_deep_labels
# The checker's own effort, in the same units: a path of a grouping counted, an order step searched.
CHECK_UNITS_PER_PATH = 4
CHECK_UNITS_PER_PAIR_STEP = 8


@dataclass(frozen=True)
class Limits:
    """Bounds on what one compile may allocate and compute.  Raise one where a model needs it:
    ``Limits(weights=10**9)``, or ``fusionc check --limit weights=1e9 FILE``."""

    source_bytes: int = 2 * 1024 * 1024     # the .fus file itself
    weights: int = 1 << 25                  # internal weights (parameters) of one file
    constants: int = 1 << 26                # elements of one file's constant buffers (float64: 512 MiB)
    literals: int = 1 << 20                 # numbers written out in one file's generated source
    intermediates: int = 1 << 32            # elements one diagram's forward writes at the planning batch
    work: int = 300_000_000                 # planning one file: about five minutes
    check_work: int = 4_000_000             # checking one file: about four seconds

    NAMES = ("source_bytes", "weights", "constants", "literals", "intermediates", "work", "check_work")

    def as_cost(self) -> "Cost":
        return Cost(self.weights, self.constants, self.intermediates, self.work, self.check_work,
                    literals=self.literals)

    @classmethod
    def parse(cls, items, base: "Limits | None" = None) -> "Limits":
        """Limits from ``NAME=N`` strings (N an integer, `1e9`, or `2**30`); ValueError with a fix."""
        values = {}
        for item in items:
            name, sep, text = str(item).partition("=")
            name = name.strip().replace("-", "_")
            if not sep or name not in cls.NAMES:
                raise ValueError(f"`{item}`: expected NAME=N with NAME one of {', '.join(cls.NAMES)}")
            values[name] = _count(text.strip(), name)
        return replace(base or cls(), **values)

    @classmethod
    def of(cls, value) -> "Limits":
        """None (the defaults), a Limits, or a mapping {name: n}."""
        if value is None:
            return cls()
        if isinstance(value, Limits):
            return value
        if isinstance(value, dict):
            return cls.parse([f"{k}={v}" for k, v in value.items()])
        raise TypeError(f"limits must be a fusionlang.Limits or a dict, not {type(value).__name__}")

    def raise_hint(self, name: str, needed: int) -> str:
        """How to raise one limit, with a value that would do."""
        value = 1 << max(needed - 1, 1).bit_length()
        return f"`--limit {name}={value}` (fusionc) or `limits={{'{name}': {value}}}` (Python); see docs/limits.md"


def _count(text: str, name: str) -> int:
    try:
        if "**" in text:
            base, _, exp = text.partition("**")
            value = int(base) ** int(exp)
        elif any(c in text for c in ".eE"):
            value = float(text)
            if not math.isfinite(value) or value != int(value):
                raise ValueError
            value = int(value)
        else:
            value = int(text.replace("_", ""))
    except (ValueError, OverflowError):
        raise ValueError(f"limit {name}: `{text}` is not a whole number") from None
    if value < 1 or value > 1 << 62:
        raise ValueError(f"limit {name}: {text} is out of range (1 to 2**62)")
    return value


assert {f.name for f in fields(Limits)} == set(Limits.NAMES)


# ----------------------------------------------------------------------------- n-ary paths, counted


@dataclass(frozen=True)
class Census:
    paths: int                 # what paths.fuse_paths would return
    steps: int                 # the labelings fuse_paths builds on the way (its running time)
    inner_beyond: Irrep | None  # the largest inner irrep over MAX_TWO_J on a path to the output


def fuse_census(group: Group, ins: list[Irreps], out: Irreps) -> Census:
    """Count fuse_paths' paths and work without enumerating: dynamic programming over the irrep
    reached after each input (left-deep trees), aggregated over every choice of input terms."""
    return _census(group, tuple(ins), out)


@lru_cache(maxsize=4096)
def _census(group: Group, ins: tuple[Irreps, ...], out: Irreps) -> Census:
    counts = [_irrep_counts(w) for w in ins]
    out_counts = _irrep_counts(out)
    reached: list[dict[Irrep, int]] = [dict(counts[0])]
    for nxt in counts[1:]:
        acc: dict[Irrep, int] = {}
        for a, na in reached[-1].items():
            for b, nb in nxt.items():
                for c in group.product(a, b):
                    acc[c] = acc.get(c, 0) + na * nb
        reached.append(acc)
    choices_after = [1] * len(ins)
    for r in range(len(ins) - 2, -1, -1):
        choices_after[r] = choices_after[r + 1] * len(ins[r + 1])
    steps = sum(sum(level.values()) * choices_after[r] for r, level in enumerate(reached))
    steps += math.prod(len(w) for w in ins)
    paths = sum(n * out_counts.get(c, 0) for c, n in reached[-1].items())
    # Inner labels (after the 2nd .. the (n-1)th input) that lie on some path to an output irrep.
    alive = set(out_counts)
    beyond = None
    for r in range(len(ins) - 2, 0, -1):
        alive = {a for a in reached[r] if any(c in alive for b in counts[r + 1] for c in group.product(a, b))}
        for a in alive:
            if a.two_j > MAX_TWO_J and (beyond is None or a.two_j > beyond.two_j):
                beyond = a
    return Census(paths, steps, beyond)


def _irrep_counts(irreps: Irreps) -> dict[Irrep, int]:
    out: dict[Irrep, int] = {}
    for t in irreps:
        out[t.irrep] = out.get(t.irrep, 0) + 1
    return out


# ----------------------------------------------------------------------------- one vertex


@dataclass
class Cost:
    weights: int = 0
    constants: int = 0
    intermediates: int = 0
    work: int = 0
    check_work: int = 0
    literals: int = 0
    exact: bool = False         # constants and intermediates of the plan the planner will choose


def _segments(irreps: Irreps, by_term: bool) -> list[tuple[int, int, int]]:
    """Per term: (segment index, segment mul, segment dim), as plan.segments."""
    out: list[tuple[int, int, int]] = []
    k, index = 0, 0
    while k < len(irreps):
        j = k
        while not by_term and j + 1 < len(irreps) and irreps[j + 1].mul == irreps[k].mul:
            j += 1
        dim = sum(irreps[t].irrep.dim for t in range(k, j + 1))
        out.extend([(index, irreps[k].mul, dim)] * (j + 1 - k))
        index += 1
        k = j + 1
    return out


def _order_steps(operands: int) -> int:
    """pair_step calls of contract_order.best_order for this many operands."""
    if operands > EXHAUSTIVE_LIMIT:
        return sum(m * (m - 1) // 2 for m in range(2, operands + 1))
    return (3 ** operands - 2 ** (operands + 1) + 1) // 2


@dataclass
class _Group:
    """One contraction of one grouping (plan._contraction / plan._shared_contraction), in numbers."""
    members: list[int]
    segs: list[tuple[int, int, int]]      # per input: (index, mul, dim) of its segment
    stored: int                           # elements of the generated module's constant buffers
    filled: int                           # elements the planner allocates and fills
    written: int = 0                      # numbers written into the generated source, but K's


class _Vertex:
    """A vertex as plan.plan_vertex sees it: paths, weights and every grouping it tries."""

    def __init__(self, kind, mode, external, ins, out, paths, batch, complex_=False):
        self.kind, self.mode, self.external, self.ins, self.out = kind, mode, external, ins, out
        self.complex = complex_
        self.paths, self.batch = paths, batch
        self.shapes = [path_weight_shape(mode, [ins[r][t].mul for r, t in enumerate(p.ins)], out[p.outs[0]].mul)
                       for p in paths]
        self.numels = [_numel(s) for s in self.shapes]
        self.offsets = [0]
        for x in self.numels:
            self.offsets.append(self.offsets[-1] + x)
        n = len(ins)
        self.choices = [(True,)] if kind == "linear" else list(product((False, True), repeat=n))
        self.shared = (False, True) if mode in ("uvu", "uuu") else (False,)
        self.operands = n + (1 if kind == "linear" else 2 if mode == "none" else 3)

    def alternatives(self):
        """(by_term, across) in the planner's order."""
        return list(product(self.choices, self.shared))

    def grouping(self, by_term, across) -> list[_Group]:
        """The contractions of one grouping, sorted as plan._group_contractions sorts them."""
        segs = [_segments(w, t) for w, t in zip(self.ins, by_term)]
        keyed: dict[tuple, list[int]] = {}
        for k, p in enumerate(self.paths):
            key = (-1 if across else p.outs[0], tuple(segs[r][t][0] for r, t in enumerate(p.ins)))
            keyed.setdefault(key, []).append(k)
        out = []
        for key, members in sorted(keyed.items()):
            first = self.paths[members[0]]
            chosen = [segs[r][t] for r, t in enumerate(first.ins)]
            out.append(self._numbers(members, chosen, across))
        return out

    def _numbers(self, members, segs, across) -> _Group:
        weights = sum(self.numels[k] for k in members)
        if self.kind == "linear":
            return _Group(members, segs, 0, weights)          # a scalar scale; the weights are one slice
        seg_dims = math.prod(s[2] for s in segs)
        if across:
            # K, the 0/1 scatter matrix S (one 1 per row) and the weight index (repeated entries).
            q = sum(self.out[self.paths[k].outs[0]].irrep.dim for k in members)
            rows = sum(self.out[t].irrep.dim for t in {self.paths[k].outs[0] for k in members})
            chan = math.prod(s[1] for s in segs) if self.mode == "uvu" else segs[0][1]
            index = 0 if self._index_is_slice(members, chan) else chan * q
            return _Group(members, segs, seg_dims * q + q * rows + index, seg_dims * q + q * rows + chan * q,
                          q + index)
        d_out = self.out[self.paths[members[0]].outs[0]].irrep.dim
        dense = seg_dims * len(members) * d_out
        if self.mode == "none":
            return _Group(members, segs, seg_dims * d_out, dense + seg_dims * d_out)
        index = 0 if _consecutive(members) else weights      # else an index list, element by element
        return _Group(members, segs, dense + index, dense + weights, index)

    def coefficients(self) -> int:
        """A bound on the nonzero coupling coefficients of all paths: what emit_torch writes for the
        K tensors of any grouping (each path's block sits in its own slot; `none` sums them).

        One path's block is [d1, ..., dn, d_out]; for fixed (m1, m2) a real-basis coupling has at
        most two nonzero m3 (|m3| = |m1| + |m2| or ||m1| - |m2||, its sign fixed), a complex one
        exactly one, and likewise for any two fixed indices; along a left-deep tree that gives at
        most 2^(n-1) d1...dn.  Paths that `none` sums into one block count at most that block.
        tests/test_trust_limits.py checks the bound on the real tables."""
        if self.kind == "linear":
            return 0
        per_pair = 1 if self.complex else 2
        blocks: dict[tuple, list[int]] = {}      # paths into the same block: `none` sums them
        for p in self.paths:
            dims = [self.ins[r][t].irrep.dim for r, t in enumerate(p.ins)]
            d_out = self.out[p.outs[0]].irrep.dim
            dense = math.prod(dims) * d_out
            if len(dims) == 2:
                a, b = dims
                bound = per_pair * min(a * b, a * d_out, b * d_out)
            else:
                bound = per_pair ** (len(dims) - 1) * math.prod(dims)
            key = (p.outs, p.ins) if self.mode == "none" else (p,)
            block = blocks.setdefault(key, [dense, 0])
            block[1] += min(dense, bound)
        return sum(min(dense, nonzero) for dense, nonzero in blocks.values())

    def _index_is_slice(self, members, chan) -> bool:
        """Whether plan._shared_contraction's weight index is one run of consecutive positions."""
        dims = [self.out[self.paths[k].outs[0]].irrep.dim for k in members]
        if sum(dims) == 1:
            return True
        return chan == 1 and all(d == 1 for d in dims) and \
            all(self.offsets[b] == self.offsets[a] + 1 for a, b in zip(members, members[1:]))

    # -- the contraction a group becomes, for the order search ------------------------------

    def equation(self, group: _Group, across: bool) -> tuple[str, list[tuple[int, ...]]]:
        """plan._contraction's / plan._shared_contraction's equation and operand shapes."""
        B, n = self.batch, len(group.segs)
        first = self.paths[group.members[0]]
        zw = (B,) if self.external else ()
        if self.kind == "linear":
            d_out = self.out[first.outs[0]].irrep.dim
            eq = "zak,zaw->zwk" if self.external else "zak,aw->zwk"
            return eq, [(B, group.segs[0][1], d_out), zw + self.shapes[group.members[0]]]
        chan = ["a"] * n if self.mode == "uuu" else list(CHANNEL_LETTERS[:n])
        idx = list(COMPONENT_LETTERS[:n])
        x_terms = [f"z{chan[r]}{idx[r]}" for r in range(n)]
        x_shapes = [(B, s[1], s[2]) for s in group.segs]
        dims = tuple(s[2] for s in group.segs)
        z = "z" if self.external else ""
        if across:
            members = group.members
            q = sum(self.out[self.paths[k].outs[0]].irrep.dim for k in members)
            rows = sum(self.out[t].irrep.dim for t in {self.paths[k].outs[0] for k in members})
            chan_shape = tuple(s[1] for s in group.segs) if self.mode == "uvu" else (group.segs[0][1],)
            w_letters = ("".join(chan) if self.mode == "uvu" else "a") + "q"
            eq = ",".join(x_terms + ["".join(idx) + "q", z + w_letters, "qo"]) + "->z" + chan[0] + "o"
            return eq, x_shapes + [dims + (q,), zw + chan_shape + (q,), (q, rows)]
        d_out = self.out[first.outs[0]].irrep.dim
        if self.mode == "none":
            eq = ",".join(x_terms + ["".join(idx) + "o"]) + "->z" + "".join(chan) + "o"
            return eq, x_shapes + [dims + (d_out,)]
        wl = {"uvw": "p" + "".join(chan) + "w", "uvu": "p" + "".join(chan), "uuu": "pa"}[self.mode]
        res = {"uvw": "zwo", "uvu": "z" + chan[0] + "o", "uuu": "zao"}[self.mode]
        eq = ",".join(x_terms + ["".join(idx) + "po", z + wl]) + "->" + res
        P = len(group.members)
        return eq, x_shapes + [dims + (P, d_out), zw + (P,) + self.shapes[group.members[0]]]

    # -- the operator form (plan._operator_plan) ------------------------------------------------

    def operator(self):
        """(cost, stored constants, filled elements, written at the batch, index numbers written into
        the source) of plan._operator_plan's form, or None where it does not apply."""
        mode, ins, out, paths, B = self.mode, self.ins, self.out, self.paths, self.batch
        if self.kind != "fuse" or len(ins) != 2 or mode not in ("uvu", "uvw") or (mode == "uvw" and self.external):
            return None
        x, y = ins
        if any(t.mul != 1 for t in y):
            return None
        groups: list[tuple[int, list[int], int]] = []        # (mul, terms, rows)
        group_of = {}
        for mul in dict.fromkeys(t.mul for t in out):
            terms = [k for k, t in enumerate(out) if t.mul == mul]
            groups.append((mul, terms, sum(out[k].irrep.dim for k in terms)))
            for k in terms:
                group_of[k] = len(groups) - 1
        d_y = y.dim
        total = stored = filled = written = literal = 0
        for a, term in enumerate(x):
            u, d = term.mul, term.irrep.dim
            if d > 1:
                total += 22 * B * u * d + OP_OVERHEAD_FLOPS
                written += B * u * d
            for g, (w, _, rows) in enumerate(groups):
                members = [k for k, p in enumerate(paths) if p.ins[0] == a and group_of[p.outs[0]] == g]
                if not members:
                    continue
                n = len(members)
                q = n * d
                cost = 2 * B * d_y * rows * q + WRITE_WEIGHT * B * rows * q
                if mode == "uvu":
                    cost += B * q * u + WRITE_WEIGHT * B * q * u
                    written += B * q * u
                else:
                    cost += 2 * B * d * u * n * w + WRITE_WEIGHT * B * q * w
                    written += B * q * w
                cost += int(BMM_FLOP_WEIGHT * 2 * B * rows * q * w) + WRITE_WEIGHT * B * rows * w + 3 * OP_OVERHEAD_FLOPS
                written += B * rows * q + B * rows * w
                total += cost
                weights = sum(self.numels[k] for k in members)
                operator = d_y * rows * q
                slice_ = _consecutive(members) and (mode == "uvu" or n == 1 or u == 1)
                stored += operator + (0 if slice_ else weights)
                literal += 0 if slice_ else weights
                filled += operator + weights
        for w, _, rows in groups:
            total += 22 * B * rows * w + OP_OVERHEAD_FLOPS
            written += B * rows * w
        return total, stored, filled, written, literal


BMM_FLOP_WEIGHT = 1.0


def _consecutive(members: list[int]) -> bool:
    return members[-1] - members[0] == len(members) - 1


def vertex_cost(group: Group, kind: str, mode: str, external: bool, ins: list[Irreps], outs: list[Irreps],
                paths, limits: Limits, room: "Cost | None" = None, batch: int = PLAN_BATCH,
                bounds_only: bool = False) -> Cost:
    """Weights, constants, literals, intermediates and work of one checked vertex (fuse or linear),
    and the checker's own effort for it (check_work; zero when an equal vertex was costed before).

    room: how much of each limit is left.  Cheap bounds are tried first; where they do not fit (and
    not bounds_only: graph diagrams and symmetric fuses, which the planner rewrites), the planner's
    choice is worked out as it makes it (shapes only, no coefficients) and the numbers of that plan
    are returned.  Where the work alone is over its limit, or working out the
    choice would take more than the checker has left, the bounds are returned as they are.
    """
    room = room or limits.as_cost()
    key = (group.name, kind, mode, external, tuple(ins), outs[0], batch)
    known = _KNOWN.get(key)
    if known is None:
        v = _Vertex(kind, mode, external, ins, outs[0], paths, batch, group.is_complex)
        known = _Known(v, limits.work)
        if len(_KNOWN) >= 4096:
            _KNOWN.clear()
        _KNOWN[key] = known
        spent = known.check_work
    else:
        known.v.paths = paths
        spent = 0
    cost = Cost(known.weights, known.constants, 0, known.work, spent, literals=known.literals)
    if known.partial:
        return cost
    inter, more = known.intermediates(room.intermediates, room.check_work - spent)
    cost.intermediates, spent = inter, spent + more
    if bounds_only or (cost.constants <= room.constants and cost.literals <= room.literals
                       and cost.intermediates <= room.intermediates):
        cost.check_work = spent
        return cost
    exact, more = known.exact(room.check_work - spent)
    spent += more
    if exact is not None:
        cost.constants, cost.literals, cost.intermediates = exact
        cost.exact = True
    cost.check_work = spent
    return cost


class _Known:
    """What vertex_cost learnt about a vertex, kept for the equal vertices after it."""

    def __init__(self, v: "_Vertex", work_limit: int):
        self.v = v
        self.weights = 0 if v.external else sum(v.numels)
        alternatives = v.alternatives()
        paths = v.paths
        steps_per_order = _order_steps(v.operands)
        # One left-to-right order per path for the "naive" comparison (plan._naive_path_cost).
        work = len(paths) * (UNITS_PER_GROUP + UNITS_PER_PAIR_STEP * (v.operands - 1))
        work += len(alternatives) * len(paths) * UNITS_PER_PATH
        self.check_work = len(alternatives) * len(paths) * CHECK_UNITS_PER_PATH
        self.constants = self.literals = 0
        self.partial = work > work_limit
        self.work = work
        self.crude = self.fine = self.choice = None
        if self.partial:
            return
        self.coefficients = v.coefficients()
        self.groupings = []
        for by_term, across in alternatives:
            groups = v.grouping(by_term, across)
            self.groupings.append((across, [(g.members, g.segs, g.stored, g.written) for g in groups]))
            self.constants = max(self.constants, sum(g.stored for g in groups))
            self.literals = max(self.literals, sum(g.written for g in groups))
            work += sum(UNITS_PER_GROUP + UNITS_PER_PAIR_STEP * steps_per_order + g.filled // ELEMENTS_PER_UNIT
                        for g in groups)
        self.operator = v.operator()
        if self.operator is not None:
            self.constants = max(self.constants, self.operator[1])
            self.literals = max(self.literals, self.operator[4])
            work += self.operator[2] // ELEMENTS_PER_UNIT + UNITS_PER_PATH * len(paths)
        self.literals += self.coefficients
        self.work = work
        self.partial = work > work_limit

    def intermediates(self, room: int, budget: int) -> tuple[int, int]:
        """(bound, checker's effort): the crude bound, or where that is over room, the finer one."""
        v = self.v
        if self.crude is None:
            self.crude = _crude_intermediates(v, self._reference())
        if self.crude <= room or self.fine is not None:
            return (self.crude if self.fine is None else min(self.crude, self.fine)), 0
        specs = [v.equation(_Group(g[0], g[1], 0, 0), False) for g in self._reference()]
        effort = sum(CHECK_UNITS_PER_PAIR_STEP * (len(shapes) - 1) for _, shapes in specs)
        if effort > budget:
            return self.crude, 0
        fine = sum(_reference_cost(*_frozen(spec)) + OP_OVERHEAD_FLOPS * (len(spec[1]) - 1) for spec in specs)
        self.fine = int(fine / (WRITE_WEIGHT * OPERATOR_COST_SCALE))
        return min(self.crude, self.fine), effort

    def _reference(self):
        """The grouping with one term per segment and no shared outputs: always among the planner's."""
        v = self.v
        index = v.alternatives().index((v.choices[-1], False))
        return self.groupings[index][1]

    def exact(self, budget: int):
        """((constants, literals, intermediates) of the plan the planner will choose, checker's effort),
        or (None, 0) where working it out would take more than budget."""
        if self.choice is not None:
            return self.choice, 0
        v = self.v
        steps = _order_steps(v.operands)
        effort = sum(len(groups) for _, groups in self.groupings) * steps * CHECK_UNITS_PER_PAIR_STEP
        if effort > budget:
            return None, 0
        best = None
        for across, groups in self.groupings:
            total = written = 0
            for members, segs, _, _ in groups:
                spec = v.equation(_Group(members, segs, 0, 0), across)
                c, w = _order(*_frozen(spec))
                # The planner adds one call's overhead per pairwise step of this equation (v.operands
                # counts the scatter operand of a shared-output contraction, absent without it).
                total += c + OP_OVERHEAD_FLOPS * (len(spec[1]) - 1)
                written += w
            if best is None or total < best[0]:
                best = (total, sum(g[2] for g in groups), sum(g[3] for g in groups), written)
        if self.operator is not None and self.operator[0] * OPERATOR_COST_SCALE < best[0]:
            best = (self.operator[0], self.operator[1], self.operator[4], self.operator[3])
        self.choice = (best[1], best[2] + self.coefficients, best[3])
        return self.choice, effort


_KNOWN: dict[tuple, _Known] = {}


def _frozen(spec):
    equation, shapes = spec
    return equation, tuple(tuple(s) for s in shapes)


@lru_cache(maxsize=8192)
def _order(equation: str, shapes: tuple) -> tuple[int, int]:
    """(cost, written) of contract_order's best order, as the planner finds it."""
    _, _, written, cost = order_for(equation, list(shapes))
    return cost, written


def _crude_intermediates(v: "_Vertex", reference) -> int:
    """An upper bound on the elements the chosen plan's forward writes at the planning batch.

    plan.plan_vertex minimises its modelled cost over groupings (and takes the operator form only
    when OPERATOR_COST_SCALE times its cost is lower), and every step's cost includes WRITE_WEIGHT
    per element it writes.  So the chosen plan writes at most the cost of any one pairwise plan
    over WRITE_WEIGHT * OPERATOR_COST_SCALE.  The plan used here is the grouping with one term per
    segment.  Crude: no step costs more than STEP_COST_PER_ELEMENT times the product of all the
    contraction's index sizes.  Finer (_Known.intermediates): each contraction left to right (the
    order search can only do better; past EXHAUSTIVE_LIMIT operands the planner's greedy search).
    """
    crude = 0
    for members, segs, _, _ in reference:
        equation, shapes = v.equation(_Group(members, segs, 0, 0), False)
        sizes = {c: size for sub, shape in zip(equation.split("->")[0].split(","), shapes)
                 for c, size in zip(sub, shape)}
        crude += (len(shapes) - 1) * (STEP_COST_PER_ELEMENT * math.prod(sizes.values()) + OP_OVERHEAD_FLOPS)
    return int(crude / (WRITE_WEIGHT * OPERATOR_COST_SCALE))


# contract_order.pair_step costs a step at most: mul 1 + WRITE, matmul 2 + WRITE + 3 * COPY,
# bmm or mulsum (the cheaper) at most MULSUM + WRITE, per element of the step's full index space.
STEP_COST_PER_ELEMENT = 2 + WRITE_WEIGHT + 3 * 22


@lru_cache(maxsize=8192)
def _reference_cost(equation: str, shapes: tuple) -> int:
    if len(shapes) > EXHAUSTIVE_LIMIT:
        return order_for(equation, list(shapes))[3]
    return left_to_right(equation, list(shapes))[1]
