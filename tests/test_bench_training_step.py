"""bench/training_step.py: its gathered batches are the PyTorch path's input for the same
forces, and the script runs end to end on a small labelled set."""

from __future__ import annotations

import sys

import numpy as np
import torch
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write
from bench_scripts import load_bench

from alip import ACSF
from alip.core.jacobian import padded_forces, shared_padded_forces
from alip.data.oracles import make_oracle
from alip.data.structures import generate_si_pool
from alip.models.training import featurize

SMALL = {"small_distortion": {"max_atoms": 16}, "large_distortion": {"max_atoms": 16}, "random": {"n_atoms": (8, 16)}}


def _labelled(n: int) -> list:
    oracle = make_oracle("sw")
    pool = generate_si_pool(n, seed=3, family_kwargs=SMALL)
    for atoms in pool:
        label = oracle.label(atoms)
        assert label.ok, label.error
        atoms.calc = SinglePointCalculator(atoms, energy=label.energy, forces=label.forces, stress=label.stress)
    return pool


def test_gathered_batches_give_the_same_forces_on_the_pytorch_path():
    bench = load_bench("training_step")
    data = featurize(ACSF.training_default(), _labelled(8), dtype=torch.float64).padded()
    batch = data.batch(np.array([5, 1, 6]))
    ref = bench.gathered(batch)
    assert ref.grad_atoms is None and ref.grad_padded.shape[0] == len(batch.values)
    g = torch.randn(3, len(batch.values), data.values.shape[1], dtype=torch.float64)
    F = shared_padded_forces(g, batch.grad_padded, batch.grad_targets, batch.grad_atoms)
    np.testing.assert_allclose(padded_forces(g, ref.grad_padded, ref.grad_targets), F, rtol=0, atol=1e-12)


def test_runs_and_prints_the_table(tmp_path, monkeypatch, capsys):
    write(tmp_path / "train.extxyz", _labelled(6), format="extxyz")
    argv = ["training_step.py", str(tmp_path / "train.extxyz"), "--rounds", "1", "--members", "2", "--threads", "1"]
    monkeypatch.setattr(sys, "argv", argv)
    load_bench("training_step").main()
    out = capsys.readouterr().out
    assert "| Adam epoch |" in out and "| full pass |" in out and "first step's losses" in out
