"""Molecular-dynamics datasets: Langevin MD driven by GFN2-xTB (tblite), sampled into a fixed split.

``generate_md("ethanol", "data/md")`` writes ``data/md/ethanol/{train,valid,test}.xyz.gz``
and ``provenance.json``.  The run is resumable: every ``checkpoint_every`` samples
the sampled frames are appended to ``work/samples.xyz`` and the dynamics state
(positions, momenta, step counts, the random generator) is saved to
``work/state.npz``; a rerun continues from there.  Everything random draws from
one generator seeded with ``seed``.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from .molecules import build_molecule, relax
from .splits import split_indices, write_split_files
from .xyz import labelled, read_structures, write_structures

__all__ = ["MDSettings", "MOLECULE_DEFAULTS", "default_settings", "generate_md", "measure_step_cost",
           "package_versions"]


@dataclass(frozen=True)
class MDSettings:
    """Everything that determines a generated MD dataset (saved in provenance.json, checked on resume)."""

    temperature_K: float = 500.0
    timestep_fs: float = 0.5
    friction_per_fs: float = 0.01          # Langevin friction: the thermostat's coupling time is 1/friction = 100 fs
    equilibration_steps: int = 2000        # 1 ps at 0.5 fs, discarded
    stride: int = 20                       # one sample every 20 steps (10 fs)
    train: int = 1000
    valid: int = 100
    test: int = 1000
    seed: int = 0
    method: str = "GFN2-xTB"
    relax_fmax: float = 0.01               # eV/A, the pre-relaxation of the starting geometry

    @property
    def samples(self) -> int:
        return self.train + self.valid + self.test

    @property
    def total_steps(self) -> int:
        return self.equilibration_steps + self.samples * self.stride


# Where a molecule departs from MDSettings' defaults.  Aspirin (21 atoms) costs ~7 times ethanol per GFN2-xTB
# step, so it samples every 10 steps (5 fs) after 0.5 ps of equilibration, to keep all data within ~45 minutes of
# this 2-core machine (docs/science.md, "Data").
MOLECULE_DEFAULTS = {"aspirin": {"stride": 10, "equilibration_steps": 1000}}


def default_settings(molecule: str, **overrides) -> MDSettings:
    """``MDSettings`` for ``molecule``: the defaults, the molecule's own (``MOLECULE_DEFAULTS``), then ``overrides``."""
    return MDSettings(**{**MOLECULE_DEFAULTS.get(molecule, {}), **overrides})


def package_versions(*names) -> dict[str, str]:
    """Installed versions of ``names`` (and python's), for provenance."""
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _calculator(settings: MDSettings):
    try:
        from tblite.ase import TBLite
    except ImportError as exc:
        raise RuntimeError("MD generation needs tblite: pip install 'fusionlang[science]'") from exc
    return TBLite(method=settings.method, verbosity=0)


def _thermalize(atoms, settings: MDSettings, rng) -> None:
    """Maxwell-Boltzmann momenta at the temperature, without centre-of-mass motion or rotation."""
    from ase.md import velocitydistribution
    # thermalize_momenta is MaxwellBoltzmannDistribution's name from ase 3.29 on
    thermalize = getattr(velocitydistribution, "thermalize_momenta",
                         velocitydistribution.MaxwellBoltzmannDistribution)
    thermalize(atoms, temperature_K=settings.temperature_K, rng=rng)
    velocitydistribution.Stationary(atoms)
    velocitydistribution.ZeroRotation(atoms)


def _langevin(atoms, settings: MDSettings, rng):
    """Langevin dynamics of ``atoms`` with a fixed centre of mass (ase's recommended form of fixcm)."""
    from ase import units
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin
    atoms.set_constraint(FixCom())
    return Langevin(atoms, settings.timestep_fs * units.fs, temperature_K=settings.temperature_K,
                    friction=settings.friction_per_fs / units.fs, fixcm=False, rng=rng)


