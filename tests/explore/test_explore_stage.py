"""The explore stage of an iteration: schedule, planning, recorded frames, resume, store."""

from __future__ import annotations

import os

import numpy as np
import pytest
from ase.build import bulk
from explore_fixtures import tiny_committee

from alip.config import Config, ConfigError, ExploreSection
from alip.explore import stage
from alip.explore.seeds import default_acsf, initial_structures, make_supercell, read_seeds
from alip.explore.stage import explore, explore_pool_id, plan_tasks, register, schedule


@pytest.fixture(scope="module")
def committee_path(tmp_path_factory):
    return tiny_committee(tmp_path_factory.mktemp("committee") / "c.pt")


def small_settings(**kw):
    base = dict(
        supercell=[1, 1, 1],
        ensembles=["nvt", "npt"],
        temperatures=[300.0, 1200.0],
        steps=30,
        every=5,
        growth=2.0,
        max_steps=100,
        max_trajectories=3,
        trust_lo=0.05,
        trust_hi=2.0,
    )
    base.update(kw)
    section = ExploreSection(**base)
    section.check()
    return section


def test_schedule_climbs_the_ladder_and_grows_the_steps():
    s = ExploreSection(temperatures=[1500.0, 300.0, 900.0], steps=100, growth=1.5, max_steps=300, ramp=2)
    assert [schedule(s, n) for n in range(6)] == [
        ([300.0], 100),
        ([300.0], 150),
        ([300.0, 900.0], 225),
        ([300.0, 900.0], 300),
        ([300.0, 900.0, 1500.0], 300),
        ([300.0, 900.0, 1500.0], 300),
    ]


def test_plan_is_deterministic_capped_and_spread_over_the_rungs(committee_path):
    s = small_settings(max_trajectories=4)
    starts = [bulk("Si", "diamond", a=5.431, cubic=True)] * 3
    a = plan_tasks(s, 1, starts, committee_path, seed=5)
    b = plan_tasks(s, 1, starts, committee_path, seed=5)
    assert [(t.trajectory_id, t.ensemble, t.temperature, t.seed) for t in a] == [
        (t.trajectory_id, t.ensemble, t.temperature, t.seed) for t in b
    ]
    assert len(a) == 4 and sorted(t.temperature for t in a) == [300.0, 300.0, 1200.0, 1200.0]
    assert len({t.seed for t in a}) == 4 and a[0].steps == 60
    full = plan_tasks(
        small_settings(max_trajectories=100, ensembles=["nvt", "npt", "relax"], pressures=[0.0, 5.0]),
        1,
        starts[:1],
        committee_path,
    )
    kinds = sorted((t.ensemble, t.temperature, t.pressure) for t in full)
    assert kinds == [
        ("npt", 300.0, 0.0),
        ("npt", 300.0, 5.0),
        ("npt", 1200.0, 0.0),
        ("npt", 1200.0, 5.0),
        ("nvt", 300.0, 0.0),
        ("nvt", 1200.0, 0.0),
        ("relax", 0.0, 0.0),
        ("relax", 0.0, 5.0),
    ]
    assert plan_tasks(s, 1, starts, committee_path, seed=6)[0].seed != a[0].seed


def test_stage_is_recorded_and_read_back_not_rerun(tmp_path, committee_path, monkeypatch):
    s = small_settings(trust_lo=0.01)  # low enough that frames are candidates whatever the committee
    starts = [make_supercell(bulk("Si", "diamond", a=5.431, cubic=True), 1)]
    first = explore(s, 0, starts, committee_path, str(tmp_path), seed=1)
    assert not first.resumed and first.results and os.path.isfile(tmp_path / "iter_000.json")
    assert first.stats.n_frames == sum(len(r.frames) for r in first.results)
    assert first.stats.candidate == len(first.candidates) > 0
    assert [c.info["pool_id"] for c in first.candidates] == [
        explore_pool_id(0, i) for i in range(len(first.candidates))
    ]
    c = first.candidates[0]
    assert c.info["family"] == "explore" and c.info["explore_iteration"] == 0
    assert {"explore_temperature", "explore_pressure", "explore_step", "explore_trajectory"} <= set(c.info)

    def no_rerun(*a, **k):
        raise AssertionError("a recorded stage must not run its trajectories again")

    monkeypatch.setattr(stage, "run_trajectories", no_rerun)
    again = explore(s, 0, starts, committee_path, str(tmp_path), seed=1)
    assert again.resumed and len(again.candidates) == len(first.candidates)
    for x, y in zip(first.candidates, again.candidates):
        assert np.array_equal(x.positions, y.positions) and x.info["pool_id"] == y.info["pool_id"]
    assert again.record()["trust"] == first.record()["trust"]


