"""The training command on a tiny model and a few synthetic molecules: the loss falls, metrics.json is
written, and a run interrupted (between epochs, or inside an epoch) and resumed continues exactly."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("ase")
sys.path.insert(0, str(Path(__file__).parent))
import train_toy  # noqa: E402

from fusionlang.train import load_config, train  # noqa: E402
from fusionlang.train.state import LearningRate, WeightAverage, epoch_batches  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return train_toy.write_dataset(tmp_path_factory.mktemp("toy_data"))


def run(dataset, out, callbacks=(), resume=False, **settings):
    path = Path(out).with_suffix(".toml")
    path.write_text(train_toy.config_text(dataset, out, **settings))
    return train(load_config(path), resume=resume, callbacks=callbacks, log=lambda text: None)


def checkpoint(out):
    return torch.load(Path(out) / "checkpoint.pt", weights_only=False)


def assert_same_state(a, b):
    for key in ("train_model_state", "model_state"):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), (key, name)
    for group_a, group_b in zip(a["optimizer_state"]["state"].values(), b["optimizer_state"]["state"].values()):
        for name in group_a:
            assert torch.equal(torch.as_tensor(group_a[name]), torch.as_tensor(group_b[name])), name
    assert a["schedule_state"] == b["schedule_state"]
    assert (a["epoch"], a["global_step"], a["step_in_epoch"]) == (b["epoch"], b["global_step"], b["step_in_epoch"])
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in a["history"]]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in b["history"]]


def test_loss_falls_and_metrics_are_written(dataset, tmp_path):
    results = run(dataset, tmp_path / "out", max_epochs=6, lr=0.03)
    losses = [record["train_loss"] for record in results["history"]]
    assert len(losses) == 6 and all(math.isfinite(x) for x in losses)
    assert losses[-1] < 0.9 * losses[0]
    written = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert written["stopped"] == "max_epochs" and written["epochs"] == 6 and written["steps"] == 6 * 3
    for split in ("valid", "test"):
        assert written[split]["structures"] == 4
        assert written[split]["energy_mae_meV"] > 0 and written[split]["forces_mae_meV_per_A"] > 0
    assert written["parameters"] == sum(p.numel() for p in train_toy.build_pair_model([1, 6, 8], 3.0).parameters())
    # the final weights file has what the ASE Calculator rebuilds the model from
    final = torch.load(tmp_path / "out" / "model.pt", weights_only=False)
    model = train_toy.build_pair_model(**final["model_config"]).double()
    model.load_state_dict(final["model_state"])
    assert final["model_name"] == "train_toy:build_pair_model"


def test_resume_between_epochs_continues_exactly(dataset, tmp_path):
    # lr 0.3 makes the validation loss rise in epoch 4, so the plateau schedule halves the rate there:
    # the resumed run must restore that (as well as the weights, the optimizer and the EMA).
    settings = dict(max_epochs=5, lr=0.3, plateau_patience=0, plateau_factor=0.5)
    straight = run(dataset, tmp_path / "straight", **settings)
    assert [record["lr"] for record in straight["history"]][2:4] == [0.3, 0.15]

    def interrupt(trainer, record):
        if record["epoch"] == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(dataset, tmp_path / "split", callbacks=[interrupt], **settings)
    assert checkpoint(tmp_path / "split")["epoch"] == 4
    assert not (tmp_path / "split" / "metrics.json").exists()
    run(dataset, tmp_path / "split", resume=True, **settings)
    assert_same_state(checkpoint(tmp_path / "straight"), checkpoint(tmp_path / "split"))


def test_cosine_schedule_with_warmup_resumes_exactly(dataset, tmp_path):
    settings = dict(max_epochs=3, scheduler="cosine", warmup_epochs=1.0)
    run(dataset, tmp_path / "straight", **settings)
    run(dataset, tmp_path / "split", max_steps=5, **settings)
    run(dataset, tmp_path / "split", resume=True, **settings)
    assert_same_state(checkpoint(tmp_path / "straight"), checkpoint(tmp_path / "split"))


def test_resume_inside_an_epoch_continues_exactly(dataset, tmp_path):
    run(dataset, tmp_path / "straight", max_epochs=3, plateau_patience=0)
    stopped = run(dataset, tmp_path / "split", max_epochs=3, plateau_patience=0, max_steps=4)
    assert stopped["stopped"] == "max_steps" and stopped["steps"] == 4
    assert checkpoint(tmp_path / "split")["step_in_epoch"] == 1     # 3 steps per epoch
    run(dataset, tmp_path / "split", resume=True, max_epochs=3, plateau_patience=0)
    assert_same_state(checkpoint(tmp_path / "straight"), checkpoint(tmp_path / "split"))


def test_an_existing_run_needs_resume(dataset, tmp_path):
    run(dataset, tmp_path / "out", max_epochs=1)
    config = tmp_path / "out.toml"
    command = [sys.executable, "-m", "fusionlang.train", "--config", str(config)]
    env = {"PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 2 and "--resume" in result.stderr and "Traceback" not in result.stderr
    result = subprocess.run(command + ["--resume"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "done (max_epochs, 1 epochs" in result.stdout


def test_float32_training(dataset, tmp_path):
    results = run(dataset, tmp_path / "out", max_epochs=1, dtype="float32")
    state = torch.load(tmp_path / "out" / "model.pt", weights_only=False)["model_state"]
    assert state["mlp.0.weight"].dtype == torch.float32
    assert math.isfinite(results["test"]["forces_mae_meV_per_A"])


def test_epoch_batches_cover_the_data_once_per_epoch():
    batches = epoch_batches(10, 4, seed=1, epoch=0)
    assert sorted(i for b in batches for i in b) == list(range(10)) and [len(b) for b in batches] == [4, 4, 2]
    assert epoch_batches(10, 4, seed=1, epoch=0) == batches
    assert epoch_batches(10, 4, seed=1, epoch=1) != batches and epoch_batches(10, 4, seed=2, epoch=0) != batches
    assert [len(b) for b in epoch_batches(9, 4, seed=1, epoch=0, world_size=2)] == [4, 4]   # a last 1 is dropped


def test_learning_rate_schedules():
    class Settings:
        lr, min_lr, warmup_epochs, max_epochs, plateau_factor, plateau_patience = 1.0, 0.0, 1.0, 3, 0.5, 1

    settings = Settings()
    settings.scheduler = "cosine"
    cosine = LearningRate(settings, steps_per_epoch=10)
    assert cosine.at(0) == pytest.approx(0.1) and cosine.at(9) == pytest.approx(1.0)
    assert cosine.at(19) == pytest.approx(0.5 * (1 + math.cos(math.pi * 9 / 20)))
    assert cosine.at(30) == pytest.approx(0.0)
    settings.scheduler, settings.warmup_epochs = "plateau", 0.0
    plateau = LearningRate(settings, steps_per_epoch=10)
    for loss in (1.0, 0.5, 0.6, 0.7):
        plateau.epoch_end(loss)
    assert plateau.at(40) == pytest.approx(0.5)      # two epochs without improvement > patience 1


def test_weight_average():
    model = torch.nn.Linear(2, 1, bias=False).double()
    with torch.no_grad():
        model.weight.fill_(0.0)
    average = WeightAverage(model, decay=0.5)
    with torch.no_grad():
        model.weight.fill_(1.0)
    average.update(model)               # decay min(0.5, 2/11)
    expected = 1 - 2 / 11
    with average.applied(model):
        assert torch.allclose(model.weight, torch.full((1, 2), expected, dtype=torch.float64))
    assert torch.equal(model.weight, torch.ones(1, 2, dtype=torch.float64))