def _save_state(path: Path, atoms, rng, steps_done: int, samples_done: int, wall_seconds: float,
                settings: MDSettings, relax_steps: int) -> None:
    """Write the dynamics state atomically (a crash leaves the previous state intact)."""
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, positions=atoms.positions, momenta=atoms.get_momenta(), numbers=atoms.numbers,
             steps_done=steps_done, samples_done=samples_done, wall_seconds=wall_seconds, relax_steps=relax_steps,
             rng_state=json.dumps(rng.bit_generator.state), settings=json.dumps(asdict(settings)))
    os.replace(tmp, path)


def _progress(total: int, initial: int, desc: str, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=initial, desc=desc, unit="step", mininterval=2.0, smoothing=0.05)


def generate_md(molecule: str, out="data/md", settings: MDSettings = MDSettings(), *, checkpoint_every: int = 50,
                max_new_samples: int | None = None, progress: bool = True, log=print) -> Path | None:
    """Generate (or continue generating) the MD dataset of ``molecule`` under ``out/<molecule>``.

    Returns the dataset directory once every split is written, or None when
    ``max_new_samples`` stopped the run early (a rerun continues it).
    """
    build_molecule(molecule)                       # an unknown name fails here, before anything is written
    directory = Path(out) / molecule
    work = directory / "work"
    provenance_path = directory / "provenance.json"
    if provenance_path.is_file():
        done = json.loads(provenance_path.read_text())
        if done.get("settings") == asdict(settings):
            log(f"{molecule}: up to date ({provenance_path})")
            return directory
        raise ValueError(f"{directory} holds a dataset made with other settings; remove it or choose another --out")
    work.mkdir(parents=True, exist_ok=True)
    state_path, samples_path = work / "state.npz", work / "samples.xyz"

    calculator = _calculator(settings)
    rng = np.random.default_rng(settings.seed)
    if state_path.is_file():
        state = np.load(state_path)
        if json.loads(str(state["settings"])) != asdict(settings):
            raise ValueError(f"{state_path} was started with other settings; remove {work} to start over")
        atoms = build_molecule(molecule)
        if list(atoms.numbers) != list(state["numbers"]):
            raise ValueError(f"{state_path} holds another molecule than {molecule!r}")
        atoms.positions = state["positions"]
        atoms.set_momenta(state["momenta"])
        rng.bit_generator.state = json.loads(str(state["rng_state"]))
        steps_done, samples_done = int(state["steps_done"]), int(state["samples_done"])
        wall_seconds, relax_steps = float(state["wall_seconds"]), int(state["relax_steps"])
        # frames appended after the last saved state (a crash in between) are dropped: the run redoes them
        saved = read_structures(samples_path) if samples_path.is_file() else []
        if len(saved) != samples_done:
            write_structures(samples_path, saved[:samples_done])
        log(f"{molecule}: resuming at step {steps_done} with {samples_done} of {settings.samples} samples")
    else:
        started = time.perf_counter()
        atoms = build_molecule(molecule)
        relax_steps = relax(atoms, calculator, fmax=settings.relax_fmax)
        _thermalize(atoms, settings, rng)
        steps_done = samples_done = 0
        wall_seconds = time.perf_counter() - started
        samples_path.unlink(missing_ok=True)
        _save_state(state_path, atoms, rng, 0, 0, wall_seconds, settings, relax_steps)
        log(f"{molecule}: relaxed the starting geometry with {settings.method} in {relax_steps} BFGS steps")

    atoms.calc = calculator
    dynamics = _langevin(atoms, settings, rng)
    bar = _progress(settings.total_steps, steps_done, molecule, progress)
    session_start, new_samples, pending = time.perf_counter(), 0, []

    def checkpoint():
        nonlocal pending
        if pending:
            write_structures(samples_path, pending, append=True)
            pending = []
        _save_state(state_path, atoms, rng, steps_done, samples_done, wall_seconds + time.perf_counter()
                    - session_start, settings, relax_steps)

    try:
        while steps_done < settings.equilibration_steps:
            chunk = min(500, settings.equilibration_steps - steps_done)
            dynamics.run(chunk)
            steps_done += chunk
            if bar is not None:
                bar.update(chunk)
            checkpoint()
        while samples_done < settings.samples:
            if max_new_samples is not None and new_samples >= max_new_samples:
                checkpoint()
                log(f"{molecule}: stopped after {new_samples} new samples ({samples_done} of {settings.samples})")
                return None
            dynamics.run(settings.stride)
            steps_done += settings.stride
            # the raw forces: FixCom's projected ones differ by a uniform acceleration, harmless to the dynamics
            # but not the gradient of the energy
            sample = labelled(atoms, energy=atoms.get_potential_energy(),
                              forces=atoms.get_forces(apply_constraint=False))
            sample.set_constraint()
            sample.arrays.pop("momenta", None)
            sample.info["temperature_K"] = float(atoms.get_temperature())
            pending.append(sample)
            samples_done += 1
            new_samples += 1
            if bar is not None:
                bar.update(settings.stride)
            if samples_done % checkpoint_every == 0:
                checkpoint()
        checkpoint()
    finally:
        if bar is not None:
            bar.close()

    total_wall = wall_seconds + time.perf_counter() - session_start
    samples = read_structures(samples_path)
    temperatures = np.array([float(sample.info.pop("temperature_K", np.nan)) for sample in samples])
    indices = split_indices(len(samples), {"train": settings.train, "valid": settings.valid,
                                           "test": settings.test}, seed=settings.seed)
    write_split_files(directory, samples, indices)
    provenance = {
        "dataset": molecule,
        "kind": "molecular dynamics",
        "method": settings.method,
        "calculator": "tblite.ase.TBLite (default accuracy 1.0, electronic temperature 300 K)",
        "thermostat": "ase.md.langevin.Langevin with ase.constraints.FixCom",
        "settings": asdict(settings),
        "total_steps": settings.total_steps,
        "simulated_time_ps": settings.total_steps * settings.timestep_fs / 1000.0,
        "starting_geometry": f"fusionlang.data.molecules.build_molecule({molecule!r}), relaxed with {settings.method} (BFGS, fmax {settings.relax_fmax} eV/A, "
                             f"{relax_steps} steps)",
        "sampled_temperature_K": {"mean": float(temperatures.mean()), "std": float(temperatures.std())},
        "energy_eV": {"mean": float(np.mean([s.info["energy"] for s in samples])),
                      "std": float(np.std([s.info["energy"] for s in samples]))},
        "split": {name: len(index) for name, index in indices.items()},
        "split_rule": f"numpy default_rng({settings.seed}).permutation of the samples, cut in order train, valid, "
                      "test; each split's frames kept in trajectory order",
        "units": {"energy": "eV", "forces": "eV/Angstrom", "positions": "Angstrom"},
        "versions": package_versions("tblite", "ase", "numpy"),
        "wall_time_s": round(total_wall, 1),
        "wall_time_per_step_ms": round(1000.0 * total_wall / settings.total_steps, 3),
        "host": {"cpus": os.cpu_count(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                 "platform": sys.platform},
    }
    provenance_path.write_text(json.dumps(provenance, indent=2) + "\n")
    log(f"{molecule}: wrote {', '.join(f'{k} {len(v)}' for k, v in indices.items())} to {directory} "
        f"in {total_wall:.0f} s of generation")
    return directory



def measure_step_cost(molecule: str, steps: int = 200, settings: MDSettings = MDSettings()) -> dict:
    """Seconds per Langevin step of ``molecule`` (wall and this process's CPU), after 20 warm-up steps.

    What sizes the datasets: generation time = total steps x cost per step (CPU time is what the
    machine's load does not change).
    """
    atoms = build_molecule(molecule)
    relax(atoms, _calculator(settings), fmax=settings.relax_fmax)
    rng = np.random.default_rng(settings.seed)
    _thermalize(atoms, settings, rng)
    dynamics = _langevin(atoms, settings, rng)
    dynamics.run(20)
    wall, cpu = time.perf_counter(), time.process_time()
    dynamics.run(steps)
    return {"molecule": molecule, "atoms": len(atoms), "steps": steps,
            "wall_ms_per_step": 1000 * (time.perf_counter() - wall) / steps,
            "cpu_ms_per_step": 1000 * (time.process_time() - cpu) / steps}
