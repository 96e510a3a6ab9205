"""bench/liquid_floor.py: mixed committees' errors and the phase subsets of the learning curve."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from bench_scripts import load_bench


@pytest.fixture(scope="module")
def lf():
    return load_bench("liquid_floor")


def _frames(energies_per_atom, n_atoms=2):
    out = []
    for e in energies_per_atom:
        a = Atoms("Si" * n_atoms, positions=np.arange(3 * n_atoms).reshape(-1, 3), cell=[5, 5, 5], pbc=True)
        a.calc = SinglePointCalculator(a, energy=e * n_atoms)
        out.append(a)
    return out


def test_energy_errors_are_per_atom_in_mev(lf):
    frames = _frames([-4.0, -3.5], n_atoms=4)
    err = lf.energy_errors(np.array([-16.0 + 0.004, -14.0 - 0.008]), frames)
    assert err == pytest.approx([1.0, -2.0])


def test_mix_table_cancels_opposite_liquid_errors_and_keeps_shared_ones(lf):
    labels = np.array([-4.6, -4.5, -4.0, -3.9, -3.95, -4.55])
    phases = ["crystal", "crystal", "liquid", "liquid", "liquid", "crystal"]
    frames = _frames(labels)
    pattern = np.array([0.0, 0.0, 3e-3, -5e-3, 2e-3, 0.0])  # eV/atom on the liquid frames
    crystal = np.array([1e-3, -1e-3, 0.0, 0.0, 0.0, 2e-3])
    energies = {
        "a": 2 * (labels + pattern + crystal),
        "b": 2 * (labels - pattern + crystal),  # the opposite liquid errors
        "c": 2 * (labels + 2 * pattern),  # the same pattern, twice as large, exact crystals
    }
    t = lf.mix_table(energies, frames, phases)
    assert t["alone"]["a"]["liquid"] == pytest.approx(1e3 * np.sqrt(np.mean(pattern[2:5] ** 2)))
    assert t["alone"]["c"]["crystal"] == pytest.approx(0.0, abs=1e-9)
    assert t["correlation"]["a ~ b"] == pytest.approx(-1.0)
    assert t["correlation"]["a ~ c"] == pytest.approx(1.0)
    assert t["mean"]["a + b"]["liquid"] == pytest.approx(0.0, abs=1e-9)  # opposite errors cancel
    assert t["mean"]["a + b"]["crystal"] == pytest.approx(t["alone"]["a"]["crystal"])
    assert t["mean"]["a + c"]["liquid"] == pytest.approx(1.5 * t["alone"]["a"]["liquid"])  # shared ones do not
    assert set(t["mean"]) == {"a + b", "a + c", "b + c", "a + b + c"}
    everything = np.sqrt(np.mean((1e3 * (pattern * 2 / 3 + crystal * 2 / 3)) ** 2))
    assert t["mean"]["a + b + c"]["all"] == pytest.approx(everything)


def test_phase_fraction_keeps_the_other_phase_and_draws_a_fraction(lf):
    phases = ["liquid" if i % 3 == 0 else "crystal" for i in range(30)]  # 10 liquid, 20 crystal
    keep = lf.phase_fraction(phases, "liquid", 0.3, seed=0)
    assert list(keep) == sorted(keep)
    liquid = [i for i in keep if phases[i] == "liquid"]
    assert len(liquid) == 3
    assert [i for i in keep if phases[i] == "crystal"] == [i for i in range(30) if phases[i] == "crystal"]
    assert list(lf.phase_fraction(phases, "liquid", 0.3, seed=0)) == list(keep)  # the seed decides
    assert any(list(lf.phase_fraction(phases, "liquid", 0.3, seed=s)) != list(keep) for s in range(1, 5))
    assert len(lf.phase_fraction(phases, "liquid", 1.0, seed=0)) == 30
    with pytest.raises(ValueError, match="fraction"):
        lf.phase_fraction(phases, "liquid", 0.0, seed=0)
    with pytest.raises(ValueError, match="no frame"):
        lf.phase_fraction(["crystal"] * 4, "liquid", 0.5, seed=0)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["mix", "one.pt"], "two or more"),
        (["curve", "--fraction", "0"], "--fraction"),
        (["curve", "--fraction", "1.5"], "--fraction"),
    ],
)
def test_bad_arguments_stop_before_reading_data(lf, argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        lf.main(["--data", str(tmp_path / "absent"), *argv])
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_committee_file_is_named(lf, capsys, tmp_path):
    present = tmp_path / "a.pt"
    present.write_bytes(b"")
    with pytest.raises(SystemExit) as e:
        lf.main(["--data", str(tmp_path / "absent"), "mix", str(present), str(tmp_path / "b.pt")])
    assert e.value.code == 2
    assert "b.pt" in capsys.readouterr().err
