"""The science driver (`make science`, `make science-quick`; docs/science.md).

    python science/run.py [--study science/configs/study.toml] [--table-only]

For every (dataset, model, seed) of the study: train with `python -m fusionlang.train` (resumable: a run
with metrics.json and model.pt is skipped, an interrupted one continues from its checkpoint), evaluate on
the test split (the training command does), run MD with the trained model through the ASE Calculator
(md.json), then assemble docs/science.md's results table and the learning-curve plots from the saved JSON.
Results live in <results>/<dataset>/<model>/seed<k>/ (JSON and config committed, checkpoints ignored).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
MD_KEYS = ("time_ps", "timestep_fs", "temperature_K", "thermostat", "dtype", "seeds")
DATASET_KEYS = ("models", "md", "data", "train")


class StudyError(Exception):
    pass


# --- the study file ----------------------------------------------------------------------------------

def load_study(path: Path) -> dict:
    try:
        study = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise StudyError(f"{path}: {exc}") from None
    head = study.get("study", {})
    for key in ("datasets", "models", "seeds"):
        if not head.get(key):
            raise StudyError(f"{path}: [study] needs a non-empty `{key}` list")
    for name, table in study.get("dataset", {}).items():
        unknown = set(table) - set(DATASET_KEYS)
        if unknown:
            raise StudyError(f"{path}: [dataset.{name}] has unknown keys {sorted(unknown)} (known: {DATASET_KEYS})")
    unknown = set(study.get("md", {})) - set(MD_KEYS)
    if unknown:
        raise StudyError(f"{path}: [md] has unknown keys {sorted(unknown)} (known: {MD_KEYS})")
    return study


def planned_runs(study: dict) -> list[tuple[str, str, int]]:
    head = study["study"]
    runs = []
    for dataset in head["datasets"]:
        models = study.get("dataset", {}).get(dataset, {}).get("models", head["models"])
        runs += [(dataset, model, seed) for model in models for seed in head["seeds"]]
    return runs


def md_runs(study: dict) -> list[tuple[str, str, int]]:
    """The runs whose trained model also runs MD: datasets with `md` (default true), `[md] seeds`
    (default: every seed)."""
    seeds = study.get("md", {}).get("seeds", study["study"]["seeds"])
    return [(d, m, s) for d, m, s in planned_runs(study)
            if study.get("dataset", {}).get(d, {}).get("md", True) and s in seeds]


def budget(study: dict) -> dict:
    """The wall-clock plan: `train_share` of the total split evenly over the runs' training, `md_share`
    over the MD runs (each capped at its part), the rest left for evaluations and start-up."""
    head = study["study"]
    runs, simulated = len(planned_runs(study)), len(md_runs(study))
    total = head.get("total_minutes", 120.0)
    return {"runs": runs, "md_runs": simulated, "total_minutes": total, "per_run_minutes": total / runs,
            "train_minutes": total * head.get("train_share", 0.6) / runs,
            "md_minutes": total * head.get("md_share", 0.3) / simulated if simulated else 0.0}


def run_dir(study: dict, dataset: str, model: str, seed: int) -> Path:
    return REPO / study["study"].get("results", "science/results") / dataset / model / f"seed{seed}"


def run_config(study: dict, dataset: str, model: str, seed: int) -> dict:
    """The [data]/[model]/[train]/[output] tables of one run, as fusionlang.train reads them."""
    override = study.get("dataset", {}).get(dataset, {})
    data = {**study.get("data", {}), "dataset": dataset, **override.get("data", {})}
    if not os.path.isabs(data.get("root", "data")):
        data["root"] = str(REPO / data.get("root", "data"))
    train = {**study.get("train", {}), **override.get("train", {}), "seed": seed}
    train.setdefault("max_minutes", round(budget(study)["train_minutes"], 3))
    return {"data": data, "model": {"name": model, **study.get("model", {}).get(model, {})}, "train": train,
            "output": {"dir": str(run_dir(study, dataset, model, seed))}}


def to_toml(tables: dict) -> str:
    """A TOML file of tables of scalars and lists (all a training config holds)."""
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        raise StudyError(f"cannot write {v!r} to a TOML config")

    lines = []
    for name, table in tables.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {value(v)}" for key, v in table.items()]
        lines.append("")
    return "\n".join(lines)


def _portable(config: dict) -> dict:
    """The config with paths relative to the repository (for the committed files)."""
    out = {name: dict(table) for name, table in config.items()}
    for section, key in (("data", "root"), ("output", "dir")):
        path = Path(out[section][key])
        if path.is_absolute() and REPO in path.parents:
            out[section][key] = str(path.relative_to(REPO))
    return out


# --- one run ----------------------------------------------------------------------------------------

def train_run(config_path: Path, out: Path) -> None:
    if (out / "metrics.json").exists() and (out / "model.pt").exists():
        return
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    command = [sys.executable, "-m", "fusionlang.train", "--config", str(config_path), "--resume"]
    result = subprocess.run(command, cwd=REPO, env=env)
    if result.returncode != 0:
        raise StudyError(f"training failed (exit code {result.returncode}): {' '.join(command)}")


def md_run(study: dict, config: dict, out: Path, seed: int) -> None:
    import torch

    from fusionlang.data import load_split
    from fusionlang.models import Calculator
    from fusionlang.train.md import run_md
    from fusionlang.train.trainer import build

    if (out / "md.json").exists():
        return
    settings = {"time_ps": 10.0, "timestep_fs": 0.5, "temperature_K": 500.0, "thermostat": "nve",
                "dtype": "float64", **study.get("md", {})}
    settings.pop("seeds", None)
    dtype = torch.float64 if settings.pop("dtype") == "float64" else torch.float32
    if config["train"].get("threads"):
        torch.set_num_threads(config["train"]["threads"])
    final = torch.load(out / "model.pt", map_location="cpu", weights_only=False)
    model = build(final["model_name"], **final["model_config"]).to(dtype)
    model.load_state_dict(final["model_state"])
    start = load_split(config["data"]["dataset"], "test", root=config["data"]["root"])[0]
    seconds = 60 * budget(study)["md_minutes"]
    print(f"MD: {settings['time_ps']} ps {settings['thermostat']} at {settings['temperature_K']} K "
          f"(at most {seconds:.0f} s)", flush=True)
    report = run_md(start, Calculator(model, dtype=dtype), seed=seed, max_seconds=seconds,
                    progress=config["train"].get("progress", False), **settings)
    (out / "md.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


def _shown(path: Path) -> str:
    return str(path.relative_to(REPO)) if REPO in path.parents else str(path)


def run_study(study_path: Path, study: dict) -> None:
    plan = budget(study)
    print(f"{plan['runs']} runs in {plan['total_minutes']:.0f} min: {plan['train_minutes']:.2f} min of training "
          f"each, {plan['md_runs']} MD runs of at most {plan['md_minutes']:.2f} min", flush=True)
    pairs_written = set()
    md = set(md_runs(study))
    for number, (dataset, model, seed) in enumerate(planned_runs(study), start=1):
        config = run_config(study, dataset, model, seed)
        out = run_dir(study, dataset, model, seed)
        out.mkdir(parents=True, exist_ok=True)
        config_path = out / "config.toml"
        config_path.write_text(f"# written by science/run.py from {_shown(study_path)}\n"
                               + to_toml(_portable(config)), encoding="utf-8")
        if (dataset, model) not in pairs_written and study["study"].get("write_pair_configs", True):
            # the seed-0 config of each pair, for `python -m fusionlang.train --config science/configs/...`
            pair = REPO / "science" / "configs" / f"{dataset}-{model}.toml"
            pair.write_text(f"# written by science/run.py from {_shown(study_path)}: edit that file\n"
                            + to_toml(_portable(run_config(study, dataset, model, study["study"]["seeds"][0]))),
                            encoding="utf-8")
            pairs_written.add((dataset, model))
        print(f"[{number}/{plan['runs']}] {dataset} {model} seed {seed}", flush=True)
        started = time.perf_counter()
        train_run(config_path, out)
        if (dataset, model, seed) in md:
            md_run(study, config, out, seed)
        print(f"[{number}/{plan['runs']}] done in {time.perf_counter() - started:.0f} s", flush=True)


# --- the table ----------------------------------------------------------------------------------------

def _mean_std(values):
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return None, None
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else None
    return mean, std


def _cell(values, digits=1):
    mean, std = _mean_std(values)
    if mean is None:
        return "–"
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")


def collect(study: dict) -> dict:
    """{(dataset, model): [per-seed dicts with 'metrics' and maybe 'md']} from the saved JSON."""
    found = {}
    for dataset, model, seed in planned_runs(study):
        out = run_dir(study, dataset, model, seed)
        entry = {"seed": seed}
        if (out / "metrics.json").exists():
            entry["metrics"] = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
        if (out / "md.json").exists():
            entry["md"] = json.loads((out / "md.json").read_text(encoding="utf-8"))
        found.setdefault((dataset, model), []).append(entry)
    return found


def reference_row(study: dict, dataset: str) -> str | None:
    """The mace-torch row (science/results/mace-torch/<dataset>.json, written by science/mace_baseline.py)."""
    path = REPO / "science" / "results" / "mace-torch" / f"{dataset}.json"
    if not path.exists():
        return None
    result = json.loads(path.read_text(encoding="utf-8"))
    test = result.get("test", result)

    def pick(*names):
        for name in names:
            for table in (test, result):
                if isinstance(table, dict) and table.get(name) is not None:
                    return table[name]
        return None

    energy = pick("energy_mae_meV")
    forces = pick("forces_mae_meV_per_A")
    seconds = pick("train_seconds")
    parameters = pick("parameters")
    return (f"| {dataset} | mace-torch (reference) | {parameters if parameters is not None else '–'} | "
            f"{_cell([energy])} | {_cell([forces])} | {_cell([seconds / 60 if seconds else None])} | – | – | – | – |")


def learning_curves(study: dict, found: dict) -> list[str]:
    """One PNG per dataset: validation errors against training time, a line per (model, seed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = REPO / study["study"].get("figures", "docs/science")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    prefix = study["study"].get("name", "study")
    for dataset in study["study"]["datasets"]:
        runs = {model: entries for (d, model), entries in found.items() if d == dataset}
        if not any("metrics" in e for entries in runs.values() for e in entries):
            continue
        keys = [("valid_energy_mae_meV", "validation energy MAE (meV)")]
        if any("valid_forces_mae_meV_per_A" in (e["metrics"]["history"] or [{}])[0]
               for entries in runs.values() for e in entries if "metrics" in e and e["metrics"]["history"]):
            keys.insert(0, ("valid_forces_mae_meV_per_A", "validation force MAE (meV/Å)"))
        figure, axes = plt.subplots(1, len(keys), figsize=(5.5 * len(keys), 4), squeeze=False)
        colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for axis, (key, label) in zip(axes[0], keys):
            for k, (model, entries) in enumerate(sorted(runs.items())):
                for n, entry in enumerate(e for e in entries if "metrics" in e):
                    metrics = entry["metrics"]
                    points = [(h["seconds"], h[key]) for h in metrics["history"] if key in h]
                    final = (metrics.get("valid") or {}).get(key.removeprefix("valid_"))
                    if final is not None and (not points or points[-1][0] < metrics["train_seconds"]):
                        points.append((metrics["train_seconds"], final))   # the final weights, at the end
                    xs = [seconds / 60 for seconds, _ in points]
                    ys = [value for _, value in points]
                    axis.plot(xs, ys, color=colours[k % len(colours)], alpha=0.8, marker=".",
                              label=model if n == 0 else None)
            axis.set_xlabel("training time (min)")
            axis.set_ylabel(label)
            axis.set_yscale("log")
            axis.grid(alpha=0.3)
            axis.legend()
        figure.suptitle(f"{dataset}: validation errors during training ({prefix} run)")
        figure.tight_layout()
        path = folder / f"{prefix}-{dataset}-learning-curves.png"
        figure.savefig(path, dpi=80)
        plt.close(figure)
        written.append(path)
    return written


def table(study: dict) -> str:
    found = collect(study)
    plan = budget(study)
    head = study["study"]
    lines = [f"Results of {head.get('label', head.get('name', 'the study'))}: {plan['runs']} runs of "
             f"{plan['train_minutes']:.1f} min of training, {plan['md_runs']} MD runs capped at "
             f"{plan['md_minutes']:.1f} min, from `{head.get('results', 'science/results')}`. "
             "Errors on the test split, mean ± standard deviation (n-1) over the seeds that finished; "
             "MD: stable runs / runs, the simulated time reached and the NVE energy drift.",
             "",
             "| dataset | model | parameters | energy MAE (meV) | force MAE (meV/Å) | training (min) | epochs "
             "| MD stable | MD reached (ps) | drift (meV/atom/ps) |",
             "|---|---|---:|---:|---:|---:|---:|---|---:|---:|"]
    for dataset in head["datasets"]:
        for (d, model), entries in found.items():
            if d != dataset:
                continue
            done = [e for e in entries if "metrics" in e]
            tests = [e["metrics"].get("test") or {} for e in done]
            parameters = sorted({e["metrics"]["parameters"] for e in done})
            md = [e["md"] for e in entries if "md" in e]
            seeds = f" ({len(done)}/{len(entries)} seeds)" if len(done) != len(entries) else ""
            stable = f"{sum(m['stable'] for m in md)}/{len(md)}" if md else "–"
            lines.append(
                f"| {dataset} | {model}{seeds} | {', '.join(map(str, parameters)) or '–'} "
                f"| {_cell([t.get('energy_mae_meV') for t in tests])} "
                f"| {_cell([t.get('forces_mae_meV_per_A') for t in tests])} "
                f"| {_cell([e['metrics']['train_seconds'] / 60 for e in done])} "
                f"| {_cell([e['metrics']['epochs'] for e in done], 0)} | {stable} "
                f"| {_cell([m['simulated_ps'] for m in md], 2)} "
                f"| {_cell([m['energy_drift_meV_per_atom_per_ps'] for m in md], 2)} |")
        reference = reference_row(study, dataset) if head.get("reference_rows", True) else None
        if reference:
            lines.append(reference)
    figures = learning_curves(study, found)
    if figures:
        lines.append("")
        doc_dir = (REPO / head.get("doc", "docs/science.md")).parent
        for path in figures:
            lines.append(f"![{path.stem}]({os.path.relpath(path, doc_dir)})")
    return "\n".join(lines)


def write_table(study: dict) -> Path:
    doc = REPO / study["study"].get("doc", "docs/science.md")
    text = doc.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise StudyError(f"{doc} has no {BEGIN} ... {END} markers")
    before, rest = text.split(BEGIN, 1)
    _, after = rest.split(END, 1)
    doc.write_text(before + BEGIN + "\n" + table(study) + "\n" + END + after, encoding="utf-8")
    return doc


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", default=str(REPO / "science" / "configs" / "study.toml"))
    parser.add_argument("--table-only", action="store_true", help="only assemble the table from saved results")
    args = parser.parse_args(argv)
    study_path = Path(args.study).resolve()
    try:
        study = load_study(study_path)
        if not args.table_only:
            run_study(study_path, study)
        doc = write_table(study)
    except StudyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"table written to {_shown(doc)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
