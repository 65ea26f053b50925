"""A slow, obviously correct evaluator: the oracle for the code generator and `fusionc eval`.

Every vertex becomes one dense tensor over the full components of its wires
(channels and irreps, mul_ir layout), built path by path straight from the
definitions in docs/language.md sections 4 and 6; nothing is shared with the
planner except the paths' enumeration and the coupling coefficients.  Open
diagrams are evaluated in dataflow order in float64/complex128; closed
diagrams are contracted as tensor networks, numerically or exactly (sympy).

Limits: dense tensors have the product of the wire dimensions as their size,
so keep the vertex tensors under ~10^7 entries (e.g. 32x(0e+1o+2e) x sh(2)
-> 32x(0e+1o+2e) is 746,496 entries).
"""
from __future__ import annotations

import math

import numpy as np
import opt_einsum as oe

from .exact import evaluate_exact
from .ir import Diagram
from .symmetry.coupling import cg, cg_exact
from .symmetry.paths import Path
from .symmetry.symmetric import vertex_bases

MAX_DENSE_ENTRIES = 50_000_000


def _iso(group_name, irreps, inner, out, exact=False):
    """The isometric coupling of a left-deep tree, by explicit contraction of binary CG tensors."""
    def fetch(a, b, c):
        if exact:
            return np.array(cg_exact(group_name, a, b, c).tolist(), dtype=object)
        return np.real_if_close(np.asarray(cg(group_name, a, b, c)))

    labels = list(inner) + [out]
    acc = fetch(irreps[0], irreps[1], labels[0])
    for r in range(2, len(irreps)):
        acc = np.tensordot(acc, fetch(labels[r - 2], irreps[r], labels[r - 1]), axes=([acc.ndim - 1], [0]))
    return acc


def _coefficient(mode: str, kind: str, paths: list[Path], p: Path, in_muls) -> float:
    """e3nn's component/element normalisation: 1/sqrt(products summed into each output component)."""
    if kind == "split":
        return 1.0

    def elements(q):
        m = in_muls(q)
        return {"uvw": math.prod(m), "uvu": math.prod(m[1:]), "linear": m[0]}.get(mode, 1)
    total = sum(elements(q) for q in paths if q.outs[0] == p.outs[0])
    return 1.0 / math.sqrt(total)


def unreduced_weights(diagram: Diagram, node: str, weights):
    """A symmetric fuse's weights (per output term: [rank, mul]) as the unreduced uuu vertex's per-path
    weights, w = U @ c for each output term (docs/language.md section 10)."""
    v = diagram.vertex(node)
    ins, out, paths = v.in_irreps, v.out_irreps[0], v.paths
    bases = vertex_bases(diagram.group_name, ins[0], len(ins), out)
    weights = np.asarray(weights, dtype=float)
    lead = weights.shape[:-1]
    flat = np.zeros(lead + (len(paths), out[0].mul))
    start = 0
    for c, (term, basis) in enumerate(zip(out, bases)):
        coordinates = weights[..., start:start + basis.rank * term.mul].reshape(lead + (basis.rank, term.mul))
        start += basis.rank * term.mul
        rows = [k for k, p in enumerate(paths) if p.outs[0] == c]
        # The basis lists the same complete paths, in the same order, for a one-term output.
        assert [(p.ins, p.inner) for p in (paths[k] for k in rows)] == [(p.ins, p.inner) for p in basis.paths]
        flat[..., rows, :] = np.einsum("pr,...ru->...pu", basis.U, coordinates)
    if start != weights.shape[-1]:
        raise ValueError(f"vertex {node}: expected {start} symmetric weights, got {weights.shape[-1]}")
    return flat.reshape(lead + (-1,))


def weight_layout(diagram: Diagram, node: str) -> list[tuple[int, ...]]:
    """The shape of each path's weights, in the flat (e3nn) order (the unreduced vertex's, for a
    symmetric fuse: its weights are expanded by unreduced_weights first)."""
    return list(diagram.vertex(node).weight_shapes)


