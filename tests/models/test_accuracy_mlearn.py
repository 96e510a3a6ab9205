"""Accuracy regression on real DFT: the default training on a subset of the mlearn Si benchmark.

Reads ``../shared/data/mlearn-si`` next to the repository (Zuo et al., J. Phys. Chem. A 124,
731 (2020); see bench/accuracy.py for the full benchmark) and skips when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from ase.io import read

from alip.models.training import TrainConfig, errors, train_committee

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mlearn-si"

pytestmark = pytest.mark.skipif(
    not (DATA / "train.extxyz").is_file() or not (DATA / "test.extxyz").is_file(),
    reason=f"mlearn Si benchmark not found at {DATA} (a sibling 'shared/data/mlearn-si' of the repository)",
)

#: every SUBSET_STEP-th training structure (18 of 214, 1,100 atoms), trained briefly
SUBSET_STEP = 12
SHORT = {"n_members": 2, "epochs": 20}
#: bounds on the RMSE over all 25 test structures. Measured with SHORT (2026-12, torch 2.13 CPU):
#: the defaults (batch 4, ACSF.fine_si()) 9.6 meV/atom and 0.181 eV/Å; the former defaults
#: (batch 16, ACSF.default_si()) 11.6 meV/atom and 0.189 eV/Å, which fail the energy bound
#: (forces do not separate them on this subset); the defaults before those (tanh, no L-BFGS)
#: 120.7 meV/atom and 0.841 eV/Å, which fail both.
FORCE_BOUND = 0.20
ENERGY_BOUND = 0.0105


def test_default_training_on_mlearn_subset() -> None:
    """Only the size of the run is overridden: activation, loss weights, optimiser and the
    descriptor are the defaults whose accuracy this guards."""
    train = read(os.fspath(DATA / "train.extxyz"), ":")[::SUBSET_STEP]
    test = read(os.fspath(DATA / "test.extxyz"), ":")
    result = train_committee(train, config=TrainConfig(**SHORT))
    err = errors(result.committee, test)
    assert err["force_rmse"] < FORCE_BOUND, err
    assert err["energy_rmse"] < ENERGY_BOUND, err