def test_interrupted_stage_reruns_to_the_same_frames(tmp_path, committee_path):
    s = small_settings(steps=12, every=2, max_trajectories=2)
    starts = [bulk("Si", "diamond", a=5.431, cubic=True)]
    first = explore(s, 2, starts, committee_path, str(tmp_path / "a"), seed=3)
    assert first.candidates
    # killed after the frames were written but before the JSON (the commit point)
    other = tmp_path / "b"
    explore(s, 2, starts, committee_path, str(other), seed=3)
    os.remove(other / "iter_002.json")
    rerun = explore(s, 2, starts, committee_path, str(other), seed=3)
    assert not rerun.resumed
    assert [c.info["pool_id"] for c in rerun.candidates] == [c.info["pool_id"] for c in first.candidates]
    for x, y in zip(first.candidates, rerun.candidates):
        assert np.array_equal(x.positions, y.positions)


def test_register_adds_selected_frames_once_with_their_origin(tmp_path, committee_path):
    from alip.data.store import LabelStore

    res = explore(  # trust_lo low enough that at least two frames are candidates whatever the committee
        small_settings(trust_lo=0.01),
        0,
        [bulk("Si", "diamond", a=5.431, cubic=True)],
        committee_path,
        str(tmp_path),
        seed=1,
    )
    assert len(res.candidates) >= 2
    store = LabelStore(tmp_path / "labels.db")
    store.add_pool([bulk("Si", "diamond", a=5.431, cubic=True)])
    chosen = res.candidates[:2]
    ids = register(store, chosen)
    assert register(store, chosen) == ids and len(store) == 3
    row = store.get(ids[1])
    for key in (
        "explore_temperature",
        "explore_pressure",
        "explore_step",
        "explore_trajectory",
        "explore_seed",
        "explore_ensemble",
    ):
        assert row.info[key] == chosen[1].info[key]
    assert row.info["family"] == "explore"


def test_seeds_files_supercells_and_default_descriptors(tmp_path):
    from ase.io import write

    path = tmp_path / "seeds.extxyz"
    write(path, [bulk("Si", "diamond", a=5.431, cubic=True), bulk("SiC", "zincblende", a=4.36)])
    seeds = read_seeds(path)
    assert [len(a) for a in seeds] == [8, 2] and [a.info["explore_seed"] for a in seeds] == [0, 1]
    (tmp_path / "empty.extxyz").write_text("")
    with pytest.raises(ValueError, match="empty"):
        read_seeds(tmp_path / "empty.extxyz")
    with pytest.raises(FileNotFoundError, match="seeds file not found"):
        read_seeds(tmp_path / "missing.extxyz")
    assert len(make_supercell(seeds[1], [2, 2, 3])) == 24
    with pytest.raises(ValueError, match="supercell"):
        make_supercell(seeds[0], [2, 2])
    import alip

    assert default_acsf([14]) == alip.ACSF.default_si()
    sic = default_acsf([14, 6])
    assert sic.species == [6, 14] and sic.n_features == 2 * 12 + 3 * 24
    init = initial_structures(seeds, 5, seed=0, supercell=1)
    assert [len(a) for a in init] == [8, 2, 8, 2, 8]
    assert init[0].info["family"] == "seed_distortion"
    assert not np.allclose(init[0].positions, seeds[0].positions)
    again = initial_structures(seeds, 5, seed=0, supercell=1)
    assert all(np.array_equal(a.positions, b.positions) for a, b in zip(init, again))


def test_explore_table_refuses_bad_values():
    def cfg(**explore):
        return Config.from_dict({"explore": explore})

    assert cfg(enabled=True, temperatures=[300, 600]).explore.temperatures == [300, 600]
    with pytest.raises(ConfigError, match=r"trust_lo \(0.5 eV/Å\) must be >= 0 and below explore.trust_hi"):
        cfg(trust_lo=0.5, trust_hi=0.2)
    with pytest.raises(ConfigError, match="temperatures > 0"):
        cfg(temperatures=[300.0, 0.0])
    with pytest.raises(ConfigError, match="temperatures > 0"):
        cfg(temperatures=[])
    with pytest.raises(ConfigError, match="ensembles"):
        cfg(ensembles=["nve"])
    with pytest.raises(ConfigError, match="adaptive"):
        cfg(adaptive="sometimes")
    with pytest.raises(ConfigError, match="supercell"):
        cfg(supercell=[2, 2])
    with pytest.raises(ConfigError, match="unknown key 'temperature' in \\[explore\\]"):
        cfg(temperature=[300.0])


def test_only_physical_labeled_frames_start_new_trajectories():
    from alip.explore.stage import physical_starts

    si, sic = bulk("Si", "diamond", a=5.431, cubic=True), bulk("SiC", "zincblende", a=4.32, cubic=True)
    ref = [si, sic]
    ref_e = [-4.33 * 8, -6.16 * 8]  # eV per cell: the lowest per composition
    frames = [si.copy(), si.copy(), sic.copy(), sic.copy()]
    e = [(-4.33 + 0.3) * 8, (-4.33 + 0.7) * 8, (-6.16 + 0.4) * 8, float("nan")]
    kept = physical_starts(frames, e, ref, ref_e, max_above=0.5)
    assert [next(i for i, f in enumerate(frames) if f is k) for k in kept] == [
        0,
        2,
    ]  # 0.7 eV/atom above and the failed label are dropped