def vertex_tensor(diagram: Diagram, node: str, weights=None, exact: bool = False) -> np.ndarray:
    """Dense tensor of one vertex: [(batch,) D_in1, ..., D_inN, D_out] (fuse, linear) or [D_in, D_a, D_b] (split).

    weights: the flat weight vector [numel], or [batch, numel] for external weights.
    """
    v = diagram.vertex(node)
    kind, mode = v.kind, v.mode
    if v.symmetric and weights is not None:
        weights = unreduced_weights(diagram, node, weights)
    ins, outs, paths = list(v.in_irreps), list(v.path_out_irreps), v.paths
    batched = weights is not None and np.ndim(weights) == 2
    lead = (np.shape(weights)[0],) if batched else ()
    dims = [w.dim for w in ins] + [w.dim for w in outs]
    if math.prod(dims) * (lead[0] if lead else 1) > MAX_DENSE_ENTRIES:
        raise ValueError(f"vertex {node} is too large for the dense reference evaluator")
    # SU2's Condon–Shortley coefficients are real, so float suffices; exact values are sympy objects.
    T = np.zeros(lead + tuple(dims), dtype=object if exact else float)

    def in_muls(q):
        return [ins[r][t].mul for r, t in enumerate(q.ins)]

    shapes = v.weight_shapes
    offset = 0
    for p, shape in zip(paths, shapes):
        numel = math.prod(shape) if shape else 0
        W = None
        if numel:
            W = np.asarray(weights)[..., offset:offset + numel].reshape(lead + shape)
        offset += numel
        c = _coefficient(mode, kind, paths, p, in_muls)
        if kind == "linear":
            ti, to = p.ins[0], p.outs[0]
            d = ins[0][ti].irrep.dim
            block = c * np.einsum("...uw,ik->...uiwk", W, np.eye(d))
            _place(T, block, lead, [ins[0], outs[0]], [ti, to], [ins[0][ti].mul, outs[0][to].mul], d_list=[d, d])
            continue
        if kind == "split":
            a, b = outs
            irr = (a[p.outs[0]].irrep, b[p.outs[1]].irrep)
            K = _iso(diagram.group_name, irr, (), ins[0][p.ins[0]].irrep, exact)      # [da, db, dt]
            ma, mb, mt = a[p.outs[0]].mul, b[p.outs[1]].mul, ins[0][p.ins[0]].mul
            delta = np.eye(ma * mb).reshape(ma, mb, mt).astype(K.dtype if not exact else object)
            block = np.einsum("uvw,ijk->wkuivj", delta, K)                              # [t, a, b]
            _place(T, block, lead, [ins[0], a, b], [p.ins[0], p.outs[0], p.outs[1]], [mt, ma, mb],
                   d_list=[K.shape[2], K.shape[0], K.shape[1]])
            continue
        irreps = tuple(ins[r][t].irrep for r, t in enumerate(p.ins))
        out_term = outs[0][p.outs[0]]
        K = _iso(diagram.group_name, irreps, p.inner, out_term.irrep, exact)            # [d1..dn, do]
        m, o = in_muls(p), out_term.mul
        n = len(m)
        # Channel tensor C[u1..un, w]: how input channels map to output channels, times weights.
        if mode == "none":
            C = np.eye(math.prod(m)).reshape(tuple(m) + (o,))
        elif mode == "uvw":
            C = W
        elif mode == "uvu":
            C = np.einsum("...uv,uw->...uvw", W.reshape(lead + (m[0], -1)), np.eye(m[0])).reshape(lead + tuple(m) + (o,))
        else:  # uuu: every input channel and the output channel equal, weighted per channel
            C = np.zeros(lead + tuple(m) + (o,))
            for u in range(o):
                C[(Ellipsis,) + (u,) * (n + 1)] = W[..., u]
        if exact:
            C = np.asarray(C, dtype=object)
        letters_u = "abcdefg"[:n]
        letters_i = "ijklmno"[:n]
        spec = "..." + letters_u + "W," + letters_i + "K->..." + "".join(u + i for u, i in zip(letters_u, letters_i)) + "WK"
        block = c * np.einsum(spec, C, K)
        _place(T, block, lead, ins + [outs[0]], list(p.ins) + [p.outs[0]], m + [o],
               d_list=list(K.shape))
    return T


def uuu_output(diagram: Diagram, node: str, args: list, weights) -> np.ndarray:
    """A uuu fuse evaluated one channel at a time, straight from the definition: channel u of the output
    is sum over paths p of c_p W[p, u] T_p(x_1[u], ..., x_n[u]) (T_p: the path's isometric tree coupling).

    args: the inputs [batch, dim]; weights: flat [numel] or [batch, numel] (a symmetric fuse's are
    expanded to the unreduced paths' first).  Returns [batch, dim of the output].
    """
    v = diagram.vertex(node)
    if v.symmetric:
        weights = unreduced_weights(diagram, node, weights)
    ins, out, paths = v.in_irreps, v.out_irreps[0], v.paths
    mul = out[0].mul
    W = np.asarray(weights).reshape(np.shape(weights)[:-1] + (len(paths), mul))   # [(batch,) paths, mul]

    def channels(x, irreps):
        """[batch, dim] in mul_ir layout -> one [batch, mul, irrep dim] per term."""
        return [np.asarray(x)[:, sl].reshape(len(x), t.mul, t.irrep.dim) for sl, t in zip(irreps.slices(), irreps)]

    xs = [channels(x, irreps) for x, irreps in zip(args, ins)]
    batch = len(args[0])
    result = [np.zeros((batch, mul, t.irrep.dim), dtype=np.result_type(*args, float)) for t in out]

    def in_muls(q):
        return [ins[r][t].mul for r, t in enumerate(q.ins)]

    for k, p in enumerate(paths):
        irreps = tuple(ins[r][t].irrep for r, t in enumerate(p.ins))
        K = _iso(diagram.group_name, irreps, p.inner, out[p.outs[0]].irrep)              # [d1..dn, do]
        value = np.einsum("zui,i...->zu...", xs[0][p.ins[0]], K)
        for r in range(1, len(irreps)):
            value = np.einsum("zui,zui...->zu...", xs[r][p.ins[r]], value)
        c = _coefficient("uuu", "fuse", paths, p, in_muls)
        result[p.outs[0]] += c * W[..., k, :, None] * value
    return np.concatenate([r.reshape(batch, -1) for r in result], axis=1)


