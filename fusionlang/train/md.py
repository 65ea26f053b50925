"""Molecular dynamics with a trained model (any ASE calculator): did it stay a molecule, and how well
does it conserve energy?

Stability: the bonds are the pairs closer than 1.2 times the sum of their covalent radii in the
starting structure; the run "blew up" when a bond stretches past `max_bond_stretch` times its starting
length, two atoms come closer than `min_distance` Angstrom, or an energy or force is not finite.
Energy drift: the slope of a straight line fitted to the total energy against time, per atom
(meV/atom/ps); meaningful for NVE (for Langevin the thermostat exchanges energy by design).
"""
from __future__ import annotations

import math
import time

import numpy as np


def bonded_pairs(atoms, factor: float = 1.2) -> np.ndarray:
    """`[B, 2]` index pairs closer than `factor` times the sum of their covalent radii."""
    from ase.data import covalent_radii

    positions = atoms.get_positions()
    radii = covalent_radii[atoms.numbers]
    distances = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    limit = factor * (radii[:, None] + radii[None])
    first, second = np.nonzero(np.triu(distances < limit, k=1))
    return np.stack([first, second], axis=1)


def run_md(atoms, calculator, time_ps: float = 10.0, timestep_fs: float = 0.5, temperature_K: float = 500.0,
           thermostat: str = "nve", friction_per_fs: float = 0.01, seed: int = 0, check_every: int = 20,
           max_bond_stretch: float = 1.5, min_distance: float = 0.6, max_seconds: float | None = None,
           progress: bool = False) -> dict:
    """Runs MD from `atoms` (copied) with velocities drawn at `temperature_K`; returns the report as a dict.

    `thermostat` is "nve" (velocity Verlet) or "langevin".  The run stops early when it blows up or when
    `max_seconds` of wall-clock time are spent (then `simulated_ps` < `time_ps`)."""
    from ase import units
    from ase.md import velocitydistribution
    from ase.md.velocitydistribution import Stationary, ZeroRotation

    # ase 3.29 renamed MaxwellBoltzmannDistribution; older versions have only the old name
    thermalize = getattr(velocitydistribution, "thermalize_momenta", None) or \
        velocitydistribution.MaxwellBoltzmannDistribution

    if thermostat not in ("nve", "langevin"):
        raise ValueError(f"thermostat is 'nve' or 'langevin', got {thermostat!r}")
    atoms = atoms.copy()
    atoms.calc = calculator
    rng = np.random.default_rng(seed)
    thermalize(atoms, temperature_K=temperature_K, rng=rng)
    Stationary(atoms)
    ZeroRotation(atoms)
    if thermostat == "nve":
        from ase.md.verlet import VelocityVerlet

        dynamics = VelocityVerlet(atoms, timestep=timestep_fs * units.fs)
    else:
        from ase.md.langevin import Langevin

        dynamics = Langevin(atoms, timestep=timestep_fs * units.fs, temperature_K=temperature_K,
                            friction=friction_per_fs / units.fs, fixcm=False, rng=rng)
    pairs = bonded_pairs(atoms)
    start_lengths = np.linalg.norm(atoms.positions[pairs[:, 0]] - atoms.positions[pairs[:, 1]], axis=1)
    total_steps = int(round(time_ps * 1000 / timestep_fs))
    times, energies, temperatures = [], [], []
    worst_stretch, closest = 1.0, math.inf
    failure = None
    started = time.perf_counter()
    steps_done = 0
    bar = None
    if progress:
        try:
            from tqdm import tqdm

            bar = tqdm(total=total_steps, desc="MD", leave=False, unit="step")
        except ImportError:
            bar = None
    while True:
        positions = atoms.get_positions()
        potential = atoms.get_potential_energy()
        kinetic = atoms.get_kinetic_energy()
        forces = atoms.get_forces()
        times.append(steps_done * timestep_fs / 1000)
        energies.append(potential + kinetic)
        temperatures.append(atoms.get_temperature())
        if len(pairs):
            lengths = np.linalg.norm(positions[pairs[:, 0]] - positions[pairs[:, 1]], axis=1)
            worst_stretch = max(worst_stretch, float(np.max(lengths / start_lengths)))
        distances = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
        closest = min(closest, float(np.min(distances[np.triu_indices(len(atoms), k=1)])))
        if not (np.isfinite(potential) and np.isfinite(kinetic) and np.all(np.isfinite(forces))):
            failure = "energy or forces not finite"
        elif worst_stretch > max_bond_stretch:
            failure = f"a bond stretched to {worst_stretch:.2f} times its length"
        elif closest < min_distance:
            failure = f"two atoms came {closest:.2f} A close"
        out_of_time = max_seconds is not None and time.perf_counter() - started > max_seconds
        if failure or steps_done >= total_steps or out_of_time:
            break
        chunk = min(check_every, total_steps - steps_done)
        if max_seconds is not None:
            # no chunk runs far past the wall-clock limit: one step to time a step, then as many as fit
            per_step = (time.perf_counter() - started) / steps_done if steps_done else math.inf
            chunk = max(1, min(chunk, int((max_seconds - (time.perf_counter() - started)) / per_step)))
        dynamics.run(chunk)
        steps_done += chunk
        if bar is not None:
            bar.update(chunk)
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - started
    simulated = times[-1] if times else 0.0
    drift = None
    if thermostat == "nve" and len(times) >= 3 and failure is None:
        slope = np.polyfit(np.asarray(times), np.asarray(energies), 1)[0]       # eV/ps
        drift = float(1000 * slope / len(atoms))
    finite = [e for e in energies if np.isfinite(e)]
    return {
        "thermostat": thermostat, "temperature_K": temperature_K, "timestep_fs": timestep_fs,
        "requested_ps": time_ps, "simulated_ps": simulated, "completed": failure is None and steps_done >= total_steps,
        "stable": failure is None,
        "failure": failure, "max_bond_stretch": worst_stretch, "min_distance_A": closest,
        "energy_drift_meV_per_atom_per_ps": drift,
        "energy_fluctuation_meV_per_atom": float(1000 * (max(finite) - min(finite)) / len(atoms)) if finite else None,
        "mean_temperature_K": float(np.mean(temperatures)) if temperatures else None,
        "atoms": len(atoms), "seconds": seconds, "seed": seed,
    }
