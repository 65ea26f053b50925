"""`python -m fusionlang.train` under torchrun: 2 CPU processes on gloo, DistributedDataParallel with a force
loss (double backward), give the parameters of single-process training on the same global batches."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("ase")
sys.path.insert(0, str(Path(__file__).parent))
import train_toy  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def command_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests"), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    return env


@pytest.mark.parametrize("optimizer", ["sgd", "amsgrad"])
def test_two_processes_equal_one(tmp_path, optimizer):
    # SGD keeps the gradient's scale (a loss off by a factor would show); AMSGrad is the default.
    # 12 structures, batches of 4: each process gets 2 molecules of different sizes (H2O, CH4) per step.
    paths = train_toy.write_dataset(tmp_path, train=12, valid=4, test=4)
    settings = dict(max_epochs=2, optimizer=optimizer, lr=0.002 if optimizer == "sgd" else 0.01)
    for name in ("single", "ddp"):
        (tmp_path / f"{name}.toml").write_text(train_toy.config_text(paths, tmp_path / name, **settings))
    train = [sys.executable, "-m", "fusionlang.train", "--config"]
    single = subprocess.run(train + [str(tmp_path / "single.toml")], capture_output=True, text=True,
                            env=command_env(), cwd=tmp_path, timeout=300)
    assert single.returncode == 0, single.stderr
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "-m", "fusionlang.train", "--config", str(tmp_path / "ddp.toml")],
                         capture_output=True, text=True, env=command_env(), cwd=tmp_path, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    one = torch.load(tmp_path / "single" / "checkpoint.pt", weights_only=False)
    two = torch.load(tmp_path / "ddp" / "checkpoint.pt", weights_only=False)
    assert two["world_size"] == 2 and one["world_size"] == 1
    assert one["global_step"] == two["global_step"] == 6
    torch.manual_seed(3)                    # the config's seed: the weights both runs started from
    start = dict(train_toy.build_pair_model(**one["model_config"]).double().named_parameters())
    for name, value in one["train_model_state"].items():
        torch.testing.assert_close(two["train_model_state"][name], value, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(two["model_state"][name], one["model_state"][name], rtol=1e-10, atol=1e-12)
        if name in start:
            assert value.dtype == torch.float64
            assert not torch.allclose(value, start[name])          # it trained
    for a, b in zip(one["history"], two["history"]):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-10)
        assert b["valid_loss"] == pytest.approx(a["valid_loss"], rel=1e-10)
