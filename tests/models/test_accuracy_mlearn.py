"""Accuracy regression on real DFT: the default training on a subset of the mlearn Si benchmark.

Reads ``../shared/data/mlearn-si`` next to the repository (Zuo et al., J. Phys. Chem. A 124,
731 (2020); see bench/accuracy.py for the full benchmark) and skips when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from ase.units import GPa
from bench_scripts import load_bench

from alip.models.training import TrainConfig, errors, train_committee

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mlearn-si"

pytestmark = pytest.mark.skipif(
    not (DATA / "train.extxyz").is_file() or not (DATA / "test.extxyz").is_file(),
    reason=f"mlearn Si benchmark not found at {DATA} (a sibling 'shared/data/mlearn-si' of the repository)",
)

#: every SUBSET_STEP-th training structure (18 of 214, 1,100 atoms), trained briefly
SUBSET_STEP = 12
SHORT = {"n_members": 2, "epochs": 20}
#: bounds on the RMSE over all 25 test structures. Measured with SHORT (2026-12, torch 2.13 CPU,
#: shear stresses fixed as bench/accuracy.py reads them): the defaults (ACSF.cross_windows_si(), a
#: validation fold per member, no bootstrap, 200 L-BFGS steps) 5.58 meV/atom, 0.131 eV/Å and
#: 0.239 GPa (seeds 1, 2: 5.58 / 0.136, 4.87 / 0.131; seeds 0-7: 5.45 / 0.133 / 0.248); on
#: ACSF.windows_si() (the sixth study's) 4.23, 0.134 and 0.233 (seeds 1, 2: 4.70 / 0.131, 5.24 /
#: 0.132; seeds 0-7: 5.47 / 0.142 / 0.260, one seed failing at 10.1 / 0.210); on ACSF.shells_si() (the fifth study's
#: defaults) 5.25, 0.133 and 0.248 (seeds 1, 2: 4.62 / 0.133, 4.80 / 0.136); on ACSF.fine_g5_si() (the fourth study's
#: defaults) 5.15, 0.136 and 0.243 (seeds 1, 2: 4.86 / 0.141, 5.27 / 0.137); the third study's
#: (one shared validation split) 5.58, 0.139 and 0.240; the previous defaults (ACSF.fine_si(), G4,
#: shared split, bootstrap, 100 L-BFGS steps) 8.68, 0.173 and 0.384, which fail all three bounds;
#: the fourth study's defaults on the stresses as stored 5.17, 0.137 and 0.667.
FORCE_BOUND = 0.150
ENERGY_BOUND = 0.0065
STRESS_BOUND = 0.35 * GPa  # eV/Å³


def test_default_training_on_mlearn_subset() -> None:
    """Only the size of the run is overridden: activation, loss weights, optimiser and the
    descriptor are the defaults whose accuracy this guards."""
    read_mlearn = load_bench("accuracy").read_mlearn  # the shear stresses as the DFT gave them
    train = read_mlearn(os.fspath(DATA / "train.extxyz"))[::SUBSET_STEP]
    test = read_mlearn(os.fspath(DATA / "test.extxyz"))
    result = train_committee(train, config=TrainConfig(**SHORT))
    err = errors(result.committee, test)
    assert err["force_rmse"] < FORCE_BOUND, err
    assert err["energy_rmse"] < ENERGY_BOUND, err
    assert err["stress_rmse"] < STRESS_BOUND, err
