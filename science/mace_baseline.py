"""The mace-torch reference for the MACE-like model (issue 14): same data, split, sizes and training budget.

Runs with the python of the mace virtual environment (mace-torch pins e3nn 0.4.4, so it cannot share the
project's environment; `make science-mace` creates it).  It imports only mace's environment (ase, numpy,
torch, mace), never fusionlang:

    .venv-mace/bin/python science/mace_baseline.py --molecule ethanol

Settings come from the study's training config for the MACE-like model on that molecule (the first
science/configs/*.toml whose [model] name is "mace" and whose [data] dataset is the molecule), else from the
defaults below, which mirror fusionlang.train's; command-line options override both.  The study stops
training by wall clock ([train] max_minutes), which mace-torch cannot do: it trains for as many epochs as
our MACE-like model of the same seed completed (its science/results/<molecule>/mace/seed<k>/metrics.json),
else for FALLBACK_EPOCHS when the config sets a time budget, else for [train] max_epochs.  The result, with
every setting used, goes to science/results/mace-torch/<molecule>.json: test energy MAE (meV per molecule
and per atom), force MAE (meV/A per component), parameter count, training time.
"""
from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import tomllib
from importlib import metadata
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

# fusionlang.train's defaults and the MACE-like model's sizes (fusionlang.models.mace.MACE_DEFAULTS), in
# the layout of the study's TOML configs
DEFAULTS = {
    "data": {"root": "data", "train_size": 0, "valid_size": 0, "test_size": 0, "cutoff": 5.0},
    "model": {"channels": 16, "lmax": 3, "hidden_lmax": 1, "num_layers": 2, "num_bessel": 8, "cutoff_p": 6,
              "radial_hidden": [64, 64], "readout_hidden": 16, "correlation": 3},
    "train": {"seed": 0, "dtype": "float64", "batch_size": 8, "eval_batch_size": 32, "max_epochs": 100,
              "optimizer": "amsgrad", "lr": 0.01, "weight_decay": 0.0, "energy_weight": 1.0,
              "forces_weight": 100.0, "plateau_factor": 0.8, "plateau_patience": 5, "ema_decay": 0.99,
              "early_stopping_patience": 0, "grad_clip": 10.0, "threads": 0, "max_minutes": 0.0},
}


FALLBACK_EPOCHS = 20


def epochs_to_train(molecule: str, settings: dict, explicit: int | None) -> tuple[int, str]:
    """The number of epochs and where it came from."""
    if explicit is not None:
        return explicit, "--epochs"
    ours = REPO / "science" / "results" / molecule / "mace" / f"seed{settings['train']['seed']}" / "metrics.json"
    if ours.is_file():
        epochs = json.loads(ours.read_text()).get("epochs")
        if epochs:
            return max(1, int(epochs)), f"epochs of our MACE-like run ({ours.relative_to(REPO)})"
    if settings["train"].get("max_minutes"):
        return FALLBACK_EPOCHS, "FALLBACK_EPOCHS (the config has a time budget and our run has no metrics yet)"
    return int(settings["train"]["max_epochs"]), "[train] max_epochs"


def find_config(molecule: str) -> Path | None:
    """The study's seed-0 config of the MACE-like model on ``molecule``, else the study file itself."""
    configs = REPO / "science" / "configs"
    for path in sorted(configs.glob("*.toml")):
        config = tomllib.loads(path.read_text())
        if config.get("model", {}).get("name") == "mace" and config.get("data", {}).get("dataset") == molecule:
            return path
    study = configs / "study.toml"
    return study if study.is_file() else None


