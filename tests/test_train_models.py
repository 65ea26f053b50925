"""Every model of fusionlang.models trains through `fusionlang.train` (a few steps at tiny sizes, forces in
the loss): the losses are finite and fall, and model.pt runs in the ASE calculator."""
import math
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("ase")
models = pytest.importorskip("fusionlang.models")
sys.path.insert(0, str(Path(__file__).parent))
import train_toy  # noqa: E402

from fusionlang.train import load_config, train  # noqa: E402

TINY = {
    "mace": dict(channels=4, lmax=2, radial_hidden=[8, 8], readout_hidden=4),
    "mace-fusion": dict(channels=4, lmax=2, radial_hidden=[8, 8], readout_hidden=4),
    "cormorant": dict(channels=3, lmax=2, readout_hidden=8),
    "cormorant-fusion": dict(channels=3, lmax=2, readout_hidden=8),
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return train_toy.write_dataset(tmp_path_factory.mktemp("toy_data"), train=8, valid=4, test=2)


@pytest.mark.parametrize("name", sorted(TINY))
def test_model_trains(name, dataset, tmp_path):
    config = tmp_path / "run.toml"
    config.write_text(train_toy.config_text(dataset, tmp_path / "out", model={"name": name, **TINY[name]},
                                            max_epochs=4, batch_size=4, lr=0.01, ema_decay=0.0))
    results = train(load_config(config), log=lambda text: None)
    losses = [record["train_loss"] for record in results["history"]]
    assert all(math.isfinite(x) for x in losses) and losses[-1] < losses[0], losses
    assert results["parameters"] == models.count_parameters(models.load_checkpoint_model(tmp_path / "out" / "model.pt"))
    atoms = train_toy.synthetic_molecules(1)[0]
    atoms.calc = models.Calculator(str(tmp_path / "out" / "model.pt"))
    assert math.isfinite(atoms.get_potential_energy()) and torch.isfinite(torch.tensor(atoms.get_forces())).all()
