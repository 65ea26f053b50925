"""Graphs of atoms: neighbour lists, batching several structures into one graph, per-graph sums.

Edges follow MACE/NequIP: ``edge_index[0]`` is the sender ``i``, ``edge_index[1]``
the receiver ``j``, and the edge vector is
``positions[j] - positions[i] + unit_shifts @ cell`` (the periodic image of the
receiver).  Neighbour lists of single structures come from ase (the right tool
for periodic cells; install it with the ``models`` extra); ``radius_graph`` is a
pure-torch alternative for molecules that runs inside a model.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
import torch

__all__ = ["neighbour_list", "radius_graph", "Graph", "graph_from_structure", "batch_graphs",
           "edge_vectors", "scatter_sum", "per_graph_sum"]


def _numpy(x, dtype=np.float64) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def neighbour_list(positions, cutoff: float, cell=None, pbc=None, self_interaction: bool = False):
    """All pairs closer than ``cutoff`` (periodic images included where ``pbc``), by ``ase.neighborlist``.

    ``positions`` ``[n, 3]``; ``cell`` ``[3, 3]`` (rows are the lattice vectors;
    None for a molecule); ``pbc`` three bools (default: periodic along every
    nonzero cell vector).  Returns ``edge_index`` (int64 ``[2, E]``, sender
    then receiver) and ``unit_shifts`` (``[E, 3]``, whole numbers of cell vectors
    added to the receiver), sorted by sender.  ``self_interaction=True`` keeps
    the zero-length pair of each atom with itself.
    """
    try:
        from ase.neighborlist import primitive_neighbor_list
    except ImportError as exc:  # pragma: no cover - ase is installed by the Makefile
        raise ImportError("neighbour_list needs ase: pip install 'fusionlang[models]'") from exc
    pos = _numpy(positions)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise ValueError(f"positions are [n, 3], got shape {pos.shape}")
    if not cutoff > 0:
        raise ValueError(f"the cutoff must be > 0, got {cutoff}")
    lattice = np.zeros((3, 3)) if cell is None else _numpy(cell).reshape(3, 3)
    if pbc is None:
        pbc = [bool(np.any(v != 0)) for v in lattice]
    pbc = [bool(p) for p in np.broadcast_to(np.asarray(pbc, dtype=bool), (3,))]
    for axis, periodic in enumerate(pbc):
        if periodic and not np.any(lattice[axis] != 0):
            raise ValueError(f"periodic along axis {axis} needs a nonzero cell vector there")
    # ase leaves out each atom's zero-shift pair with itself (but keeps its periodic images)
    sender, receiver, shifts = primitive_neighbor_list("ijS", pbc, lattice, pos, float(cutoff))
    if self_interaction:
        idx = np.arange(len(pos))
        sender, receiver = np.concatenate([sender, idx]), np.concatenate([receiver, idx])
        shifts = np.concatenate([shifts, np.zeros((len(pos), 3), dtype=shifts.dtype)])
    order = np.lexsort((shifts[:, 2], shifts[:, 1], shifts[:, 0], receiver, sender))
    edge_index = torch.from_numpy(np.stack([sender[order], receiver[order]]).astype(np.int64))
    return edge_index, torch.from_numpy(shifts[order].astype(np.float64))


def radius_graph(positions: torch.Tensor, r_max: float, batch: torch.Tensor | None = None,
                 loop: bool = False) -> torch.Tensor:
    """Pairs closer than ``r_max`` within each graph (no periodic images), in torch: ``[2, E]`` (sender, receiver).

    All pairs are compared (memory ``n^2``): meant for molecules of up to a few
    thousand atoms.  ``batch`` ``[n]`` assigns nodes to graphs; ``loop`` keeps
    ``i -> i``.
    """
    n = positions.shape[0]
    distances = torch.cdist(positions.detach(), positions.detach())
    close = distances < r_max
    if batch is not None:
        close = close & (batch[:, None] == batch[None, :])
    if not loop:
        close = close & ~torch.eye(n, dtype=torch.bool, device=positions.device)
    sender, receiver = close.nonzero(as_tuple=True)
    return torch.stack([sender, receiver])


@dataclass
class Graph:
    """One or several structures as one graph (fields are tensors except ``num_graphs``).

    positions ``[N, 3]``; species ``[N]`` (int64 species indices, not atomic
    numbers unless you choose so); edge_index ``[2, E]``; unit_shifts ``[E, 3]``;
    cell ``[G, 3, 3]`` (zeros for molecules); batch ``[N]`` (the graph of each
    node); num_graphs ``G``.
    """

    positions: torch.Tensor
    species: torch.Tensor
    edge_index: torch.Tensor
    unit_shifts: torch.Tensor
    cell: torch.Tensor
    batch: torch.Tensor
    num_graphs: int

    @property
    def num_nodes(self) -> int:
        return self.positions.shape[0]

    @property
    def num_edges(self) -> int:
        return self.edge_index.shape[1]

    def edge_vectors(self) -> torch.Tensor:
        """``[E, 3]`` receiver minus sender, with periodic shifts; differentiable in positions and cell."""
        return edge_vectors(self.positions, self.edge_index, self.unit_shifts, self.cell, self.batch)

    def to(self, *args, **kwargs) -> "Graph":
        """``Tensor.to`` on every field; integer fields keep their dtype."""
        moved = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                if value.is_floating_point():
                    value = value.to(*args, **kwargs)
                else:
                    device = next((a for a in args if isinstance(a, (str, torch.device))), kwargs.get("device"))
                    value = value.to(device) if device is not None else value
            moved[f.name] = value
        return replace(self, **moved)


def graph_from_structure(positions, species, cutoff: float, cell=None, pbc=None) -> Graph:
    """One structure (a molecule, or a periodic cell with ``cell``/``pbc``) as a ``Graph``.

    ``positions`` ``[n, 3]``, ``species`` ``[n]`` ints.  Positions keep their
    tensor (and its dtype) when given one; otherwise the default dtype.
    """
    pos = positions if isinstance(positions, torch.Tensor) else torch.as_tensor(
        np.asarray(positions), dtype=torch.get_default_dtype())
    edge_index, unit_shifts = neighbour_list(pos, cutoff, cell, pbc)
    lattice = torch.zeros(1, 3, 3, dtype=pos.dtype) if cell is None else torch.as_tensor(
        _numpy(cell).reshape(1, 3, 3), dtype=pos.dtype)
    species = torch.as_tensor(_numpy(species, np.int64))
    if species.shape != (pos.shape[0],):
        raise ValueError(f"one species per atom: {pos.shape[0]} positions but species of shape {tuple(species.shape)}")
    return Graph(pos, species, edge_index, unit_shifts.to(pos.dtype), lattice,
                 torch.zeros(pos.shape[0], dtype=torch.int64), 1)


def batch_graphs(graphs) -> Graph:
    """Several graphs as one: nodes concatenated, edge indices offset, ``batch`` telling them apart."""
    graphs = list(graphs)
    if not graphs:
        raise ValueError("batch_graphs needs at least one graph")
    offsets = np.cumsum([0] + [g.num_nodes for g in graphs[:-1]])
    graph_offsets = np.cumsum([0] + [g.num_graphs for g in graphs[:-1]])
    return Graph(
        positions=torch.cat([g.positions for g in graphs]),
        species=torch.cat([g.species for g in graphs]),
        edge_index=torch.cat([g.edge_index + int(o) for g, o in zip(graphs, offsets)], dim=1),
        unit_shifts=torch.cat([g.unit_shifts for g in graphs]),
        cell=torch.cat([g.cell for g in graphs]),
        batch=torch.cat([g.batch + int(o) for g, o in zip(graphs, graph_offsets)]),
        num_graphs=int(sum(g.num_graphs for g in graphs)),
    )


def edge_vectors(positions: torch.Tensor, edge_index: torch.Tensor, unit_shifts: torch.Tensor | None = None,
                 cell: torch.Tensor | None = None, batch: torch.Tensor | None = None) -> torch.Tensor:
    """``positions[receiver] - positions[sender] + unit_shifts @ cell`` (cell ``[3, 3]`` or per graph ``[G, 3, 3]``)."""
    sender, receiver = edge_index[0], edge_index[1]
    vectors = positions.index_select(0, receiver) - positions.index_select(0, sender)
    if unit_shifts is not None and cell is not None:
        if cell.dim() == 2:
            shifts = unit_shifts.to(positions.dtype) @ cell.to(positions.dtype)
        else:
            graph_of_edge = batch.index_select(0, sender) if batch is not None else torch.zeros_like(sender)
            per_edge_cell = cell.to(positions.dtype).index_select(0, graph_of_edge)      # [E, 3, 3]
            shifts = torch.einsum("ei,eij->ej", unit_shifts.to(positions.dtype), per_edge_cell)
        vectors = vectors + shifts
    return vectors


def scatter_sum(src: torch.Tensor, index: torch.Tensor, dim_size: int) -> torch.Tensor:
    """``out[k] = sum of src[e] over e with index[e] == k``, along the first axis; ``[dim_size, ...]``."""
    out = src.new_zeros((dim_size,) + tuple(src.shape[1:]))
    return out.index_add(0, index, src)


def per_graph_sum(node_values: torch.Tensor, batch: torch.Tensor, num_graphs: int) -> torch.Tensor:
    """The sum over each graph's nodes (energies from atomic energies): ``[num_graphs, ...]``."""
    return scatter_sum(node_values, batch, num_graphs)
