"""fusionlang.data.md: a few GFN2-xTB Langevin steps on water (tblite), resuming, provenance, the CLI's checks."""
import json
import os

import numpy as np
import pytest

pytest.importorskip("ase")
os.environ.setdefault("OMP_NUM_THREADS", "1")       # before tblite loads: its threads only contend here

from fusionlang.data import load_split  # noqa: E402
from fusionlang.data.__main__ import main  # noqa: E402
from fusionlang.data.md import MDSettings, default_settings, generate_md  # noqa: E402

TINY = MDSettings(equilibration_steps=0, stride=1, train=1, valid=1, test=1, seed=7)


@pytest.fixture(autouse=True)
def _needs_tblite():
    pytest.importorskip("tblite.ase", reason="tblite is in the science extra")


@pytest.fixture(scope="module")
def tiny_water(tmp_path_factory):
    """Three Langevin steps of water, each sampled: one frame per split."""
    pytest.importorskip("tblite.ase", reason="tblite is in the science extra")
    root = tmp_path_factory.mktemp("md")
    return generate_md("H2O", root, TINY, progress=False, log=lambda *_: None)


def test_three_steps_of_water_give_labelled_splits(tiny_water):
    directory, tmp_path = tiny_water, tiny_water.parent
    provenance = json.loads((directory / "provenance.json").read_text())
    assert provenance["total_steps"] == 3 and provenance["split"] == {"train": 1, "valid": 1, "test": 1}
    assert provenance["method"] == "GFN2-xTB" and provenance["settings"]["temperature_K"] == 500.0
    assert provenance["versions"]["tblite"] != "not installed" and provenance["wall_time_s"] >= 0
    frames = [load_split("H2O", split, root=tmp_path)[0] for split in ("train", "valid", "test")]
    for atoms in frames:
        assert atoms.get_chemical_formula() == "H2O"
        assert atoms.arrays["forces"].shape == (3, 3)
        # GFN2-xTB water: about -5.07 hartree = -137.9 eV
        assert -139.0 < atoms.info["energy"] < -137.0
        # FixCom keeps the sum of forces' effect off the centre of mass, but the labels are the raw forces: they
        # sum to zero for an isolated molecule
        assert np.allclose(atoms.arrays["forces"].sum(axis=0), 0.0, atol=1e-5)
    assert len({round(a.info["energy"], 10) for a in frames}) == 3        # three different configurations


def test_force_labels_are_minus_the_energy_gradient(tiny_water):
    from tblite.ase import TBLite
    atoms = load_split("H2O", "test", root=tiny_water.parent)[0]
    label = atoms.arrays["forces"].copy()
    probe = atoms.copy()
    probe.calc = TBLite(method="GFN2-xTB", verbosity=0)
    step = 1e-4
    for atom, axis in [(0, 2), (1, 0), (2, 1)]:
        energies = []
        for sign in (1, -1):
            probe.positions = atoms.positions
            probe.positions[atom, axis] += sign * step
            energies.append(probe.get_potential_energy())
        assert -(energies[0] - energies[1]) / (2 * step) == pytest.approx(label[atom, axis], abs=2e-4)


def test_rerun_is_up_to_date_and_other_settings_are_refused(tiny_water):
    tmp_path = tiny_water.parent
    messages = []
    generate_md("H2O", tmp_path, TINY, progress=False, log=messages.append)
    assert "up to date" in messages[0]
    with pytest.raises(ValueError, match="other settings"):
        generate_md("H2O", tmp_path, MDSettings(stride=2, equilibration_steps=0, train=1, valid=1, test=1),
                    progress=False, log=lambda *_: None)


def test_interrupted_run_resumes_to_the_same_data(tmp_path):
    settings = MDSettings(equilibration_steps=2, stride=2, train=3, valid=1, test=2, seed=3)
    whole = generate_md("H2O", tmp_path / "whole", settings, progress=False, log=lambda *_: None)
    assert generate_md("H2O", tmp_path / "parts", settings, checkpoint_every=1, max_new_samples=2,
                       progress=False, log=lambda *_: None) is None
    assert not (tmp_path / "parts" / "H2O" / "provenance.json").exists()
    messages = []
    parts = generate_md("H2O", tmp_path / "parts", settings, checkpoint_every=1, progress=False,
                        log=messages.append)
    assert any("resuming at step 6 with 2 of 6 samples" in m for m in messages)
    for split in ("train", "valid", "test"):
        a, b = load_split("H2O", split, root=whole.parent), load_split("H2O", split, root=parts.parent)
        assert len(a) == len(b)
        for x, y in zip(a, b):
            # equal up to the SCC convergence of the restarted calculator
            np.testing.assert_allclose(x.positions, y.positions, atol=1e-6)
            assert x.info["energy"] == pytest.approx(y.info["energy"], abs=1e-5)


def test_molecule_defaults_and_cli_input_checks(capsys):
    assert default_settings("aspirin").stride == 10 and default_settings("ethanol").stride == 20
    assert default_settings("aspirin", stride=4).stride == 4
    assert main(["md", "--molecule", "H2O", "--stride", "0"]) == 2
    assert "--stride and --checkpoint-every must be >= 1" in capsys.readouterr().err
    assert main(["md", "--molecule", "unobtainium"]) == 2
    assert "unknown molecule 'unobtainium'" in capsys.readouterr().err


def test_step_cost_is_measured(capsys):
    from fusionlang.data.md import measure_step_cost
    cost = measure_step_cost("H2O", steps=3)
    assert cost["atoms"] == 3 and cost["steps"] == 3
    assert cost["cpu_ms_per_step"] > 0 and cost["wall_ms_per_step"] > 0
    assert main(["cost", "--molecule", "H2O", "--steps", "2"]) == 0
    assert "H2O" in capsys.readouterr().out
