"""Time one training step of each model of fusionlang.models on a batch of molecules.

A step is what training on energies and forces does: the energies, the forces
as minus their gradient (create_graph=True), a loss of both, and its backward
(a double backward through the model).  Molecules: the first configurations
of the saved training split (fusionlang.data.load_split) where it exists,
else ase's ethanol, an approximate aspirin geometry below, or any name
ase.build.molecule knows, with the atoms displaced at random as MD samples
would be.

    python benchmarks/bench_models.py [--molecules ethanol aspirin] [--batch 10] [--dtype float32]

Times are CPU time of the calling thread (meaningful with the default one thread).
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from fusionlang import nn as fnn
from fusionlang.models import MODEL_NAMES, build_model, count_parameters

ASE_NAMES = {"ethanol": "CH3CH2OH"}


def structures(name: str, count: int, seed: int = 0):
    from ase.build import molecule
    try:
        from fusionlang.data.batch import load_split
        return load_split(name, "train")[:count]
    except (ImportError, FileNotFoundError, ValueError):
        pass
    if name == "aspirin":
        from ase.io import read
        import io
        atoms = read(io.StringIO(ASPIRIN_XYZ), format="xyz")
    else:
        atoms = molecule(ASE_NAMES.get(name, name))
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        copy = atoms.copy()
        copy.positions += rng.normal(scale=0.05, size=copy.positions.shape)
        out.append(copy)
    return out


# aspirin (C9H8O4), an approximate geometry in Angstrom (bond lengths checked: C-H 1.08-1.09,
# C=O 1.21, O-H 0.97, aromatic C-C 1.40); ase.build.molecule does not have it
ASPIRIN_XYZ = """21

C   -2.7788   0.4036  -0.0059
C   -2.0717  -0.8002  -0.0027
C   -0.6806  -0.7815   0.0011
C    0.0288   0.4311   0.0009
C   -0.6995   1.6397  -0.0013
C   -2.0850   1.6182  -0.0051
C    1.5109   0.4945   0.0036
O    2.1350   1.5316   0.0030
O    2.1237  -0.7085   0.0069
O    0.0240  -1.9717   0.0065
C   -0.1070  -2.8740  -1.0138
O   -0.8400  -2.7390  -1.9697
C    0.7240  -4.0906  -0.8136
H   -3.8639   0.3823  -0.0093
H   -2.6017  -1.7469  -0.0030
H   -0.1798   2.5907  -0.0013
H   -2.6296   2.5571  -0.0078
H    3.0846  -0.5540   0.0084
H    0.6127  -4.7325  -1.6878
H    1.7760  -3.8129  -0.7097
H    0.4347  -4.6246   0.0962
"""


def time_step(model, graph, repeats: int) -> list[float]:
    """CPU seconds of the calling thread per step: on a shared machine wall time measures the neighbours too."""
    times = []
    for _ in range(repeats + 1):
        start = time.thread_time()
        positions = graph.positions.detach().clone().requires_grad_(True)
        g = fnn.Graph(positions, graph.species, graph.edge_index, graph.unit_shifts, graph.cell, graph.batch,
                      graph.num_graphs)
        energy = model(g)
        forces = -torch.autograd.grad(energy.sum(), positions, create_graph=True)[0]
        loss = energy.pow(2).mean() + forces.pow(2).mean()
        loss.backward()
        times.append(time.thread_time() - start)
    return times[1:]   # the first call builds caches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--molecules", nargs="+", default=["ethanol", "aspirin"])
    parser.add_argument("--models", nargs="+", default=list(MODEL_NAMES))
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cutoff", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.dtype}, batch of {args.batch}, "
          f"cutoff {args.cutoff} A; step = energies + forces (create_graph) + backward; CPU time of the calling "
          f"thread, median of {args.repeats}")
    print("| molecule | atoms/edges per batch | model | parameters | step (ms CPU) |")
    print("|---|---:|---|---:|---:|")
    for name in args.molecules:
        batch = structures(name, args.batch)
        graph = fnn.batch_graphs([fnn.graph_from_structure(a.positions, a.numbers, args.cutoff) for a in batch])
        graph = graph.to(dtype)
        species = sorted({int(z) for a in batch for z in a.numbers})
        neighbours = graph.num_edges / graph.num_nodes
        for model_name in args.models:
            torch.manual_seed(0)
            model = build_model(model_name, species=species, cutoff=args.cutoff,
                                avg_num_neighbors=neighbours).to(dtype)
            times = time_step(model, graph, args.repeats)
            print(f"| {name} | {graph.num_nodes}/{graph.num_edges} | {model_name} | {count_parameters(model)} | "
                  f"{1000 * statistics.median(times):.0f} |")


if __name__ == "__main__":
    main()