def settings_for(molecule: str, config_path: Path | None, overrides: dict) -> dict:
    settings = {section: dict(values) for section, values in DEFAULTS.items()}
    if config_path is not None:
        config = tomllib.loads(config_path.read_text())
        # a study file (science/configs/study.toml) holds [data]/[train] for every run, [dataset.<name>]
        # the molecule's own, and [model.mace] the sizes; science/run.py gives each run a time budget
        per_dataset = config.get("dataset", {}).get(molecule, {}) if "study" in config else {}
        model_table = config.get("model", {})
        if "study" in config:
            model_table = model_table.get("mace", {})
            settings["train"]["max_minutes"] = "the per-run share of [study] total_minutes"
        for section in settings:
            table = model_table if section == "model" else {**config.get(section, {}), **per_dataset.get(section, {})}
            for key, value in table.items():
                if key in settings[section]:
                    settings[section][key] = value
    for (section, key), value in overrides.items():
        if value is not None:
            settings[section][key] = value
    settings["data"]["dataset"] = molecule
    return settings


def read_split(root: Path, molecule: str, split: str):
    """Our split files (fusionlang.data's layout), read with ase alone."""
    from ase.io import read
    for path in (root / "md" / molecule / f"{split}.xyz.gz", root / molecule / f"{split}.xyz.gz",
                 root / "md" / molecule / f"{split}.xyz", root / molecule / f"{split}.xyz"):
        if path.is_file():
            raw = path.read_bytes()
            text = gzip.decompress(raw).decode() if path.suffix == ".gz" else raw.decode()
            structures = read(io.StringIO(text), index=":", format="extxyz")
            for atoms in structures:
                results = atoms.calc.results if atoms.calc is not None else {}
                atoms.info["energy"] = float(results.get("energy", atoms.info.get("energy")))
                forces = results.get("forces", atoms.arrays.get("forces"))
                atoms.arrays["forces"] = np.asarray(forces, dtype=np.float64)
                atoms.calc = None
            return structures
    raise SystemExit(f"error: no {split} split of {molecule} under {root}; run `make data` first")


def least_squares_e0s(structures) -> dict[int, float]:
    """Per-element energies by least squares (minimum norm), as fusionlang.data.atomic_reference_energies."""
    elements = sorted({int(z) for atoms in structures for z in atoms.numbers})
    counts = np.array([[np.sum(atoms.numbers == z) for z in elements] for atoms in structures], dtype=float)
    energies = np.array([atoms.info["energy"] for atoms in structures])
    solution, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    return {z: float(e) for z, e in zip(elements, solution)}


def write_for_mace(path: Path, structures) -> None:
    """mace reads labels from REF_energy / REF_forces (plain `energy` collides with ase's calculator keys)."""
    from ase.io import write
    copies = []
    for atoms in structures:
        copy = atoms.copy()
        copy.info = {"REF_energy": atoms.info["energy"]}
        copy.arrays = {"numbers": copy.arrays["numbers"], "positions": copy.arrays["positions"],
                       "REF_forces": atoms.arrays["forces"]}
        copies.append(copy)
    write(path, copies, format="extxyz")


def irreps(channels: int, lmax: int) -> str:
    return " + ".join(f"{channels}x{l}{'e' if l % 2 == 0 else 'o'}" for l in range(lmax + 1))


