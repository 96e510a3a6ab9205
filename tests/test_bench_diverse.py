"""bench/diverse.py: the diverse set's window, its split by source cell, nested subsets, groups."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from bench_scripts import load_bench


@pytest.fixture(scope="module")
def div():
    return load_bench("diverse")


@pytest.fixture(scope="module")
def small_set(div):
    return div.diverse_set(6, seed=1, potential="sw", max_above=1.0, every=20, perturb=2, max_steps=60, progress=False)


def test_frames_are_labelled_within_the_window_of_the_oracles_diamond(div, small_set):
    from alip.data.oracles import make_oracle

    frames, e_diamond = small_set
    oracle = make_oracle("sw")
    d = bulk("Si", "diamond", a=5.431)  # SW's minimum
    assert e_diamond == pytest.approx(oracle.compute(d)[0] / 2, abs=1e-6)
    assert frames and {f.info["kind"] for f in frames} <= {"relaxation", "perturbed"}
    for f in frames[:: max(1, len(frames) // 8)]:
        e, forces, stress = oracle.compute(f.copy())
        assert f.get_potential_energy() == pytest.approx(e, abs=1e-9)
        np.testing.assert_allclose(f.get_forces(), forces, atol=1e-9)
        np.testing.assert_allclose(f.get_stress(), stress, atol=1e-12)
        assert f.info["above_diamond"] == pytest.approx(e / len(f) - e_diamond, abs=1e-9)
    for f, g in zip(frames, frames[1:]):  # no frame stored twice (a relaxation ending on a multiple of every)
        if f.info["cell"] == g.info["cell"] and len(f) == len(g):
            assert not np.allclose(f.positions, g.positions) or not np.allclose(f.cell, g.cell)
    above = np.array([f.info["above_diamond"] for f in frames])
    assert above.min() >= -1e-6 and above.max() <= 1.0
    assert all(1 <= len(f) <= 16 for f in frames)


def test_split_keeps_each_cells_frames_together_and_subsets_nest(div, small_set):
    frames, _ = small_set
    train, test = div.split_by_cell(frames, every=3)
    assert {f.info["cell"] for f in train}.isdisjoint({f.info["cell"] for f in test})
    assert len(train) + len(test) == len(frames) and test
    small = div.nested_subset(train, 5, seed=0)
    large = div.nested_subset(train, 15, seed=0)
    assert len(small) >= 5 and all(any(s is f for f in large) for s in small)
    cells = {f.info["cell"] for f in small}
    assert sum(f.info["cell"] in cells for f in train) == len(small)  # whole cells only
    assert len(div.nested_subset(train, None)) == len(train)


def test_groups_name_energy_and_size(div):
    a = bulk("Si", "diamond", a=5.43)
    a.info["above_diamond"] = 0.1
    assert div.group(a) == (0, 0, "< 0.3 eV/atom, 1–4 atoms")
    b = a.repeat((2, 2, 2))
    b.info["above_diamond"] = 0.7
    assert div.group(b) == (2, 2, "≥ 0.6 eV/atom, 9–16 atoms")
    c, d = a.repeat((2, 1, 1)), a.repeat((2, 2, 1))  # 4 and 8 atoms; 0.3 and 0.6 eV/atom: the upper group
    c.info["above_diamond"], d.info["above_diamond"] = 0.3, 0.6
    assert div.group(c) == (1, 0, "0.3–0.6 eV/atom, 1–4 atoms")
    assert div.group(d) == (2, 1, "≥ 0.6 eV/atom, 5–8 atoms")
