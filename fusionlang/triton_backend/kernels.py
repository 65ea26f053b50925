"""Triton kernel source for one fuse vertex: a forward kernel and its backward kernel(s).

Every kernel program owns BLOCK_Z consecutive rows (batch elements) and computes
everything for them in registers: input components are loaded once, the coupling
coefficients are literals in the source (one term per nonzero entry, no dense tensor),
and each output (or gradient) component is stored once.  A term's channels are the
second axis of a [BLOCK_Z, C] tile, C its multiplicity rounded up to a power of two.

How the channels meet depends on the weight mode (u: first input, v: second, w: output):

    uvu   out[z, u, k] = sum_v sum_ij C[i,j,k] x[z,u,i] y[z,v,j] W[u,v]      tiles over u, loop over v
    uuu   out[z, u, k] = sum_ij C[i,j,k] x[z,u,i] y[z,u,j] W[u]              tiles over u, every input
    none  out[z, u*mv + v, k] = sum_ij C[i,j,k] x[z,u,i] y[z,v,j]             tiles over u, loop over v
    uvw   out[z, w, k] = sum_uv sum_ij C[i,j,k] x[z,u,i] y[z,v,j] W[u,v,w]   tiles over w, loops over u, v

(n-ary uvu: inputs after the first have multiplicity 1, so their components are
[BLOCK_Z, 1] columns; n-ary uuu: every input is a tile, three inputs through their fusion
tree.)  A loop over a channel with multiplicity 1 is written as straight code with the index 0.

Backward kernels recompute from the inputs.  A gradient that sums over the tiled channels
(the second input's in uvu and none) is accumulated as tiles and reduced once per component;
the uvw backward is one kernel per input, each tiling the channels of the input it differentiates
and looping over the other wires' channels, so that no tile axis is summed there at all.

Gradients with respect to internal weights sum over all rows: each program reduces its
rows and either stores one row of a [programs, numel] buffer that the caller sums
(deterministic) or, where that buffer would be large, adds atomically (ATOMIC).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .spec import FuseSpec, KernelPath

# Rows per program (BLOCK_Z): at most as many as make the widest tile one element per thread
# (NUM_WARPS * 32 threads), and fewer where the tiles live at once would exceed LIVE_ELEMENTS
# (about 64 per thread).  Checked with benchmarks/gpu/compile_check.py --sweep on sm_90: more rows
# than that buys nothing but registers (past ~128 per thread, then spills), since [BLOCK_Z, 1]
# columns are replicated across the threads of a row.
LIVE_ELEMENTS = 8192
MAX_BLOCK_Z = 64
NUM_WARPS = 4


def pow2(n: int) -> int:
    p = 1
    while p < n:
        p *= 2
    return p


def block_rows(live_columns: int, widest: int) -> int:
    """Rows per program: live_columns * rows within LIVE_ELEMENTS, widest * rows within the threads."""
    rows = max(1, min(MAX_BLOCK_Z, NUM_WARPS * 32 // widest))
    while rows > 1 and rows * live_columns > LIVE_ELEMENTS:
        rows //= 2
    return rows


def coefficient(value: float) -> str:
    return repr(float(value))


def linear_sum(terms: list[tuple[float, list[str]]]) -> str:
    """'0.5 * a * b - 0.25 * c' from [(0.5, [a, b]), (-0.25, [c])]."""
    out = []
    for k, (c, factors) in enumerate(terms):
        body = " * ".join(factors)
        piece = body if abs(c) == 1.0 else f"{coefficient(abs(c))} * {body}"
        if k == 0:
            out.append(("-" if c < 0 else "") + piece)
        else:
            out.append(("- " if c < 0 else "+ ") + piece)
    return " ".join(out)


@dataclass
class Source:
    """Lines of a Python function under construction."""
    lines: list[str] = field(default_factory=list)
    depth: int = 1

    def __call__(self, line: str = "") -> None:
        self.lines.append("    " * self.depth + line if line else "")

    def indent(self):
        self.depth += 1

    def dedent(self):
        self.depth -= 1

    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass
class Kernel:
    name: str
    source: str
    block_z: int


class KernelWriter:
    """Writes the kernels of one vertex; kernel names are `<stem>_forward`, `<stem>_backward...`."""

    def __init__(self, spec: FuseSpec, gathered: dict[int, str] | None = None, scatter: str | None = None):
        self.s = spec
        self.n = spec.arity
        self.canon = list(range(self.n))        # uuu: an input that repeats an earlier wire reuses its tiles
        self.widest = max(pow2(t.mul) for terms in spec.inputs + [spec.out] for t in terms)
        # Graph chains (gather -> fuse -> scatter): input r read at the node row index_<end>[edge] for
        # each r in gathered (end: "sender" / "receiver"), and, with scatter, the output added into
        # (its gradient read from) node row index_<scatter>[edge].  Rows are then edges; writes into
        # node rows are atomic adds, since several edges share a node.
        self.rows_of: dict[str, str] = {f"in{r}": end for r, end in (gathered or {}).items()}
        self.rows_of.update({f"gin{r}": end for r, end in (gathered or {}).items()})
        if scatter:
            self.rows_of.update(out=scatter, grad=scatter)
        self.endpoints = sorted(set(self.rows_of.values()))

    def set_aliases(self, wires: list[str]) -> None:
        if self.s.mode == "uuu":
            self.canon = [wires.index(w) for w in wires]

    # -- shared pieces -------------------------------------------------------------

    def header(self, src: Source, name: str, args: list[str]) -> None:
        src.lines.append("@triton.jit")
        index_args = [f"index_{end}_ptr" for end in self.endpoints]
        src.lines.append(f"def {name}({', '.join(args + index_args)}, rows, BLOCK_Z: tl.constexpr"
                         + (", ATOMIC: tl.constexpr" if "gw_ptr" in args and not self.s.external else "") + "):")
        src("z = tl.program_id(0) * BLOCK_Z + tl.arange(0, BLOCK_Z)")
        src("row_ok = (z < rows)[:, None]")
        src("z64 = z.to(tl.int64)[:, None]")
        for end in self.endpoints:     # the node row of each edge at that end
            src(f"{end}64 = tl.load(index_{end}_ptr + z, mask=z < rows, other=0).to(tl.int64)[:, None]")

    def row(self, base: str) -> str:
        """The row index of a pointer's rows: the edge (z64), or a node through an edge index."""
        return f"{self.rows_of[base]}64" if base in self.rows_of else "z64"

    def put(self, base: str) -> str:
        """How to write into base's rows: a store, or an atomic add where edges share node rows."""
        return "tl.atomic_add" if base in self.rows_of and base != "grad" else "tl.store"

    def row_pointers(self, src: Source, grads_in: bool = False, grads_out=(), out: bool = False,
                     weights: bool = False, weight_grads: bool = False) -> None:
        """Row base pointers; grads_out: the inputs whose gradients this kernel writes."""
        s = self.s
        for r in sorted(set(self.canon)):
            src(f"in{r} = in{r}_ptr + {self.row(f'in{r}')} * {s.in_dims[r]}")
        if out:
            src(f"out = out_ptr + {self.row('out')} * {s.out_dim}")
        if grads_in:
            src(f"grad = grad_ptr + {self.row('grad')} * {s.out_dim}")
        for r in grads_out:
            src(f"gin{r} = gin{r}_ptr + {self.row(f'gin{r}')} * {s.in_dims[r]}")
        if weights and s.weight_numel:
            src(f"w = w_ptr + z64 * {s.weight_numel}" if s.external else "w = w_ptr")
        if weight_grads and s.weight_numel:
            if s.external:
                src(f"gw = gw_ptr + z64 * {s.weight_numel}")
            else:
                # ATOMIC: every program adds into one [numel] row; else each program owns a row.
                src("if ATOMIC:")
                src("    gw = gw_ptr")
                src("else:")
                src(f"    gw = gw_ptr + tl.program_id(0).to(tl.int64) * {s.weight_numel}")

    def channels(self, src: Source, muls) -> None:
        """Channel index tiles and masks for every multiplicity used."""
        for m in sorted(set(muls)):
            src(f"ch{m} = tl.arange(0, {pow2(m)})[None, :]")
            src(f"ok{m} = row_ok & (ch{m} < {m})")

    def zeros(self, shape_mul: int | None) -> str:
        width = 1 if shape_mul is None else pow2(shape_mul)
        return f"tl.zeros([BLOCK_Z, {width}], dtype=DT)"

    def tile_address(self, r: int, t: int, i: int) -> str:
        term = self.s.inputs[r][t]
        return f"in{r} + {term.offset + i} + ch{term.mul} * {term.dim}"

    def column_address(self, base: str, term, i: int, channel: str) -> str:
        """Component i of channel `channel` (a loop index or 0) of a term, one value per row."""
        if channel == "0":
            return f"{base} + {term.offset + i}"
        return f"{base} + {term.offset + i} + {channel} * {term.dim}"

    def weight_tile(self, p: KernelPath, mul: int, stride: int, extra: str) -> str:
        """Weights of path p for channels ch{mul}: W[off + ch * stride + extra]."""
        s = self.s
        index = f"{p.weight_offset}" + (f" + {extra}" if extra != "0" else "") + f" + ch{mul}" + \
            (f" * {stride}" if stride != 1 else "")
        if s.external:
            return f"tl.load(w + {index}, mask=ok{mul}, other=0.0)"
        return f"tl.load(w + {index}, mask=ch{mul} < {mul}, other=0.0)"

    def store_weight_grad(self, src: Source, p: KernelPath, mul: int, stride: int, extra: str, tile: str) -> None:
        s = self.s
        index = f"{p.weight_offset}" + (f" + {extra}" if extra != "0" else "") + f" + ch{mul}" + \
            (f" * {stride}" if stride != 1 else "")
        if s.external:
            src(f"tl.store(gw + {index}, {tile}, mask=ok{mul})")
            return
        # Internal weights: this program's rows summed; the channel axis stays [1, C].
        src(f"{tile}_rows = tl.sum({tile}, axis=0)[None, :]")
        src("if ATOMIC:")
        src(f"    tl.atomic_add(gw + {index}, {tile}_rows, mask=ch{mul} < {mul})")
        src("else:")
        src(f"    tl.store(gw + {index}, {tile}_rows, mask=ch{mul} < {mul})")

    def loop(self, src: Source, var: str, mul: int) -> str:
        """Open a loop over a channel (nothing for multiplicity 1); returns the index expression."""
        if mul == 1:
            return "0"
        src(f"for {var} in range({mul}):")
        src.indent()
        return var

    def end_loop(self, src: Source, mul: int) -> None:
        if mul != 1:
            src.dedent()

    def zero_outputs(self, src: Source) -> None:
        """o{c}_{k}: the output tiles, accumulated in registers."""
        for c, t in enumerate(self.s.out):
            for k in range(t.dim):
                src(f"o{c}_{k} = {self.zeros(t.mul)}")

    def store_outputs(self, src: Source) -> None:
        for c, t in enumerate(self.s.out):
            for k in range(t.dim):
                src(f"{self.put('out')}(out + {t.offset + k} + ch{t.mul} * {t.dim}, o{c}_{k}, mask=ok{t.mul})")

    def load_output_grads(self, src: Source) -> None:
        """g{c}_{k}: the gradient of the output, read once per row block."""
        for c, t in enumerate(self.s.out):
            for k in range(t.dim):
                src(f"g{c}_{k} = tl.load(grad + {t.offset + k} + ch{t.mul} * {t.dim}, mask=ok{t.mul}, other=0.0)")

    def comment(self, src: Source, p: KernelPath) -> None:
        src(f"# path {p.index}: {p.text}")

    # -- kernels ---------------------------------------------------------------------

    def kernels(self) -> list[Kernel]:
        return getattr(self, f"_{self.s.mode}")()

    # uvu ----------------------------------------------------------------------------

    def _uvu_groups(self):
        """(second-input term or None, its multiplicity, paths): binary fuse loops over the
        second input's channels term by term; n-ary inputs after the first have one channel."""
        s = self.s
        if self.n == 2:
            return [(b, term.mul, [p for p in s.paths if p.ins[1] == b]) for b, term in enumerate(s.inputs[1])]
        return [(None, 1, s.paths)]

    def _others(self, src: Source, paths, channel: str, prefix: str = "y") -> None:
        """Load the components of inputs 1.. that the paths read, one column each."""
        seen = set()
        for p in paths:
            for idx, _, _ in p.entries:
                for r in range(1, self.n):
                    key = (r, p.ins[r], idx[r])
                    if key not in seen:
                        seen.add(key)
                        term = self.s.inputs[r][p.ins[r]]
                        src(f"{prefix}{r}_{p.ins[r]}_{idx[r]} = tl.load({self.column_address(f'in{r}', term, idx[r], channel)}, "
                            "mask=row_ok, other=0.0)")

    def _combinations(self, src: Source, p: KernelPath) -> dict[tuple[int, int], str]:
        """c{p}_{i}_{k} = sum over the other inputs' components of coefficient * their product: one
        column per (first-input component i, output component k) that the path couples."""
        combos: dict[tuple[int, int], list] = {}
        for idx, k, c in p.entries:
            factors = [f"y{r}_{p.ins[r]}_{idx[r]}" for r in range(1, self.n)]
            combos.setdefault((idx[0], k), []).append((c, factors))
        names = {}
        for (i, k), terms in sorted(combos.items()):
            names[(i, k)] = f"c{p.index}_{i}_{k}"
            src(f"{names[(i, k)]} = {linear_sum(terms)}")
        return names

    def _uvu(self) -> list[Kernel]:
        s = self.s
        x_terms = sorted({p.ins[0] for p in s.paths})
        x_muls = [s.inputs[0][a].mul for a in range(len(s.inputs[0]))]
        out_muls = [t.mul for t in s.out]
        groups = self._uvu_groups()
        ins = [f"in{r}_ptr" for r in range(self.n)]
        w_arg = ["w_ptr"] if s.weight_numel else []

        # forward
        src = Source()
        name = f"{s.stem}_forward"
        self.header(src, name, ins + w_arg + ["out_ptr"])
        src("DT = out_ptr.dtype.element_ty")
        self.row_pointers(src, out=True, weights=True)
        self.channels(src, x_muls + out_muls)
        for a in x_terms:
            t = s.inputs[0][a]
            for i in range(t.dim):
                src(f"x{a}_{i} = tl.load({self.tile_address(0, a, i)}, mask=ok{t.mul}, other=0.0)")
        self.zero_outputs(src)
        for b, mul_b, paths in groups:
            if not paths:
                continue
            v = self.loop(src, "v", mul_b)
            self._others(src, paths, v)
            for p in paths:
                self.comment(src, p)
                combos = self._combinations(src, p)
                a, c = p.ins[0], p.out
                mul, d_a, d_c = s.inputs[0][a].mul, s.inputs[0][a].dim, s.out[c].dim
                src(f"w{p.index} = {self.weight_tile(p, mul, mul_b, v)}")
                if d_a <= d_c:      # weigh the input components, or the output components: fewer multiplies
                    for i in sorted({i for i, _ in combos}):
                        src(f"xw{p.index}_{i} = x{a}_{i} * w{p.index}")
                    for k in sorted({k for _, k in combos}):
                        terms = " + ".join(f"xw{p.index}_{i} * {combos[(i, kk)]}" for i, kk in sorted(combos) if kk == k)
                        src(f"o{c}_{k} += {terms}")
                else:
                    for k in sorted({k for _, k in combos}):
                        terms = " + ".join(f"x{a}_{i} * {combos[(i, kk)]}" for i, kk in sorted(combos) if kk == k)
                        src(f"o{c}_{k} += w{p.index} * ({terms})")
            self.end_loop(src, mul_b)
        self.store_outputs(src)
        live = sum(s.inputs[0][a].dim * pow2(s.inputs[0][a].mul) for a in x_terms) + \
            sum(t.dim * pow2(t.mul) for t in s.out)
        forward = Kernel(name, src.text(), block_rows(live, self.widest))

        # backward: gradients of every input and of the weights, one kernel
        src = Source()
        name = f"{s.stem}_backward"
        gins = [f"gin{r}_ptr" for r in range(self.n)]
        self.header(src, name, ins + w_arg + ["grad_ptr"] + gins + (["gw_ptr"] if s.weight_numel else []))
        src("DT = grad_ptr.dtype.element_ty")
        self.row_pointers(src, grads_in=True, grads_out=range(self.n), weights=True, weight_grads=True)
        self.channels(src, x_muls + out_muls)
        for a in x_terms:
            t = s.inputs[0][a]
            for i in range(t.dim):
                src(f"x{a}_{i} = tl.load({self.tile_address(0, a, i)}, mask=ok{t.mul}, other=0.0)")
        self.load_output_grads(src)
        for a, t in enumerate(s.inputs[0]):
            for i in range(t.dim):
                src(f"gx{a}_{i} = {self.zeros(t.mul)}")
        for b, mul_b, paths in groups:
            owned = [(1, b)] if self.n == 2 else [(r, t) for r in range(1, self.n) for t in range(len(s.inputs[r]))]
            v = self.loop(src, "v", mul_b)
            self._others(src, paths, v)
            # The other inputs' gradients are sums over the channels: accumulate them as tiles
            # (one per component and channel width) and reduce each once, after the group's paths.
            sums = sorted({(r, p.ins[r], idx[r], s.inputs[0][p.ins[0]].mul) for p in paths
                           for idx, _, _ in p.entries for r in range(1, self.n)})
            for r, t, j, mul in sums:
                src(f"T{r}_{t}_{j}_{mul} = {self.zeros(mul)}")
            for p in paths:
                self.comment(src, p)
                combos = self._combinations(src, p)
                a, c = p.ins[0], p.out
                mul = s.inputs[0][a].mul
                wp = f"w{p.index}"
                src(f"{wp} = {self.weight_tile(p, mul, mul_b, v)}")
                rows_i = sorted({i for i, _ in combos})
                for i in rows_i:    # s_i = sum_k c_ik g_k: the output gradient seen by component i
                    terms = " + ".join(f"{combos[(ii, k)]} * g{c}_{k}" for ii, k in sorted(combos) if ii == i)
                    src(f"s{p.index}_{i} = {terms}")
                    src(f"gx{a}_{i} += {wp} * s{p.index}_{i}")
                if s.weight_numel:
                    src(f"gw{p.index} = " + " + ".join(f"x{a}_{i} * s{p.index}_{i}" for i in rows_i))
                    self.store_weight_grad(src, p, mul, mul_b, v, f"gw{p.index}")
                for k in sorted({k for _, k in combos}):
                    src(f"wg{p.index}_{k} = {wp} * g{c}_{k}")
                for i, k in sorted(combos):
                    src(f"xwg{p.index}_{i}_{k} = x{a}_{i} * wg{p.index}_{k}")
                contributions: dict[tuple, list] = {}
                for idx, k, coef in p.entries:
                    for r in range(1, self.n):
                        others = [f"y{q}_{p.ins[q]}_{idx[q]}" for q in range(1, self.n) if q != r]
                        contributions.setdefault((r, p.ins[r], idx[r], mul), []).append(
                            (coef, others + [f"xwg{p.index}_{idx[0]}_{k}"]))
                for (r, t, j, m), terms in sorted(contributions.items()):
                    src(f"T{r}_{t}_{j}_{m} += {linear_sum(terms)}")
            for r, t in owned:
                term = s.inputs[r][t]
                for j in range(term.dim):
                    parts = [f"tl.sum(T{r}_{t}_{j}_{m}, axis=1)[:, None]" for rr, tt, jj, m in sums
                             if (rr, tt, jj) == (r, t, j)]
                    value = " + ".join(parts) if parts else self.zeros(None)
                    src(f"{self.put(f'gin{r}')}({self.column_address(f'gin{r}', term, j, v)}, {value}, mask=row_ok)")
            self.end_loop(src, mul_b)
        for a, t in enumerate(s.inputs[0]):
            for i in range(t.dim):
                src(f"{self.put('gin0')}({self.tile_address(0, a, i).replace('in0', 'gin0', 1)}, gx{a}_{i}, mask=ok{t.mul})")
        # live tiles: x, its gradient, the output gradient and the other inputs' channel sums
        live = sum(s.inputs[0][a].dim * pow2(s.inputs[0][a].mul) for a in range(len(s.inputs[0]))) * 2 + \
            sum(t.dim * pow2(t.mul) for t in s.out) + \
            max(t.dim for r in range(1, self.n) for t in s.inputs[r]) * (self.n - 1) * pow2(max(x_muls))
        backward = Kernel(name, src.text(), block_rows(live, self.widest))
        return [forward, backward]

    # uuu ----------------------------------------------------------------------------

    def _tile(self, r: int, t: int, i: int) -> str:
        return f"x{self.canon[r]}_{t}_{i}"

    def _uuu(self) -> list[Kernel]:
        if self.n == 3 and all(p.stages for p in self.s.paths):    # (a symmetric fuse has no tree)
            return self._uuu_tree()
        s = self.s

        def products(src, p: KernelPath, cache: dict, factors: list[str]) -> str:
            """The product of factors (tile names), reusing products already formed for this path."""
            key = tuple(factors)
            if len(factors) == 1:
                return factors[0]
            if key not in cache:
                head = products(src, p, cache, factors[:-1])
                cache[key] = f"q{p.index}_{len(cache)}"
                src(f"{cache[key]} = {head} * {factors[-1]}")
            return cache[key]

        def path_values(src, p: KernelPath, cache) -> dict[int, str]:
            """t{p}_{k}: the path's coupling of the input tiles, before weights."""
            per_k: dict[int, list] = {}
            for idx, k, c in p.entries:
                prod = products(src, p, cache, [self._tile(r, p.ins[r], idx[r]) for r in range(self.n)])
                per_k.setdefault(k, []).append((c, [prod]))
            names = {}
            for k, terms in sorted(per_k.items()):
                names[k] = f"t{p.index}_{k}"
                src(f"{names[k]} = {linear_sum(terms)}")
            return names

        def forward_paths(src):
            for p in s.paths:
                self.comment(src, p)
                values = path_values(src, p, {})
                mul = s.out[p.out].mul
                src(f"w{p.index} = {self.weight_tile(p, mul, 1, '0')}")
                for k, tk in values.items():
                    src(f"o{p.out}_{k} += w{p.index} * {tk}")

        def backward_paths(src):
            for p in s.paths:
                self.comment(src, p)
                cache: dict = {}
                mul = s.out[p.out].mul
                wp = f"w{p.index}"
                src(f"{wp} = {self.weight_tile(p, mul, 1, '0')}")
                if s.weight_numel:
                    values = path_values(src, p, cache)
                    grad_w = " + ".join(f"{tk} * g{p.out}_{k}" for k, tk in values.items())
                    src(f"gw{p.index} = {grad_w}")
                    self.store_weight_grad(src, p, mul, 1, "0", f"gw{p.index}")
                ks = sorted({k for _, k, _ in p.entries})
                for k in ks:
                    src(f"wg{p.index}_{k} = {wp} * g{p.out}_{k}")
                contributions: dict[tuple[int, int, int], list] = {}
                for idx, k, coef in p.entries:
                    for r in range(self.n):
                        others = [self._tile(q, p.ins[q], idx[q]) for q in range(self.n) if q != r]
                        prod = products(src, p, cache, others) if others else None
                        factors = ([prod] if prod else []) + [f"wg{p.index}_{k}"]
                        contributions.setdefault((self.canon[r], p.ins[r], idx[r]), []).append((coef, factors))
                for (r, t, i), terms in sorted(contributions.items()):
                    src(f"gx{r}_{t}_{i} += {linear_sum(terms)}")

        return self._uuu_kernels(forward_paths, backward_paths)

    def _uuu_kernels(self, forward_paths, backward_paths) -> list[Kernel]:
        """The forward and backward kernels of a uuu fuse around its path loops (the frame _uuu and
        _uuu_tree share): every used input tile read once, the output (or its gradient) held in
        registers; forward_paths(src) adds into o{c}_{k}, backward_paths(src) into gx{r}_{t}_{i}."""
        s = self.s
        canon = sorted(set(self.canon))
        used = sorted({(self.canon[r], p.ins[r], idx[r]) for p in s.paths for idx, _, _ in p.entries
                       for r in range(self.n)})
        muls = [t.mul for r in canon for t in s.inputs[r]] + [t.mul for t in s.out]
        ins = [f"in{r}_ptr" for r in range(self.n)]
        w_arg = ["w_ptr"] if s.weight_numel else []

        def load_inputs(src):
            for r, t, i in used:
                term = s.inputs[r][t]
                src(f"x{r}_{t}_{i} = tl.load({self.tile_address(r, t, i)}, mask=ok{term.mul}, other=0.0)")

        # forward
        src = Source()
        name = f"{s.stem}_forward"
        self.header(src, name, ins + w_arg + ["out_ptr"])
        src("DT = out_ptr.dtype.element_ty")
        self.row_pointers(src, out=True, weights=True)
        self.channels(src, muls)
        load_inputs(src)
        self.zero_outputs(src)
        forward_paths(src)
        self.store_outputs(src)
        tiles = sum(s.inputs[r][t].dim * pow2(s.inputs[r][t].mul) for r in canon for t in range(len(s.inputs[r])))
        outs = sum(t.dim * pow2(t.mul) for t in s.out)
        forward = Kernel(name, src.text(), block_rows(tiles + outs, self.widest))

        # backward
        src = Source()
        name = f"{s.stem}_backward"
        gins = [f"gin{r}_ptr" for r in range(self.n)]
        self.header(src, name, ins + w_arg + ["grad_ptr"] + gins + (["gw_ptr"] if s.weight_numel else []))
        src("DT = grad_ptr.dtype.element_ty")
        self.row_pointers(src, grads_in=True, grads_out=canon, weights=True, weight_grads=True)
        self.channels(src, muls)
        load_inputs(src)
        self.load_output_grads(src)
        for r in canon:
            for t, term in enumerate(s.inputs[r]):
                for i in range(term.dim):
                    src(f"gx{r}_{t}_{i} = {self.zeros(term.mul)}")
        backward_paths(src)
        for r in canon:
            for t, term in enumerate(s.inputs[r]):
                for i in range(term.dim):
                    src(f"{self.put(f'gin{r}')}(gin{r} + {term.offset + i} + ch{term.mul} * {term.dim}, gx{r}_{t}_{i}, "
                        f"mask=ok{term.mul})")
        backward = Kernel(name, src.text(), block_rows(2 * tiles + outs, self.widest))
        return [forward, backward]

    def _uuu_tree(self) -> list[Kernel]:
        """fuse(a, b, c) [uuu] through its tree: the inner tile P[m] = sum_ij C1[i,j,m] a_i b_j is formed
        once per (term of a, term of b, inner label) and shared by every path through it (other terms
        of c, other outputs), then t_k = sum_ml C2[m,l,k] P_m c_l; far fewer terms than the composed
        coupling, and the backward runs the same two stages in reverse."""
        s = self.s
        groups: dict[tuple, list[KernelPath]] = {}      # (term of a, term of b, stage-1 coupling) -> paths
        for p in s.paths:
            groups.setdefault((p.ins[0], p.ins[1], p.stages[0]), []).append(p)

        tile = self._tile

        def inner(src, g, key):
            a, b, stage = key
            per_m: dict[int, list] = {}
            for (i, j), m, coef in stage:
                per_m.setdefault(m, []).append((coef, [tile(0, a, i), tile(1, b, j)]))
            for m, terms in sorted(per_m.items()):
                src(f"P{g}_{m} = {linear_sum(terms)}")
            return sorted(per_m)

        def outer(src, g, p):
            per_k: dict[int, list] = {}
            for (m, l), k, coef in p.stages[1]:
                per_k.setdefault(k, []).append((coef, [f"P{g}_{m}", tile(2, p.ins[2], l)]))
            for k, terms in sorted(per_k.items()):
                src(f"t{p.index}_{k} = {linear_sum(terms)}")
            return sorted(per_k)

        def forward_paths(src):
            for g, (key, paths) in enumerate(groups.items()):
                src(f"# {s.inputs[0][key[0]].label} x {s.inputs[1][key[1]].label} -> inner P{g}, "
                    f"then paths {', '.join(str(p.index) for p in paths)}")
                inner(src, g, key)
                for p in paths:
                    self.comment(src, p)
                    ks = outer(src, g, p)
                    src(f"w{p.index} = {self.weight_tile(p, s.out[p.out].mul, 1, '0')}")
                    for k in ks:
                        src(f"o{p.out}_{k} += w{p.index} * t{p.index}_{k}")

        def backward_paths(src):
            for g, (key, paths) in enumerate(groups.items()):
                a, b, stage = key
                src(f"# {s.inputs[0][a].label} x {s.inputs[1][b].label} -> inner P{g}, "
                    f"then paths {', '.join(str(p.index) for p in paths)}")
                ms = inner(src, g, key)
                grads_p: dict[int, list] = {}
                for p in paths:
                    self.comment(src, p)
                    wp = f"w{p.index}"
                    src(f"{wp} = {self.weight_tile(p, s.out[p.out].mul, 1, '0')}")
                    if s.weight_numel:
                        ks = outer(src, g, p)
                        src(f"gw{p.index} = " + " + ".join(f"t{p.index}_{k} * g{p.out}_{k}" for k in ks))
                        self.store_weight_grad(src, p, s.out[p.out].mul, 1, "0", f"gw{p.index}")
                    for k in sorted({k for _, k, _ in p.stages[1]}):
                        src(f"wg{p.index}_{k} = {wp} * g{p.out}_{k}")
                    per_l: dict[int, list] = {}
                    for (m, l), k, coef in p.stages[1]:
                        grads_p.setdefault(m, []).append((coef, [tile(2, p.ins[2], l), f"wg{p.index}_{k}"]))
                        per_l.setdefault(l, []).append((coef, [f"P{g}_{m}", f"wg{p.index}_{k}"]))
                    for l, terms in sorted(per_l.items()):
                        src(f"gx{self.canon[2]}_{p.ins[2]}_{l} += {linear_sum(terms)}")
                for m in ms:      # the gradient reaching the inner tile, from every path through it
                    src(f"gP{g}_{m} = {linear_sum(grads_p[m])}" if m in grads_p else f"gP{g}_{m} = {self.zeros(None)}")
                per_i: dict[int, list] = {}
                per_j: dict[int, list] = {}
                for (i, j), m, coef in stage:
                    if m in grads_p:
                        per_i.setdefault(i, []).append((coef, [tile(1, b, j), f"gP{g}_{m}"]))
                        per_j.setdefault(j, []).append((coef, [tile(0, a, i), f"gP{g}_{m}"]))
                for i, terms in sorted(per_i.items()):
                    src(f"gx{self.canon[0]}_{a}_{i} += {linear_sum(terms)}")
                for j, terms in sorted(per_j.items()):
                    src(f"gx{self.canon[1]}_{b}_{j} += {linear_sum(terms)}")

        return self._uuu_kernels(forward_paths, backward_paths)

    # none (binary) ----------------------------------------------------------------------

    def _none(self) -> list[Kernel]:
        s = self.s
        x_terms = sorted({p.ins[0] for p in s.paths})
        x_muls = [t.mul for t in s.inputs[0]]
        ins = ["in0_ptr", "in1_ptr"]

        def out_address(base, c, k, mul_b, v):
            t = s.out[c]
            mul_a = t.mul // mul_b
            channel = f"ch{mul_a}" if mul_b == 1 else f"(ch{mul_a} * {mul_b} + {v})"
            return f"{base} + {t.offset + k} + {channel} * {t.dim}", mul_a

        # forward: output term by output term, looping over the second input's channels
        src = Source()
        name = f"{s.stem}_forward"
        self.header(src, name, ins + ["out_ptr"])
        src("DT = out_ptr.dtype.element_ty")
        self.row_pointers(src, out=True)
        self.channels(src, x_muls)
        for a in x_terms:
            t = s.inputs[0][a]
            for i in range(t.dim):
                src(f"x{a}_{i} = tl.load({self.tile_address(0, a, i)}, mask=ok{t.mul}, other=0.0)")
        for c, t in enumerate(s.out):
            paths = [p for p in s.paths if p.out == c]
            mul_b = s.inputs[1][paths[0].ins[1]].mul
            mul_a = t.mul // mul_b
            v = self.loop(src, "v", mul_b)
            for k in range(t.dim):
                src(f"o{c}_{k} = {self.zeros(mul_a)}")
            self._others(src, paths, v)
            for p in paths:
                self.comment(src, p)
                combos = self._combinations(src, p)
                for k in sorted({k for _, k in combos}):
                    terms = " + ".join(f"x{p.ins[0]}_{i} * {combos[(i, kk)]}" for i, kk in sorted(combos) if kk == k)
                    src(f"o{c}_{k} += {terms}")
            for k in range(t.dim):
                address, _ = out_address("out", c, k, mul_b, v)
                src(f"{self.put('out')}({address}, o{c}_{k}, mask=ok{mul_a})")
            self.end_loop(src, mul_b)
        live = sum(s.inputs[0][a].dim * pow2(s.inputs[0][a].mul) for a in x_terms) + \
            max(t.dim * pow2(t.mul) for t in s.out)
        forward = Kernel(name, src.text(), block_rows(live, self.widest))

        # backward: second-input term by term (each owns its gradient), looping over its channels
        src = Source()
        name = f"{s.stem}_backward"
        self.header(src, name, ins + ["grad_ptr", "gin0_ptr", "gin1_ptr"])
        src("DT = grad_ptr.dtype.element_ty")
        self.row_pointers(src, grads_in=True, grads_out=(0, 1))
        self.channels(src, x_muls)
        for a in x_terms:
            t = s.inputs[0][a]
            for i in range(t.dim):
                src(f"x{a}_{i} = tl.load({self.tile_address(0, a, i)}, mask=ok{t.mul}, other=0.0)")
        for a, t in enumerate(s.inputs[0]):
            for i in range(t.dim):
                src(f"gx{a}_{i} = {self.zeros(t.mul)}")
        for b, term_b in enumerate(s.inputs[1]):
            paths = [p for p in s.paths if p.ins[1] == b]
            mul_b = term_b.mul
            v = self.loop(src, "v", mul_b)
            self._others(src, paths, v)
            # gy sums over the first input's channels: accumulated as tiles, reduced once per component
            sums = sorted({(idx[1], s.inputs[0][p.ins[0]].mul) for p in paths for idx, _, _ in p.entries})
            for j, mul in sums:
                src(f"T{j}_{mul} = {self.zeros(mul)}")
            loaded = set()
            for p in paths:
                self.comment(src, p)
                c = p.out
                combos = self._combinations(src, p)
                for k in sorted({k for _, k in combos}):
                    if (c, k) not in loaded:
                        loaded.add((c, k))
                        address, mul_a = out_address("grad", c, k, mul_b, v)
                        src(f"g{b}_{c}_{k} = tl.load({address}, mask=ok{mul_a}, other=0.0)")
                a, mul = p.ins[0], s.inputs[0][p.ins[0]].mul
                for i in sorted({i for i, _ in combos}):
                    terms = " + ".join(f"{combos[(ii, k)]} * g{b}_{c}_{k}" for ii, k in sorted(combos) if ii == i)
                    src(f"gx{a}_{i} += {terms}")
                per_j: dict[int, list] = {}
                for idx, k, coef in p.entries:
                    per_j.setdefault(idx[1], []).append((coef, [f"x{a}_{idx[0]}", f"g{b}_{c}_{k}"]))
                for j, terms in sorted(per_j.items()):
                    src(f"T{j}_{mul} += {linear_sum(terms)}")
            for j in range(term_b.dim):
                parts = [f"tl.sum(T{jj}_{m}, axis=1)[:, None]" for jj, m in sums if jj == j]
                src(f"gy1_{b}_{j} = {' + '.join(parts) if parts else self.zeros(None)}")
            for j in range(term_b.dim):
                src(f"{self.put('gin1')}({self.column_address('gin1', term_b, j, v)}, gy1_{b}_{j}, mask=row_ok)")
            self.end_loop(src, mul_b)
        for a, t in enumerate(s.inputs[0]):
            for i in range(t.dim):
                src(f"{self.put('gin0')}(gin0 + {t.offset + i} + ch{t.mul} * {t.dim}, gx{a}_{i}, mask=ok{t.mul})")
        live = 2 * sum(t.dim * pow2(t.mul) for t in s.inputs[0]) + max(t.dim * pow2(t.mul) for t in s.out)
        backward = Kernel(name, src.text(), block_rows(live, self.widest))
        return [forward, backward]

    # uvw (any number of inputs) -------------------------------------------------------------

    def _uvw(self) -> list[Kernel]:
        """out[z, w, k] = sum_{u1..un} sum C[i1..in, k] x1[u1, i1] ... xn[un, in] W[u1, .., un, w]: the
        forward tiles the output channels w and loops over every input's channels; backward kernel r
        tiles input r's channels and loops over w and the other inputs' channels, so that every update
        is a column times a row of weights (kernel 0 also writes the weights' gradient)."""
        s, n = self.s, self.n
        ins = [f"in{r}_ptr" for r in range(n)]

        def load_columns(src, r, t, channel, comps):
            term = s.inputs[r][t]
            for i in comps:
                src(f"x{r}_{t}_{i} = tl.load({self.column_address(f'in{r}', term, i, channel)}, "
                    "mask=row_ok, other=0.0)")

        def comps(paths, r):
            return sorted({idx[r] for p in paths for idx, _, _ in p.entries})

        def strides(p):
            """Stride of each input's channel, then of the output channel, in path p's weights."""
            muls = [s.inputs[r][p.ins[r]].mul for r in range(n)] + [s.out[p.out].mul]
            out = [1] * (n + 1)
            for r in range(n - 1, -1, -1):
                out[r] = out[r + 1] * muls[r + 1]
            return out

        def offset(parts) -> str:
            """'v * 16 + q' from [(v, 16), (q, 1)], leaving out static zeros."""
            terms = [f"{var} * {scale}" if scale != 1 else var for var, scale in parts if var != "0"]
            return " + ".join(terms) if terms else "0"

        def open_loops(src, paths, positions):
            """Nested loops over the channels of the inputs at positions (terms of the first path),
            loading each one's columns inside its loop; returns the channel index per position."""
            chans = {}
            for r in positions:
                t = paths[0].ins[r]
                chans[r] = self.loop(src, f"u{r}", s.inputs[r][t].mul)     # (q: the output channel)
                load_columns(src, r, t, chans[r], comps(paths, r))
            return chans

        def close_loops(src, paths, positions):
            for r in reversed(positions):
                self.end_loop(src, s.inputs[r][paths[0].ins[r]].mul)

        def store_tiles(src, base, r):
            for t, term in enumerate(s.inputs[r]):
                for i in range(term.dim):
                    src(f"{self.put(base)}({base} + {term.offset + i} + ch{term.mul} * {term.dim}, gx{t}_{i}, "
                        f"mask=ok{term.mul})")

        # forward
        src = Source()
        name = f"{s.stem}_forward"
        self.header(src, name, ins + ["w_ptr", "out_ptr"])
        src("DT = out_ptr.dtype.element_ty")
        self.row_pointers(src, out=True, weights=True)
        self.channels(src, [t.mul for t in s.out])
        self.zero_outputs(src)
        groups: dict[tuple, list[KernelPath]] = {}
        for p in s.paths:
            groups.setdefault(p.ins, []).append(p)
        for paths in groups.values():
            chans = open_loops(src, paths, list(range(n)))
            for p in paths:
                self.comment(src, p)
                per_k: dict[int, list] = {}
                for idx, k, c in p.entries:
                    per_k.setdefault(k, []).append((c, [f"x{r}_{p.ins[r]}_{idx[r]}" for r in range(n)]))
                for k, terms in sorted(per_k.items()):
                    src(f"t{p.index}_{k} = {linear_sum(terms)}")
                st = strides(p)
                extra = offset([(chans[r], st[r]) for r in range(n)])
                src(f"w{p.index} = {self.weight_tile(p, s.out[p.out].mul, 1, extra)}")
                for k in sorted(per_k):
                    src(f"o{p.out}_{k} += t{p.index}_{k} * w{p.index}")
            close_loops(src, paths, list(range(n)))
        self.store_outputs(src)
        kernels = [Kernel(name, src.text(), block_rows(sum(t.dim * pow2(t.mul) for t in s.out), self.widest))]

        # backward r: the gradient of input r (and for r = 0 of the weights)
        for r in range(n):
            weights_too = r == 0
            others = [q for q in range(n) if q != r]
            src = Source()
            name = f"{s.stem}_backward_in{r}"
            self.header(src, name, ins + ["w_ptr", "grad_ptr", f"gin{r}_ptr"] + (["gw_ptr"] if weights_too else []))
            src("DT = grad_ptr.dtype.element_ty")
            self.row_pointers(src, grads_in=True, grads_out=(r,), weights=True, weight_grads=weights_too)
            self.channels(src, [t.mul for t in s.inputs[r]])
            tiled = sorted({p.ins[r] for p in s.paths}) if weights_too else []
            for a in tiled:     # input r's own values, as tiles: the weights' gradient needs them
                t = s.inputs[r][a]
                for i in range(t.dim):
                    src(f"X{a}_{i} = tl.load({self.tile_address(r, a, i)}, mask=ok{t.mul}, other=0.0)")
            for a, t in enumerate(s.inputs[r]):
                for i in range(t.dim):
                    src(f"gx{a}_{i} = {self.zeros(t.mul)}")
            by_rest: dict[tuple, list[KernelPath]] = {}
            for p in s.paths:
                by_rest.setdefault(tuple(p.ins[q] for q in others) + (p.out,), []).append(p)
            for paths in by_rest.values():
                c, mul_c = paths[0].out, s.out[paths[0].out].mul
                w = self.loop(src, "q", mul_c)    # output channel (w of uvw; `w` names the weights)
                for k in sorted({k for p in paths for _, k, _ in p.entries}):
                    src(f"g{c}_{k} = tl.load({self.column_address('grad', s.out[c], k, w)}, mask=row_ok, "
                        "other=0.0)")
                chans = open_loops(src, paths, others)
                for p in paths:
                    self.comment(src, p)
                    a, mul_a = p.ins[r], s.inputs[r][p.ins[r]].mul
                    per_i: dict[int, list] = {}
                    for idx, k, coef in p.entries:
                        per_i.setdefault(idx[r], []).append(
                            (coef, [f"x{q}_{p.ins[q]}_{idx[q]}" for q in others] + [f"g{c}_{k}"]))
                    for i, terms in sorted(per_i.items()):   # e_i: the output gradient seen by component i
                        src(f"e{p.index}_{i} = {linear_sum(terms)}")
                    st = strides(p)
                    extra = offset([(chans[q], st[q]) for q in others] + [(w, 1)])
                    src(f"w{p.index} = {self.weight_tile(p, mul_a, st[r], extra)}")
                    for i in sorted(per_i):
                        src(f"gx{a}_{i} += e{p.index}_{i} * w{p.index}")
                    if weights_too:
                        src(f"gw{p.index} = " + " + ".join(f"X{a}_{i} * e{p.index}_{i}" for i in sorted(per_i)))
                        self.store_weight_grad(src, p, mul_a, st[r], extra, f"gw{p.index}")
                close_loops(src, paths, others)
                self.end_loop(src, mul_c)
            store_tiles(src, f"gin{r}", r)
            live = (2 if weights_too else 1) * sum(t.dim * pow2(t.mul) for t in s.inputs[r])
            kernels.append(Kernel(name, src.text(), block_rows(live, self.widest)))
        return kernels
