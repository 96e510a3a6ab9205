"""bench/accuracy.py: the mlearn structure families and the per-subset test errors."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from bench_scripts import load_bench


@pytest.fixture(scope="module")
def acc():
    return load_bench("accuracy")


def _frame(group: str, description: str, energy: float, seed: int):
    a = bulk("Si", "diamond", a=5.43, cubic=True)
    a.info.update(group=group, description=description)
    forces = np.random.default_rng(seed).normal(size=(len(a), 3))
    a.calc = SinglePointCalculator(a, energy=energy, forces=forces)
    return a


def test_subsets_name_the_mlearn_families(acc):
    names = [
        acc.subset(_frame("AIMD-NVT", "Snapshot 3 of 18 of AIMD NVT simulation for normal structure at 843 K", 0, 0)),
        acc.subset(_frame("Elastic", "Si 2x2x2 cell, mode 4, strain -0.08", 0, 0)),
        acc.subset(_frame("Elastic", "Si 2x2x2 cell, mode 1, strain 0.02", 0, 0)),
        acc.subset(_frame("Elastic", "Ground state crystal", 0, 0)),
        acc.subset(_frame("Surface", "Si_surface_mp/Si_mp-149_(3_1_0)", 0, 0)),
        acc.subset(_frame("Vacancy", "Vacancy AIMD NVT simulation at 300 K", 0, 0)),
    ]
    assert names == ["AIMD 843 K", "Elastic shear", "Elastic normal", "Elastic normal", "Surface", "Vacancy"]


def test_subset_errors_add_up_to_the_whole(acc):
    """Against a zero-energy, zero-force model: per-subset RMSE and signed mean; energy MSEs add
    up over frames, force MSEs over atoms (one frame is twice as big)."""
    frames = [_frame("Surface", "s", 0.08 * (i + 1), i) for i in range(2)]
    frames += [_frame("Vacancy", "v", -0.04, 5 + i) for i in range(3)]
    frames[1] = frames[1].repeat((2, 1, 1))  # 16 atoms: the force RMSE is over atoms, not frames
    frames[1].calc = SinglePointCalculator(frames[1], energy=0.32, forces=np.random.default_rng(9).normal(size=(16, 3)))

    def zero(atoms):
        return SinglePointCalculator(atoms, energy=0.0, forces=np.zeros((len(atoms), 3)))

    err = acc.split_errors(zero, frames)
    sub = err["subsets"]
    assert sub["Surface"]["n"] == 2 and sub["Vacancy"]["n"] == 3
    assert sub["Vacancy"]["energy_mean"] == pytest.approx(1e3 * 0.04 / 8)  # model − label, per atom, meV
    assert sub["Surface"]["energy_rmse"] == pytest.approx(1e3 * np.sqrt((0.01**2 + 0.02**2) / 2))
    total = sum(s["n"] * s["energy_rmse"] ** 2 for s in sub.values()) / len(frames)
    assert total == pytest.approx(err["energy_rmse"] ** 2)
    surface = np.concatenate([a.get_forces().ravel() for a in frames[:2]])  # 8 + 16 atoms pooled
    assert sub["Surface"]["force_rmse"] == pytest.approx(np.sqrt(np.mean(surface**2)))
    atoms = {"Surface": 24, "Vacancy": 24}
    forces = sum(atoms[k] * s["force_rmse"] ** 2 for k, s in sub.items()) / sum(atoms.values())
    assert forces == pytest.approx(err["force_rmse"] ** 2)
