"""bench/force_implied_energies.py: the per-phase statistics of two models' per-frame errors."""

from __future__ import annotations

import numpy as np
import pytest
from bench_scripts import load_bench


@pytest.fixture(scope="module")
def fie():
    return load_bench("force_implied_energies")


def test_phase_stats_split_offset_scatter_and_correlation(fie):
    rng = np.random.default_rng(0)
    base = rng.normal(size=40)
    phases = ["liquid"] * 25 + ["crystal"] * 15
    low = np.concatenate([base[:25] * 2.0 - 7.0, rng.normal(size=15)])  # liquid: the same pattern, shifted
    ref = np.concatenate([base[:25], -low[25:] + 3.0])  # crystal: the opposite pattern
    s = fie.phase_stats(low, ref, phases)
    assert set(s) == {"crystal", "liquid"}
    liq, cry = s["liquid"], s["crystal"]
    assert liq["n"] == 25 and cry["n"] == 15
    assert liq["correlation"] == pytest.approx(1.0)
    assert cry["correlation"] == pytest.approx(-1.0)
    assert liq["mean_low"] == pytest.approx(2.0 * base[:25].mean() - 7.0)
    assert liq["scatter_low"] == pytest.approx(2.0 * liq["scatter_ref"])
    for st in (liq, cry):  # RMSE² = mean² + scatter² for each model
        for m in ("low", "ref"):
            assert st[f"rmse_{m}"] ** 2 == pytest.approx(st[f"mean_{m}"] ** 2 + st[f"scatter_{m}"] ** 2)
    assert cry["rmse_ref"] == pytest.approx(np.sqrt(np.mean((3.0 - low[25:]) ** 2)))
