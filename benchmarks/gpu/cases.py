"""The GPU benchmark cases of issue 15: .fus sources, sizes, and the e3nn modules they are compared with.

Each case builds, for an implementation name, a module and its inputs on a device:
    "triton"  fusionlang, backend="triton"    "torch"  fusionlang, backend="torch"
    "e3nn"    e3nn's o3.TensorProduct (eager; the harness wraps it in torch.compile for "e3nn-compiled")
    "cueq"    cuEquivariance (cuequivariance_torch with its CUDA ops), only where it imports
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

import torch


def sh(l: int) -> str:
    return " + ".join(f"{k}{'e' if k % 2 == 0 else 'o'}" for k in range(l + 1))


@dataclass(frozen=True)
class Case:
    key: str
    title: str
    source: str
    rows: int                 # N (rows) or E (edges)
    nodes: int = 0            # graph cases: V
    note: str = ""

    def small(self) -> "Case":
        """The same diagram with every multiplicity 2 (bench_gpu.py --dry-run: quick in the interpreter)."""
        return replace(self, source=re.sub(r"\b\d+x", "2x", self.source))


def _single(name: str, ins: dict[str, str], out: str, call: str) -> str:
    decl = "\n".join(f"    in {w} : {irreps}" for w, irreps in ins.items())
    return f"group O3\ndiagram {name} {{\n{decl}\n    out m : {out}\n    m = {call}\n}}\n"


CASES = {
    "A": Case("A", "32x(0e+1o+2e) x sh(2) uvu, N=100k",
              _single("A", {"x": "32x(0e + 1o + 2e)", "y": sh(2)}, "32x(0e + 1o + 2e)", "fuse(x, y) [weights=uvu]"),
              100_000),
    "D": Case("D", "MACE conv 128x(0e+1o) x sh(3) -> 128x(0e+1o+2e+3o), external uvu, E=100k",
              _single("D", {"x": "128x(0e + 1o)", "y": sh(3)}, "128x(0e + 1o + 2e + 3o)",
                      "fuse(x, y) [weights=uvu, external]"), 100_000),
    "D-graph": Case("D-graph", "D with gather(sender) / scatter(receiver), V=5k, E=100k",
                    "group O3\ndiagram Dgraph {\n"
                    "    in  h : 128x(0e + 1o) per node\n"
                    f"    in  y : {sh(3)} per edge\n"
                    "    out a : 128x(0e + 1o + 2e + 3o) per node\n"
                    "    wire hs : 128x(0e + 1o) = gather(h, sender)\n"
                    "    wire m  : 128x(0e + 1o + 2e + 3o) = fuse(hs, y) [weights=uvu, external]\n"
                    "    a = scatter(m, receiver)\n}\n", 100_000, nodes=5_000),
    "F": Case("F", "16x(0e+1o+2e+3o) x itself uvw, N=50k",
              _single("F", {"x": "16x(0e + 1o + 2e + 3o)"}, "16x(0e + 1o + 2e + 3o)", "fuse(x, x) [weights=uvw]"),
              50_000),
    "C": Case("C", "three-body fuse(h, y1, y2) uvu, h 32x(0e+1o), y sh(2), N=50k",
              _single("C", {"h": "32x(0e + 1o)", "y1": sh(2), "y2": sh(2)}, "32x(0e + 1o)",
                      "fuse(h, y1, y2) [weights=uvu]"), 50_000,
              note="e3nn: two TensorProducts (h x y1 -> one term per path, then x y2), the same function family"),
    "E": Case("E", "product basis 128x(0e+1o+2e+3o)^3 -> 128x(0e+1o) uuu, N=20k",
              _single("E", {"A": "128x(0e + 1o + 2e + 3o)"}, "128x(0e + 1o)", "fuse(A, A, A) [weights=uuu]"),
              20_000,
              note="e3nn: two uuu TensorProducts (A x A -> every intermediate irrep that can reach the output, "
                   "then x A); weights per stage, not per complete path"),
}


def fusion_module(case: Case, backend: str):
    from fusionlang.api import compile_source
    program = compile_source(case.source, backend=backend)
    (module,) = [cls() for cls in program.modules.values()]
    return module, program


def inputs_for(case: Case, program, rows: int, nodes: int, device, dtype=torch.float32, seed: int = 0):
    """Random inputs in forward order (wires, external weights, edge_index for graph cases)."""
    plan = next(iter(program.plans.values()))
    d = plan.diagram
    gen = torch.Generator(device="cpu").manual_seed(seed)
    count = {"node": nodes, "edge": rows, None: rows}
    args = [torch.randn(count[d.domain(w) if d.is_graph else None], d.irreps(w).dim, generator=gen, dtype=dtype)
            for w in d.inputs]
    for v in plan.vertices:
        if v.external and v.weight_numel:
            args.append(torch.randn(rows, v.weight_numel, generator=gen, dtype=dtype))
    if d.is_graph:
        args.append(torch.randint(0, nodes, (2, rows), generator=gen))
    return [a.to(device) for a in args]


def e3nn_module(case: Case, program):
    """The e3nn module computing the case (its own weights), taking our argument order; irreps are read
    from the case's diagram, so --dry-run's smaller multiplicities apply to it too."""
    from e3nn import o3
    d = next(iter(program.plans.values())).diagram
    irreps = {w: "+".join(f"{t.mul}x{t.irrep}" for t in d.irreps(w)) for w in d.wires}

    def tp(a, b, c, mode, external=False):
        a, b, c = o3.Irreps(a), o3.Irreps(b), o3.Irreps(c)
        ins = [(i, j, k, mode, True) for i, (_, x) in enumerate(a) for j, (_, y) in enumerate(b)
               for k, (_, z) in enumerate(c) if z in x * y]
        return o3.TensorProduct(a, b, c, ins, shared_weights=not external, internal_weights=not external)

    if case.key == "A":
        return tp(irreps["x"], irreps["y"], irreps["m"], "uvu")
    if case.key == "D":
        return tp(irreps["x"], irreps["y"], irreps["m"], "uvu", external=True)
    if case.key == "D-graph":
        conv = tp(irreps["h"], irreps["y"], irreps["a"], "uvu", external=True)

        class Graph(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.tp = conv

            def forward(self, h, y, w, edge_index):
                m = self.tp(h.index_select(0, edge_index[0]), y, w)
                return m.new_zeros((h.shape[0], m.shape[1])).index_add(0, edge_index[1], m)
        return Graph()
    if case.key == "F":
        square = tp(irreps["x"], irreps["x"], irreps["m"], "uvw")

        class Square(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.tp = square

            def forward(self, x):
                return self.tp(x, x)
        return Square()
    if case.key == "C":
        return _two_step(irreps["h"], irreps["y1"], irreps["y2"], irreps["m"], "uvu")
    if case.key == "E":
        return _two_step(irreps["A"], None, None, irreps["m"], "uuu")
    raise KeyError(case.key)


def _two_step(first: str, second: str | None, third: str | None, out: str, mode: str):
    """fuse(a, b, c) as two e3nn tensor products: a x b -> one intermediate term per path (kept
    only if it can still reach the output), then x c.  second/third None: the first input again."""
    from e3nn import o3
    a = o3.Irreps(first)
    b = o3.Irreps(second) if second else a
    c = o3.Irreps(third) if third else a
    target = o3.Irreps(out)
    mid, ins1 = [], []
    for i, (mul, x) in enumerate(a):
        for j, (_, y) in enumerate(b):
            for z in x * y:
                if any(t in z * w for _, w in c for _, t in target):
                    ins1.append((i, j, len(mid), mode, False))
                    mid.append((mul, z))
    mid = o3.Irreps(mid)
    ins2 = [(i, j, k, mode, True) for i, (_, x) in enumerate(mid) for j, (_, y) in enumerate(c)
            for k, (_, z) in enumerate(target) if z in x * y]
    tp1 = o3.TensorProduct(a, b, mid, ins1)
    tp2 = o3.TensorProduct(mid, c, target, ins2)
    same = second is None

    class TwoStep(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.tp1, self.tp2 = tp1, tp2

        def forward(self, *args):
            if same:
                (x,) = args
                return self.tp2(self.tp1(x, x), x)
            h, y1, y2 = args
            return self.tp2(self.tp1(h, y1), y2)
    return TwoStep()


def cueq_available() -> bool:
    try:
        import cuequivariance  # noqa: F401
        import cuequivariance_torch  # noqa: F401
    except ImportError:
        return False
    return True


def cueq_module(case: Case, program, device):
    """cuEquivariance's closest module (its own weights, its own output layout: channel-wise products
    write one output segment per path, as in MACE), taking our argument order.  NotImplementedError
    where it has none (C: no three-operand channel-wise product)."""
    import cuequivariance as cue
    import cuequivariance_torch as cuet
    d = next(iter(program.plans.values())).diagram

    def irreps(w):
        return cue.Irreps("O3", " + ".join(f"{t.mul}x{t.irrep}" for t in d.irreps(w)))

    common = dict(layout=cue.mul_ir, device=device, dtype=torch.float32)
    if case.key in ("A", "D", "D-graph"):
        x, y, out = ("h", "y", "a") if case.key == "D-graph" else ("x", "y", "m")
        external = case.key != "A"
        tp = cuet.ChannelWiseTensorProduct(irreps(x), irreps(y), [t.irrep for t in irreps(out)],
                                           shared_weights=not external, internal_weights=not external, **common)
        if case.key != "D-graph":
            return tp

        class Graph(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.tp = tp

            def forward(self, h, y, w, edge_index):
                m = self.tp(h.index_select(0, edge_index[0]), y, w)
                return m.new_zeros((h.shape[0], m.shape[1])).index_add(0, edge_index[1], m)
        return Graph()
    if case.key == "F":
        tp = cuet.FullyConnectedTensorProduct(irreps("x"), irreps("x"), irreps("m"), shared_weights=True,
                                              internal_weights=True, **common)

        class Square(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.tp = tp

            def forward(self, x):
                return self.tp(x, x)
        return Square()
    if case.key == "E":
        sc = cuet.SymmetricContraction(irreps("A"), irreps("m"), contraction_degree=3, num_elements=1,
                                       layout_in=cue.mul_ir, layout_out=cue.mul_ir,
                                       device=device, dtype=torch.float32)

        class Product(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.sc = sc

            def forward(self, A):
                return self.sc(A, torch.zeros(A.shape[0], dtype=torch.int32, device=A.device))
        return Product()
    raise NotImplementedError(f"case {case.key}: cuEquivariance has no equivalent module")


def memory_floor_bytes(case: Case, program, rows: int, dtype_bytes: int = 4, nodes: int = 0) -> int:
    """Bytes a forward must move at least: every input (and external weight) read once, every output
    written once; internal weights are negligible and not counted.  Graph cases: node tensors have
    `nodes` rows, edge tensors `rows`, and edge_index (two int64 per edge) is read once too."""
    plan = next(iter(program.plans.values()))
    d = plan.diagram
    count = {"node": nodes, "edge": rows} if d.is_graph else {}
    elements = sum(count.get(d.domain(w) if d.is_graph else None, rows) * d.irreps(w).dim
                   for w in list(d.inputs) + list(d.outputs))
    elements += rows * sum(v.weight_numel for v in plan.vertices if v.external)
    index = 2 * 8 * rows if d.is_graph else 0
    return elements * dtype_bytes + index
