"""Numerical equivariance of compiled modules: f(D x) == D f(x) under random rotations (and inversion).

A graph diagram is run on a random graph (self-loops, a repeated edge, an isolated node) and every
node and edge value of the whole graph is rotated at once.

torch is imported where it is used: the CLI imports this module for `fusionc verify`, and
`fusionc check` should not pay for loading torch (docs/architecture.md).
"""
from __future__ import annotations

import numpy as np

from .symmetry.wigner import irreps_D, random_rotation

TOLERANCE = 1e-9      # float64; errors are relative to the output's largest entry


def random_graph(num_nodes: int, num_edges: int, generator: torch.Generator) -> torch.Tensor:
    """edge_index [2, E] of random edges among the first V - 1 nodes (the last one is isolated when
    V > 1), with a self-loop and a repeated edge where E allows."""
    import torch
    reach = max(1, num_nodes - 1)
    edges = torch.randint(0, reach, (2, num_edges), generator=generator)
    if num_edges >= 2:
        edges[1, 0] = edges[0, 0]              # a self-loop
        edges[:, -1] = edges[:, 0 if num_edges < 3 else 1]   # a repeated edge
    return edges


def graph_rows(diagram, batch: int) -> dict[str, int]:
    """The V and E a verification run uses for a batch size."""
    return {"node": batch + 1, "edge": 2 * batch + 2}


def _rows(diagram, wire: str, batch: int) -> int:
    return graph_rows(diagram, batch)[diagram.domain(wire)] if diagram.is_graph else batch


def random_inputs(diagram, batch: int, generator: torch.Generator, dtype=None) -> list[torch.Tensor]:
    import torch
    dtype = torch.float64 if dtype is None else dtype
    complex_group = diagram.group.is_complex
    out = []
    for w in diagram.inputs:
        shape = (_rows(diagram, w, batch), diagram.irreps(w).dim)
        if complex_group:
            out.append(torch.complex(torch.randn(shape, generator=generator, dtype=dtype),
                                     torch.randn(shape, generator=generator, dtype=dtype)))
        else:
            out.append(torch.randn(shape, generator=generator, dtype=dtype))
    return out


def external_weights(plan, batch: int, generator: torch.Generator, dtype=None) -> list[torch.Tensor]:
    import torch
    dtype = torch.float64 if dtype is None else dtype
    d = plan.diagram
    rows = (lambda v: graph_rows(d, batch)[v.domain]) if d.is_graph else (lambda v: batch)
    return [torch.randn(rows(v), v.weight_numel, generator=generator, dtype=dtype)
            for v in plan.vertices if v.external and v.weight_numel]


def graph_arguments(diagram, batch: int, generator: torch.Generator) -> tuple[tuple, dict]:
    """The trailing forward arguments of a graph diagram: (edge_index,) and num_nodes where needed."""
    if not diagram.is_graph:
        return (), {}
    rows = graph_rows(diagram, batch)
    edge_index = random_graph(rows["node"], rows["edge"], generator)
    needs_count = not any(diagram.domain(w) == "node" for w in diagram.inputs) and \
        any(diagram.domain(w) == "node" for w in diagram.wires)
    return (edge_index,), ({"num_nodes": rows["node"]} if needs_count else {})


def _as_tensor(matrix: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    import torch
    return torch.from_numpy(np.ascontiguousarray(matrix)).to(like.dtype)


def equivariance_error(module: torch.nn.Module, diagram, plan, trials: int = 4, batch: int = 3,
                       seed: int = 0) -> float:
    """Worst relative error of f(D x) - D f(x) over random rotations (and, for O3, with inversion)."""
    import torch
    module = module.double() if not diagram.group.is_complex else module.double()
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    worst = 0.0
    for trial in range(trials):
        xs = random_inputs(diagram, batch, gen)
        ws = external_weights(plan, batch, gen)
        graph_args, graph_kwargs = graph_arguments(diagram, batch, gen)
        angles = random_rotation(rng)
        inversion = diagram.group.has_parity and trial % 2 == 1
        Ds = {w: irreps_D(diagram.group_name, diagram.irreps(w), *angles, inversion=inversion)
              for w in diagram.inputs + diagram.outputs}
        rotated = [x @ _as_tensor(Ds[w], x).T for w, x in zip(diagram.inputs, xs)]
        with torch.no_grad():
            out = module(*xs, *ws, *graph_args, **graph_kwargs)
            out_rot = module(*rotated, *ws, *graph_args, **graph_kwargs)
        outs = out if isinstance(out, tuple) else (out,)
        outs_rot = out_rot if isinstance(out_rot, tuple) else (out_rot,)
        for w, y, y_rot in zip(diagram.outputs, outs, outs_rot):
            expected = y @ _as_tensor(Ds[w], y).T
            scale = max(float(expected.abs().max()), 1e-30)
            worst = max(worst, float((y_rot - expected).abs().max()) / scale)
    return worst
