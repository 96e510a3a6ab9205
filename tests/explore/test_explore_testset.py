"""The physical test set: the oracle's own MD, cached per oracle and settings, errors per subset."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from alip.explore import md_testset
from alip.explore.md_testset import MDSubset, cache_key, errors_by_subset, md_test_set, si_md_subsets


def small_subsets():
    """8-atom cells, a few steps: the same procedure as the default set, in a second."""
    cell = bulk("Si", "diamond", a=5.431, cubic=True)
    common = dict(frames=3, every=5, equilibration=20)
    return [
        MDSubset("crystal_300K", cell, 300.0, **common),
        MDSubset("crystal_1500K", cell, 1500.0, **common),
        MDSubset("liquid_2000K", cell, 2000.0, melt_temperature=5000.0, melt_steps=60, **common),
    ]


def test_frames_carry_the_oracles_own_labels_and_subsets(tmp_path):
    from alip.data.oracles import make_oracle

    frames = md_test_set("sw", small_subsets(), seed=1, cache_dir=tmp_path)
    assert [f.info["subset"] for f in frames] == ["crystal_300K"] * 3 + ["crystal_1500K"] * 3 + ["liquid_2000K"] * 3
    sw = make_oracle("sw")
    for f in frames[::2]:  # the stored label is the oracle's at those positions
        lab = sw.label(f)
        assert f.get_potential_energy() == pytest.approx(lab.energy, abs=1e-9)
        np.testing.assert_allclose(f.get_forces(), lab.forces, atol=1e-9)
        np.testing.assert_allclose(f.get_stress(), lab.stress, atol=1e-9)
    e = {
        name: np.mean([f.get_potential_energy() / len(f) for f in frames if f.info["subset"] == name])
        for name in ("crystal_300K", "crystal_1500K", "liquid_2000K")
    }
    assert e["crystal_300K"] < e["crystal_1500K"] < e["liquid_2000K"]  # hotter is higher in energy
    assert e["crystal_300K"] - (-4.3366) < 0.05  # near the SW diamond minimum
    d = np.array([f.positions for f in frames[:3]])
    assert np.abs(d[1] - d[0]).max() > 0.01  # frames are not copies


def test_generated_once_per_oracle_and_settings(tmp_path, monkeypatch):
    first = md_test_set("sw", small_subsets(), seed=0, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("md_testset-*.extxyz"))) == 1

    def no_generation(*args, **kwargs):
        raise AssertionError("the cached set must be read, not generated again")

    monkeypatch.setattr(md_testset, "generate_md_test_set", no_generation)
    again = md_test_set("sw", small_subsets(), seed=0, cache_dir=tmp_path)
    assert len(again) == len(first)
    for a, b in zip(first, again):
        np.testing.assert_allclose(a.positions, b.positions, atol=1e-8)
        assert a.get_potential_energy() == pytest.approx(b.get_potential_energy(), abs=1e-8)
        assert a.info["subset"] == b.info["subset"]
    keys = {
        cache_key("sw", small_subsets(), 0),
        cache_key("kumagai", small_subsets(), 0),
        cache_key("sw", small_subsets(), 1),
        cache_key("sw", small_subsets()[:2], 0),
    }
    assert len(keys) == 4  # oracle, seed and subsets all change the key
    with pytest.raises(AssertionError, match="cached set must be read"):
        md_test_set("kumagai", small_subsets(), seed=0, cache_dir=tmp_path)


def test_errors_by_subset_match_a_direct_computation(tmp_path):
    import alip
    from alip.models.training import TrainConfig, train_committee

    frames = md_test_set("sw", small_subsets(), seed=2, cache_dir=tmp_path)
    cfg = TrainConfig(n_members=2, hidden=(8,), epochs=5, seed=0, val_fraction=0.0)
    committee = train_committee(frames[::2], alip.ACSF.default_si(), cfg).committee
    got = errors_by_subset(committee, frames)
    assert set(got) == {"crystal_300K", "crystal_1500K", "liquid_2000K", "all"}
    for name in ("crystal_1500K", "all"):
        sub = [f for f in frames if name == "all" or f.info["subset"] == name]
        pred = committee.predict(sub)
        e = pred.energies.mean(0) / pred.n_atoms - np.array([f.get_potential_energy() / len(f) for f in sub])
        df = pred.forces.mean(0) - np.concatenate([f.get_forces() for f in sub])
        assert got[name]["energy_rmse"] == pytest.approx(np.sqrt(np.mean(e**2)), rel=1e-10)
        assert got[name]["force_rmse"] == pytest.approx(np.sqrt(np.mean(df**2)), rel=1e-10)
        assert got[name]["n"] == len(sub)


def test_bad_subsets_and_oracles_are_refused(tmp_path):
    cell = bulk("Si", "diamond", a=5.431, cubic=True)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        MDSubset("cold", cell, 0.0)
    with pytest.raises(ValueError, match="unique"):
        md_test_set("sw", [MDSubset("a", cell, 300.0, frames=1, equilibration=1)] * 2, cache_dir=tmp_path)
    from alip.data.io import attach_label, write_extxyz

    data = tmp_path / "stored.extxyz"
    write_extxyz(data, [attach_label(cell, -34.7, np.zeros((8, 3)))])
    with pytest.raises(ValueError, match="stored labels cannot run MD"):
        md_test_set(f"stored:{data}", small_subsets(), cache_dir=tmp_path)
    names = [s.name for s in si_md_subsets()]
    assert names == ["crystal_300K", "crystal_900K", "crystal_1500K", "vacancy_900K", "liquid_2000K"]
    assert len(si_md_subsets()[3].structure) == 63


# ----------------------------------------------------------------------------- physical window
def test_physical_window_keeps_structures_near_the_lowest_energy():
    from alip.data.oracles import make_oracle
    from alip.data.physical_window import physical_window
    from alip.data.structures import generate_si_pool

    pool = generate_si_pool(
        40,
        seed=3,
        family_kwargs={
            "small_distortion": {"max_atoms": 16},
            "large_distortion": {"max_atoms": 16},
            "random": {"n_atoms": (8, 12)},
        },
    )
    res = physical_window(pool, "sw", max_above=1.0)
    sw = make_oracle("sw")
    e = np.array([sw.label(a).energy / len(a) for a in pool])  # independent recomputation
    np.testing.assert_allclose(res.energy_per_atom, e, atol=1e-10)
    assert res.e_min == pytest.approx(e.min())
    assert [a.info["pool_id"] for a in res.structures] == [
        a.info["pool_id"] for a, x in zip(pool, e) if x <= e.min() + 1.0
    ]
    summary = res.summary()
    assert summary["volume"]["dropped"] == 0 and summary["random"]["kept"] == 0  # SW random: >= 1.5 eV/atom up
    assert 0 < len(res.structures) < len(pool)


def test_physical_window_refuses_paid_labels_and_bad_input():
    from alip.data.physical_window import oracle_energies_are_cheap, physical_window

    cells = [bulk("Si", "diamond", a=5.431, cubic=True), bulk("Si", "diamond", a=6.5, cubic=True)]
    assert oracle_energies_are_cheap("sw") and not oracle_energies_are_cheap("ase.calculators.emt:EMT")
    with pytest.raises(ValueError, match="expensive oracle"):
        physical_window(cells, "ase.calculators.emt:EMT")
    res = physical_window(cells, energies=[-34.7, -20.0], max_above=1.0)
    assert [len(a) for a in res.structures] == [8] and list(res.kept) == [True, False]
    with pytest.raises(ValueError, match="max_above must be a positive"):
        physical_window(cells, energies=[-34.7, -20.0], max_above=0.0)
    with pytest.raises(ValueError, match="2 structures"):
        physical_window(cells, energies=[-34.7])
    with pytest.raises(ValueError, match="no structures"):
        physical_window([], "sw")
