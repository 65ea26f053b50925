"""MD with a trained model's calculator: the stability criteria and the energy drift, on ase's EMT."""
import pytest

pytest.importorskip("ase")
from ase.build import molecule  # noqa: E402
from ase.calculators.emt import EMT  # noqa: E402

from fusionlang.train.md import bonded_pairs, run_md  # noqa: E402


def test_bonds_of_methane():
    assert sorted(map(tuple, bonded_pairs(molecule("CH4")).tolist())) == [(0, 1), (0, 2), (0, 3), (0, 4)]


def test_a_good_run_is_stable_and_conserves_energy():
    report = run_md(molecule("CH4"), EMT(), time_ps=0.2, timestep_fs=0.5, temperature_K=300, seed=1)
    assert report["stable"] and report["completed"] and report["simulated_ps"] == pytest.approx(0.2)
    assert 1.0 < report["max_bond_stretch"] < 1.5 and report["min_distance_A"] > 0.9
    assert abs(report["energy_drift_meV_per_atom_per_ps"]) < 5
    assert report["energy_fluctuation_meV_per_atom"] < 5


def test_a_run_that_blows_up_is_caught():
    report = run_md(molecule("CH4"), EMT(), time_ps=0.5, timestep_fs=5.0, temperature_K=3000, seed=1)
    assert not report["stable"] and not report["completed"]
    assert "bond stretched" in report["failure"] and report["simulated_ps"] < 0.5
    assert report["energy_drift_meV_per_atom_per_ps"] is None


def test_langevin_and_the_wall_clock_limit():
    report = run_md(molecule("CH4"), EMT(), time_ps=100.0, thermostat="langevin", temperature_K=300, seed=1,
                    max_seconds=0.5)
    assert report["stable"] and not report["completed"] and 0 < report["simulated_ps"] < 100
    assert report["energy_drift_meV_per_atom_per_ps"] is None       # no drift under a thermostat
    with pytest.raises(ValueError, match="thermostat"):
        run_md(molecule("CH4"), EMT(), thermostat="nvt")
