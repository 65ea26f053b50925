"""Paths: every admissible choice of irreps on a vertex's wires (docs/language.md sections 4 and 6).

Shared by the checker (is there any path? which outputs are reachable?) and
the planner (one weight set per path).  Order is e3nn's: for each term of the
first input, of the second, ..., then the inner labels of an n-ary tree
(ascending), then each output term in written order.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from ..diagnostics import FusionError
from .groups import Group, Irrep, Irreps, MulIrrep

MAX_PATHS = 20000


class TooManyPaths(FusionError):
    """A vertex has more than MAX_PATHS paths (the checker reports it as a diagnostic)."""


@dataclass(frozen=True)
class Path:
    ins: tuple[int, ...]          # term index on each input wire
    outs: tuple[int, ...]         # term index on each output wire
    inner: tuple[Irrep, ...] = () # labels of the inner wires of an n-ary fuse (left-deep tree)


def left_deep_labels(group: Group, irreps: list[Irrep]) -> list[tuple[tuple[Irrep, ...], Irrep]]:
    """Every labelling of the inner wires of fuse(a, b, c, ...) and the irrep it ends in."""
    partial = [((), irreps[0])]
    for nxt in irreps[1:]:
        partial = [(inner + (acc,), out) for inner, acc in partial for out in group.product(acc, nxt)]
    # The first "inner" entry is the first input itself; drop it.
    return [(inner[1:], out) for inner, out in partial]


def fuse_paths(group: Group, inputs: list[Irreps], output: Irreps) -> list[Path]:
    paths = []
    out_index: dict[Irrep, list[int]] = {}
    for k, term in enumerate(output):
        out_index.setdefault(term.irrep, []).append(k)
    for choice in itertools.product(*[range(len(w)) for w in inputs]):
        irreps = [inputs[i][c].irrep for i, c in enumerate(choice)]
        found = [(inner, k) for inner, final in left_deep_labels(group, irreps) for k in out_index.get(final, ())]
        # e3nn's order within one choice of input terms: inner labels ascending, then outputs as written.
        paths.extend(Path(tuple(choice), (k,), inner) for inner, k in sorted(found))
        if len(paths) > MAX_PATHS:
            raise TooManyPaths(len(paths))
    return paths


def separate_paths(group: Group, inputs: list[Irreps], keep=None) -> tuple[list[Path], Irreps]:
    """A `paths=separate` fuse (docs/language.md, per-path output): every complete path into an irrep of
    `keep` (None: any) gets its own output block of (product of the input multiplicities) copies.
    The blocks are those of e3nn's FullTensorProduct with filter_ir_out=keep: for each choice of input
    terms, each inner labelling and final irrep ascending, then stably sorted by irrep.  Path k writes
    block k; returns (paths, blocks)."""
    found = []
    for choice in itertools.product(*[range(len(w)) for w in inputs]):
        irreps = [inputs[i][c].irrep for i, c in enumerate(choice)]
        mul = math.prod(inputs[i][c].mul for i, c in enumerate(choice))
        found.extend((final, len(found) + n, choice, inner, mul)
                     for n, (inner, final) in enumerate(sorted(left_deep_labels(group, irreps)))
                     if keep is None or final in keep)
        if len(found) > MAX_PATHS:
            raise TooManyPaths(len(found))
    found.sort(key=lambda f: (f[0], f[1]))     # by irrep, stable in path order
    paths = [Path(tuple(choice), (k,), inner) for k, (_, _, choice, inner, _) in enumerate(found)]
    return paths, Irreps(MulIrrep(mul, final) for final, _, _, _, mul in found)


def merged(irreps: Irreps) -> Irreps:
    """Adjacent terms of one irrep joined (`0 + 0 + 1` -> `2x0 + 1`): the same mul_ir layout."""
    out: list[MulIrrep] = []
    for t in irreps:
        if out and out[-1].irrep == t.irrep:
            out[-1] = MulIrrep(out[-1].mul + t.mul, t.irrep)
        else:
            out.append(t)
    return Irreps(out)


def split_paths(group: Group, source: Irreps, outputs: list[Irreps]) -> list[Path]:
    a, b = outputs
    return [Path((k,), (i, j)) for i in range(len(a)) for j in range(len(b)) for k in range(len(source))
            if group.admissible(a[i].irrep, b[j].irrep, source[k].irrep)]


def linear_paths(source: Irreps, target: Irreps) -> list[Path]:
    return [Path((i,), (k,)) for i in range(len(source)) for k in range(len(target))
            if source[i].irrep == target[k].irrep]


def vertex_wiring(group: Group, data: dict, inputs: list[Irreps], outputs: list[Irreps]):
    """(paths, output irreps the paths index) of a vertex: a `paths=separate` fuse indexes its per-path
    blocks, which have the declared output's layout (check.py, F085); any other vertex its wires."""
    if data.get("per_path"):
        paths, blocks = separate_paths(group, inputs, set(outputs[0].irreps))
        return paths, [blocks]
    return vertex_paths(group, data["kind"], inputs, outputs), outputs


def vertex_paths(group: Group, kind: str, inputs: list[Irreps], outputs: list[Irreps]) -> list[Path]:
    if kind == "fuse":
        return fuse_paths(group, inputs, outputs[0])
    if kind == "split":
        return split_paths(group, inputs[0], outputs)
    return linear_paths(inputs[0], outputs[0])


def path_weight_shape(mode: str, in_muls: list[int], out_mul: int) -> tuple[int, ...]:
    """The weights of one path in weight mode `mode` (docs/conventions.md): one per channel combination
    it mixes; () for none."""
    if mode == "uvw":
        return tuple(in_muls) + (out_mul,)
    if mode == "uvu":
        return tuple(in_muls)
    if mode == "uuu":
        return (in_muls[0],)
    if mode == "linear":
        return (in_muls[0], out_mul)
    return ()


def weight_numel(shape: tuple[int, ...]) -> int:
    """Weights of one path: an empty shape means none (not the 1 of an empty product)."""
    return math.prod(shape) if shape else 0
