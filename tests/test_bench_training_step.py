"""bench/training_step.py runs end to end on a small labelled set (its two paths are
compared in tests/models/test_training.py and tests/core/test_jacobian.py)."""

from __future__ import annotations

import sys

from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write
from bench_scripts import load_bench

from alip.data.oracles import make_oracle
from alip.data.structures import generate_si_pool

SMALL = {"small_distortion": {"max_atoms": 16}, "large_distortion": {"max_atoms": 16}, "random": {"n_atoms": (8, 16)}}


def _labelled(n: int) -> list:
    oracle = make_oracle("sw")
    pool = generate_si_pool(n, seed=3, family_kwargs=SMALL)
    for atoms in pool:
        label = oracle.label(atoms)
        assert label.ok, label.error
        atoms.calc = SinglePointCalculator(atoms, energy=label.energy, forces=label.forces, stress=label.stress)
    return pool


def test_runs_and_prints_the_table(tmp_path, monkeypatch, capsys):
    write(tmp_path / "train.extxyz", _labelled(6), format="extxyz")
    argv = ["training_step.py", str(tmp_path / "train.extxyz"), "--rounds", "1", "--members", "2", "--threads", "1"]
    monkeypatch.setattr(sys, "argv", argv)
    load_bench("training_step").main()
    out = capsys.readouterr().out
    assert "| Adam epoch |" in out and "| full pass |" in out and "first step's losses" in out