def train_command(settings: dict, work: Path, e0s: dict, name: str) -> list[str]:
    model, train, data = settings["model"], settings["train"], settings["data"]
    if train["optimizer"] not in ("adam", "amsgrad", "adamw"):
        raise SystemExit(f"error: mace-torch has no {train['optimizer']!r} optimizer")
    command = [
        sys.executable, "-m", "mace.cli.run_train",
        f"--name={name}", f"--work_dir={work}", f"--model_dir={work}", f"--log_dir={work / 'logs'}",
        f"--checkpoints_dir={work / 'checkpoints'}", f"--results_dir={work / 'results'}",
        f"--train_file={work / 'train.xyz'}", f"--valid_file={work / 'valid.xyz'}",
        "--energy_key=REF_energy", "--forces_key=REF_forces",
        f"--E0s={ {int(z): float(e) for z, e in e0s.items()} !r}",   # mace reads a python dict literal
        "--model=MACE", f"--r_max={data['cutoff']}",
        f"--num_channels={model['channels']}", f"--max_L={model['hidden_lmax']}",
        f"--max_ell={model['lmax']}", f"--correlation={model['correlation']}",
        f"--num_interactions={model['num_layers']}", f"--num_radial_basis={model['num_bessel']}",
        f"--num_cutoff_basis={model['cutoff_p']}", f"--radial_MLP={list(model['radial_hidden'])}",
        f"--MLP_irreps={model['readout_hidden']}x0e",
        "--loss=weighted", f"--energy_weight={train['energy_weight']}", f"--forces_weight={train['forces_weight']}",
        f"--batch_size={train['batch_size']}", f"--valid_batch_size={train['eval_batch_size']}",
        f"--max_num_epochs={train['max_epochs']}", f"--lr={train['lr']}",
        f"--weight_decay={train['weight_decay']}",
        "--optimizer=adamw" if train["optimizer"] == "adamw" else "--optimizer=adam",
        "--scheduler=ReduceLROnPlateau", f"--lr_factor={train['plateau_factor']}",
        f"--scheduler_patience={train['plateau_patience']}",
        f"--clip_grad={train['grad_clip'] if train['grad_clip'] else 'None'}",
        f"--default_dtype={train['dtype']}", "--device=cpu", f"--seed={train['seed']}",
        "--eval_interval=1", "--error_table=PerAtomMAE", "--restart_latest", "--keep_checkpoints",
    ]
    if train["optimizer"] == "amsgrad":
        command.append("--amsgrad")
    if train["ema_decay"]:
        command += ["--ema", f"--ema_decay={train['ema_decay']}"]
    # no early stop unless the config asks for one (mace's default patience would cut runs short)
    command.append(f"--patience={train['early_stopping_patience'] or train['max_epochs'] + 1}")
    return command


def count_parameters(model) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def evaluate(model_path: Path, structures, dtype: str) -> dict:
    import torch
    from mace.calculators import MACECalculator
    calculator = MACECalculator(model_paths=str(model_path), device="cpu", default_dtype=dtype)
    energy_errors, per_atom_errors, force_errors = [], [], []
    for atoms in structures:
        probe = atoms.copy()
        probe.calc = calculator
        energy_error = probe.get_potential_energy() - atoms.info["energy"]
        energy_errors.append(energy_error)
        per_atom_errors.append(energy_error / len(atoms))
        force_errors.append((probe.get_forces() - atoms.arrays["forces"]).ravel())
    energy_errors, per_atom_errors = np.array(energy_errors), np.array(per_atom_errors)
    force_errors = np.concatenate(force_errors)
    model = torch.load(model_path, map_location="cpu", weights_only=False)
    return {
        "energy_mae_meV": 1000 * float(np.abs(energy_errors).mean()),
        "energy_rmse_meV": 1000 * float(np.sqrt((energy_errors ** 2).mean())),
        "energy_per_atom_mae_meV": 1000 * float(np.abs(per_atom_errors).mean()),
        "forces_mae_meV_per_A": 1000 * float(np.abs(force_errors).mean()),
        "forces_rmse_meV_per_A": 1000 * float(np.sqrt((force_errors ** 2).mean())),
        "parameters": count_parameters(model),
    }


