"""science/run.py on a toy study: runs are trained, evaluated and simulated, a rerun skips finished runs,
an interrupted run resumes, and the table and learning curves are assembled from the saved JSON."""
import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("ase")
pytest.importorskip("matplotlib")
Calculator = pytest.importorskip("fusionlang.models").Calculator   # the ASE calculator the MD runs through
sys.path.insert(0, str(Path(__file__).parent))
import train_toy  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TOY = "train_toy:build_pair_model"


def driver():
    spec = importlib.util.spec_from_file_location("science_run", ROOT / "science" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def study_text(tmp_path, seeds=(0, 1)):
    return f"""
[study]
name = "toy"
label = "a toy study"
datasets = ["toy"]
models = ["{TOY}"]
seeds = {list(seeds)}
results = "{tmp_path / 'results'}"
figures = "{tmp_path / 'figures'}"
doc = "{tmp_path / 'science.md'}"
total_minutes = 2.0
write_pair_configs = false
reference_rows = false

[data]
root = "{tmp_path / 'data'}"
cutoff = 3.0

[train]
dtype = "float64"
batch_size = 4
max_epochs = 3
progress = false
threads = 1

[md]
time_ps = 0.05
timestep_fs = 0.5
temperature_K = 300.0
"""


@pytest.fixture
def toy_study(tmp_path, monkeypatch):
    folder = tmp_path / "data" / "toy"
    folder.mkdir(parents=True)
    train_toy.write_dataset(folder)
    (tmp_path / "science.md").write_text("# Science\n\n<!-- results:begin -->\nold\n<!-- results:end -->\n\nafter\n")
    (tmp_path / "study.toml").write_text(study_text(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), str(ROOT / "tests")]))
    return tmp_path


def test_the_study_runs_skips_and_resumes(toy_study):
    run = driver()
    assert run.main(["--study", str(toy_study / "study.toml")]) == 0
    seeds = [toy_study / "results" / "toy" / TOY / f"seed{k}" for k in (0, 1)]
    for folder in seeds:
        metrics = json.loads((folder / "metrics.json").read_text())
        md = json.loads((folder / "md.json").read_text())
        assert metrics["epochs"] == 3 and metrics["test"]["forces_mae_meV_per_A"] > 0
        assert md["requested_ps"] == 0.05 and "stable" in md
        assert (folder / "config.toml").read_text().count("[train]") == 1
    assert json.loads((seeds[0] / "metrics.json").read_text())["seed"] == 0
    assert json.loads((seeds[1] / "metrics.json").read_text())["seed"] == 1
    doc = (toy_study / "science.md").read_text()
    assert "old" not in doc and doc.endswith("<!-- results:end -->\n\nafter\n") and "a toy study" in doc
    row = next(line for line in doc.splitlines() if line.startswith(f"| toy | {TOY}"))
    energy = [json.loads((f / "metrics.json").read_text())["test"]["energy_mae_meV"] for f in seeds]
    assert f"{sum(energy) / 2:.1f} ± " in row
    assert (toy_study / "figures" / "toy-toy-learning-curves.png").stat().st_size > 1000

    # a rerun skips the finished runs; a run without its results resumes from its checkpoint
    stamps = {f: (f / "metrics.json").stat().st_mtime_ns for f in seeds}
    (seeds[1] / "metrics.json").unlink()
    (seeds[1] / "md.json").unlink()
    assert run.main(["--study", str(toy_study / "study.toml")]) == 0
    assert (seeds[0] / "metrics.json").stat().st_mtime_ns == stamps[seeds[0]]
    resumed = json.loads((seeds[1] / "metrics.json").read_text())
    assert resumed["epochs"] == 3 and (seeds[1] / "md.json").exists()


def test_budget_is_split_evenly(toy_study):
    run = driver()
    study = run.load_study(toy_study / "study.toml")
    plan = run.budget(study)
    assert plan["runs"] == 2 and plan["md_runs"] == 2 and plan["per_run_minutes"] == pytest.approx(1.0)
    assert plan["train_minutes"] == pytest.approx(0.6) and plan["md_minutes"] == pytest.approx(0.3)
    study["md"]["seeds"] = [0]                       # MD for one seed: the MD share goes to that run
    assert run.budget(study)["md_minutes"] == pytest.approx(0.6)
    assert run.md_runs(study) == [("toy", TOY, 0)]
    config = run.run_config(study, "toy", TOY, 1)
    assert config["train"]["max_minutes"] == pytest.approx(0.6) and config["train"]["seed"] == 1


def test_the_real_study_plans_within_two_hours():
    run = driver()
    study = run.load_study(ROOT / "science" / "configs" / "study.toml")
    plan = run.budget(study)
    assert plan["total_minutes"] <= 120 and len(study["study"]["seeds"]) == 3
    assert plan["md_runs"] == 8                      # ethanol and aspirin, 4 models, the first seed
    quick = run.budget(run.load_study(ROOT / "science" / "configs" / "quick.toml"))
    assert quick["total_minutes"] <= 10