def _place(T, block, lead, wires, terms, muls, d_list):
    """Add block [(batch,) m1, d1, m2, d2, ...] into T at the wires' term slices."""
    index = [slice(None)] * len(lead)
    shape = list(lead)
    for irreps, t, m, d in zip(wires, terms, muls, d_list):
        start = sum(x.dim for x in irreps[:t])
        index.append(slice(start, start + m * d))
        shape.append(m * d)
    T[tuple(index)] += block.reshape(shape)


def evaluate(diagram: Diagram, inputs: dict, weights: dict | None = None, edge_index=None,
             num_nodes: int | None = None) -> dict:
    """Evaluate an open diagram. inputs: wire -> array [batch, dim]; weights: output wire -> flat weights.

    Returns output wire -> array [batch, dim], in float64 (complex128 for SU2).

    A graph diagram (docs/language.md section 9) also needs edge_index [2, E] (row 0 the senders, row 1
    the receivers); node wires are [V, dim], edge wires [E, dim], and external weights have one row
    per node or edge.  V is the leading size of the node inputs, or num_nodes.
    """
    weights = weights or {}
    values = {w: np.asarray(v) for w, v in inputs.items()}
    if diagram.is_graph:
        if edge_index is None:
            raise ValueError(f"diagram {diagram.name} is a graph diagram: pass edge_index [2, E]")
        edge_index = np.asarray(edge_index, dtype=np.int64).reshape(2, -1)
        node_inputs = [w for w in diagram.inputs if diagram.domain(w) == "node"]
        if num_nodes is None:
            if not node_inputs:
                raise ValueError(f"diagram {diagram.name} has no node inputs: pass num_nodes")
            num_nodes = values[node_inputs[0]].shape[0]
    pending = [n for n, _ in diagram.vertices()]
    while pending:
        for node in pending:
            v = diagram.vertex(node)
            if all(w in values for w in v.inputs):
                break
        else:
            raise ValueError("the diagram has a cycle: evaluate closed diagrams with evaluate_closed")
        pending.remove(node)
        out = v.outputs[0]
        if v.kind in ("gather", "scatter"):
            # Straight from section 9: a node's value read at each edge's end, or each edge's value
            # added into the node at its end (zeros where no edge ends).
            ends = edge_index[0 if v.endpoint == "sender" else 1]
            source = values[v.inputs[0]]
            if v.kind == "gather":
                values[out] = source[ends]
            else:
                total = np.zeros((num_nodes,) + source.shape[1:], dtype=np.result_type(source, np.float64))
                np.add.at(total, ends, source)
                values[out] = total
            continue
        args = [values[w] for w in v.inputs]
        if v.mode == "uuu":   # channel by channel: no dense tensor over all channels
            values[out] = uuu_output(diagram, node, args, weights.get(out))
            continue
        T = vertex_tensor(diagram, node, weights.get(out))
        n = len(args)
        letters = "abcdefgh"[:n]
        batched_T = T.ndim == n + 2
        spec = ",".join("z" + l for l in letters) + "," + ("z" if batched_T else "") + letters + "o->zo"
        values[out] = oe.contract(spec, *args, T)
    return {w: values[w] for w in diagram.outputs}


def evaluate_closed(diagram: Diagram, exact: bool = False):
    """The number a closed diagram denotes (a float, or a sympy expression when exact)."""
    if not diagram.is_closed:
        raise ValueError(f"diagram {diagram.name} is open")
    if exact:
        # Exact arithmetic end to end (exact.py): never a float rounded back into a rational.
        return evaluate_exact(diagram)
    symbols: dict[str, str] = {}
    operands, specs = [], []
    for v in diagram.typed_vertices():
        if v.mode != "none":
            raise ValueError(f"diagram {diagram.name} has weights, so its value is not fixed")
        wires = v.inputs + v.outputs
        for w in wires:
            symbols.setdefault(w, oe.get_symbol(len(symbols)))
        specs.append("".join(symbols[w] for w in wires))
        operands.append(vertex_tensor(diagram, v.node, exact=exact))
    if not operands:
        return 1
    return float(np.real(oe.contract(",".join(specs) + "->", *operands)))