def versions() -> dict:
    found = {"python": platform.python_version()}
    for name in ("mace-torch", "torch", "e3nn", "ase", "numpy"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--molecule", default="ethanol")
    parser.add_argument("--config", type=Path, help="a study config (default: the one for mace on the molecule)")
    parser.add_argument("--data-root", type=Path, help="default: the config's [data] root, else data/")
    parser.add_argument("--out", type=Path, default=REPO / "science" / "results" / "mace-torch")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--train-size", type=int)
    parser.add_argument("--valid-size", type=int)
    parser.add_argument("--test-size", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--threads", type=int, help="torch threads (default: the config's, else torch's)")
    args = parser.parse_args(argv)

    config = args.config or find_config(args.molecule)
    if config is not None and not config.is_file():
        raise SystemExit(f"error: no config file {config}")
    settings = settings_for(args.molecule, config, {("data", "train_size"): args.train_size,
        ("data", "valid_size"): args.valid_size, ("data", "test_size"): args.test_size,
        ("train", "seed"): args.seed, ("train", "threads"): args.threads, ("train", "batch_size"): args.batch_size})
    settings["train"]["max_epochs"], epochs_from = epochs_to_train(args.molecule, settings, args.epochs)
    threads = settings["train"]["threads"]
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)
        import torch
        torch.set_num_threads(threads)
    root = args.data_root or (REPO / settings["data"]["root"])
    splits = {}
    for split in ("train", "valid", "test"):
        structures = read_split(Path(root), args.molecule, split)
        size = settings["data"][f"{split}_size"]
        splits[split] = structures[:size] if size else structures
    seed = settings["train"]["seed"]
    out_path = args.out / f"{args.molecule}.json"
    if out_path.is_file() and json.loads(out_path.read_text()).get("settings") == settings:
        print(f"mace-torch on {args.molecule}: up to date ({out_path})")
        return 0
    name = f"{args.molecule}-seed{seed}"
    work = args.out / "work" / name
    work.mkdir(parents=True, exist_ok=True)
    write_for_mace(work / "train.xyz", splits["train"])
    write_for_mace(work / "valid.xyz", splits["valid"])
    e0s = least_squares_e0s(splits["train"])
    command = train_command(settings, work, e0s, name)
    recorded = work / "command.txt"

    def without_epochs(text):
        # a run cut to fewer epochs may continue from a longer run's checkpoints: the schedule does not
        # depend on the epoch count (a finished run's last checkpoint is then only evaluated)
        return [a for a in text.split() if not a.startswith(("--max_num_epochs=", "--patience="))]
    if recorded.is_file() and without_epochs(recorded.read_text()) != without_epochs(" ".join(command)):
        # other settings: mace's --restart_latest must not pick up that run's checkpoints
        for leftover in ("checkpoints", "logs", "results"):
            shutil.rmtree(work / leftover, ignore_errors=True)
    recorded.write_text(" ".join(command) + "\n")
    print(f"mace-torch on {args.molecule}: {len(splits['train'])} train, {len(splits['valid'])} valid, "
          f"{len(splits['test'])} test; config {config or '(defaults)'}; log in {work / 'logs'}", flush=True)
    started = time.perf_counter()
    finished = subprocess.run(command, cwd=work)
    if finished.returncode != 0:
        print(f"error: mace-torch training failed (exit {finished.returncode}); its log is in {work / 'logs'}",
              file=sys.stderr)
        return 1
    training_seconds = time.perf_counter() - started
    model_path = work / f"{name}.model"
    metrics = evaluate(model_path, splits["test"], settings["train"]["dtype"])
    result = {
        "model": "mace-torch", "molecule": args.molecule, "seed": seed,
        **metrics,
        "training_time_s": round(training_seconds, 1),
        "sizes": {split: len(structures) for split, structures in splits.items()},
        "config": str(config.relative_to(REPO)) if config and config.is_relative_to(REPO) else
        (str(config) if config else None),
        "epochs": settings["train"]["max_epochs"], "epochs_from": epochs_from,
        "settings": settings, "e0s_eV": {str(z): e for z, e in e0s.items()},
        "train_command": command[3:],
        "versions": versions(), "threads": threads or None,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"energy MAE {result['energy_mae_meV']:.2f} meV, force MAE {result['forces_mae_meV_per_A']:.2f} meV/A, "
          f"{result['parameters']} parameters, {training_seconds:.0f} s of training -> {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
