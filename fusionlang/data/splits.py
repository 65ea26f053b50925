"""Fixed, seeded train/valid/test splits and their files."""
from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np

from .xyz import labelled

__all__ = ["split_indices", "write_split_files", "write_gzip_xyz"]


def split_indices(total: int, sizes: dict[str, int], seed: int) -> dict[str, np.ndarray]:
    """Disjoint index sets of the given sizes drawn from ``range(total)`` by a seeded permutation.

    The permutation is cut in the order of ``sizes``; each set is returned sorted.
    """
    if any(size < 0 for size in sizes.values()):
        raise ValueError(f"split sizes are >= 0, got {sizes}")
    needed = sum(sizes.values())
    if needed > total:
        raise ValueError(f"the splits need {needed} structures but there are {total}")
    order = np.random.default_rng(seed).permutation(total)
    result, start = {}, 0
    for name, size in sizes.items():
        result[name] = np.sort(order[start:start + size])
        start += size
    return result


def write_gzip_xyz(path, structures) -> None:
    """Extended XYZ, gzip-compressed with a zero time stamp so that equal data gives equal bytes."""
    from ase.io import write
    text = io.StringIO()
    write(text, [labelled(atoms) for atoms in structures], format="extxyz")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as packed:
        packed.write(text.getvalue().encode())


def write_split_files(directory, structures, indices: dict[str, np.ndarray]) -> dict[str, Path]:
    """``<directory>/<split>.xyz.gz`` for each split of ``indices``; returns the paths."""
    paths = {}
    for name, index in indices.items():
        paths[name] = Path(directory) / f"{name}.xyz.gz"
        write_gzip_xyz(paths[name], [structures[int(i)] for i in index])
    return paths
