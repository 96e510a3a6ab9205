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


def test_model_names_give_their_training_overrides_and_energy_weights(div, capsys):
    assert div.model_spec("default") == ({}, None)
    assert div.model_spec("wide")[0] == {"hidden": [64, 64]}
    assert div.model_spec("energy4") == ({"weight_energy": 4.0}, None)
    assert div.model_spec("energy0.5") == ({"weight_energy": 0.5}, None)
    for bad in ("energy", "energy0", "energy-1", "energy4x", "nonsense", "select0", "select", "cutoff2", "cutoffx"):
        assert div.model_spec(bad) is None
    overrides, acsf = div.model_spec("cutoff6.5")
    assert overrides == {} and acsf.cutoff == 6.5
    from alip.core.descriptors import ACSF

    default = ACSF.training_default().to_dict()
    assert acsf.to_dict() == default | {"cutoff": 6.5}  # the default functions, only the cutoff moved
    overrides, choose = div.model_spec("select8")
    assert overrides == {} and callable(choose)
    with pytest.raises(ValueError, match="unknown model 'energyx'"):
        div.train_and_score([], [], "energyx")
    # an unknown name stops before the data are read (a known one reaches the missing file)
    with pytest.raises(SystemExit):
        div.main(["--data", "/nonexistent", "--models", "default,energyx"])
    assert "unknown model 'energyx'" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError):
        div.main(["--data", "/nonexistent", "--models", "default,energy4"])
    with pytest.raises(SystemExit):
        div.main(["--data", "/nonexistent", "--threads", "0"])
    assert "threads must be 'auto' or a positive integer" in capsys.readouterr().err


def test_relabel_in_order_resumes_without_paying_twice_and_exports_against_its_diamond(div, small_set, tmp_path):
    from alip.data.oracles import make_oracle
    from alip.data.store import LabelStore

    frames, _ = small_set
    jobs = div.relabel_jobs(frames, per_cell=2, seed=3)
    cells = [j.info["cell"] for j in jobs]
    assert len(jobs) == sum(min(2, sum(f.info["cell"] == c for f in frames)) for c in set(cells))
    assert [c for i, c in enumerate(cells) if i == 0 or c != cells[i - 1]] == list(dict.fromkeys(cells))  # whole cells
    test_cells = {f.info["cell"] for f in div.split_by_cell(frames)[1]}
    assert all((j.info["split"] == "test") == (j.info["cell"] in test_cells) for j in jobs)

    out = str(tmp_path / "relabelled")
    oracle = {"type": "sw"}  # the test's cheap "new" oracle; the source labels were SW's too
    div.relabel(frames, out, oracle, per_cell=2, max_labels=3, workers=1, seed=3)
    store = LabelStore(f"{out}/labels.db")
    assert store.ids("labeled") == [0, 1, 2, 3]  # the diamond reference, then the selection in order
    first = store.get_label(1)
    div.relabel(frames, out, oracle, per_cell=2, workers=1, seed=3)  # resumes: the rest only
    assert store.counts()["labeled"] == len(jobs) + 1
    assert store.get_label(1).energy == first.energy and store.get_label(1).wall_time == first.wall_time
    with pytest.raises(SystemExit, match="another selection"):
        div.relabel(frames, out, oracle, per_cell=3, workers=1, seed=3)

    train, test = div.export_relabelled(out, max_above=0.5)
    e_ref = make_oracle("sw").compute(bulk("Si", "diamond", a=div.DIAMOND_A0))[0] / 2
    kept = train + test
    assert kept and all(a.info["above_diamond"] <= 0.5 for a in kept)
    for a in kept:
        assert a.info["above_diamond"] == pytest.approx(a.get_potential_energy() / len(a) - e_ref, abs=1e-9)
        assert a.info["above_source"] == pytest.approx(a.info["above_diamond"] + e_ref - small_set[1], abs=1e-6)
    n_above = sum(
        LabelStore(f"{out}/labels.db").get(i).get_potential_energy() / len(j) - e_ref > 0.5
        for i, j in zip(range(1, len(jobs) + 1), jobs)
    )
    assert len(kept) == len(jobs) - n_above
    assert {a.info["split"] for a in test} <= {"test"} and {a.info["split"] for a in train} == {"train"}
    prefix = div.export_relabelled(out, max_above=1.0, max_labels=3)  # what a run with max_labels=3 labelled
    assert sorted(a.info["pool_id"] for part in prefix for a in part) == [1, 2, 3]


def test_oracle_diamond_finds_stillinger_webers_lattice_constant_and_bulk_modulus(div):
    d = div.oracle_diamond({"type": "sw"})
    assert d["a0"] == pytest.approx(5.431, abs=2e-3)  # SW's minimum
    assert d["B0"] == pytest.approx((151.4 + 2 * 76.4) / 3, rel=0.02)  # (C11 + 2 C12) / 3, published


def test_label_differences_set_two_stores_of_one_selection_side_by_side(div, small_set, tmp_path):
    frames, _ = small_set
    a, b = str(tmp_path / "sw"), str(tmp_path / "kumagai")
    div.relabel(frames, a, {"type": "sw"}, per_cell=1, max_labels=3, workers=1, seed=3)
    div.relabel(frames, b, {"type": "manybody", "potential": "kumagai"}, per_cell=1, max_labels=2, workers=1, seed=3)
    d = div.label_differences(a, b)
    assert sorted(d["rows"]) == [0, 1, 2] and d["n"] == 2  # the ids labelled in both
    from alip.data.store import LabelStore

    sa, sb = LabelStore(f"{a}/labels.db"), LabelStore(f"{b}/labels.db")
    de = []
    for i in (0, 1, 2):
        x, y = sa.get(i), sb.get(i)
        de.append(1e3 * (y.get_potential_energy() - x.get_potential_energy()) / len(x))
        assert d["rows"][i][0] == pytest.approx(de[-1], abs=1e-9)
        assert d["rows"][i][1] == pytest.approx(np.sqrt(np.mean((y.get_forces() - x.get_forces()) ** 2)), abs=1e-12)
    assert d["diamond_mev"] == pytest.approx(de[0], abs=1e-9)
    assert d["energy_std_mev"] == pytest.approx(np.std(de[1:]), abs=1e-9)
    assert d["energy_range_mev"] == pytest.approx((min(de[1:]), max(de[1:])), abs=1e-9)
    assert d["force_rms"] == pytest.approx(np.sqrt(np.mean([d["rows"][i][1] ** 2 for i in (1, 2)])), abs=1e-12)
    c = str(tmp_path / "other")
    div.relabel(frames, c, {"type": "sw"}, per_cell=2, max_labels=1, workers=1, seed=3)
    with pytest.raises(SystemExit, match="different selections"):
        div.label_differences(a, c)


def test_selected_descriptor_is_chosen_on_the_training_frames(div, small_set):
    frames, _ = small_set
    _, choose = div.model_spec("select8")
    acsf = choose(frames)
    assert acsf.n_features == 8
    assert acsf.species == [14]
