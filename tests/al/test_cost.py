"""Cost-aware acquisition (alip.al.cost): the ranking by score per label cost on hand-made
numbers, the power law fitted to measured label times, the loop's selections against an
independent recomputation, and bad values refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import bulk
from run_fixtures import TINY_LOOP as TINY

from alip.al.acquisition import qbc_scores, select_batch
from alip.al.cost import CostModel, cost_aware_scores, cost_model, fit_power_law
from alip.al.loop import run
from alip.config import Config, ConfigError
from alip.data.oracles import Label
from alip.data.store import LabelStore
from alip.models.committee import Committee


def test_ranking_divides_the_score_by_the_label_cost():
    scores = np.array([1.0, 3.0, 8.0, 0.5])
    n_atoms = [8, 16, 32, 8]
    costs = cost_model("atoms3").cost(n_atoms)
    np.testing.assert_array_equal(costs, [512.0, 4096.0, 32768.0, 512.0])
    ranking = cost_aware_scores(scores, costs)
    # plain: the 32-atom cell first; per cost: the small cells, whose labels are 8-64x cheaper
    assert list(select_batch(scores, None, 2, "none")) == [2, 1]
    assert list(select_batch(ranking, None, 2, "none")) == [0, 3]
    np.testing.assert_allclose(ranking, [1 / 512, 3 / 4096, 8 / 32768, 0.5 / 512])
    # equal sizes: the cost changes nothing
    same = cost_model("atoms3").cost([16] * 4)
    assert list(select_batch(cost_aware_scores(scores, same), None, 4, "none")) == [2, 1, 0, 3]
    assert (cost_model("none").cost(n_atoms) == 1).all()


def test_measured_cost_is_a_power_law_fitted_to_the_label_times():
    rng = np.random.default_rng(0)
    n = np.repeat([8, 16, 32, 64], 5)
    t = 2e-3 * n**2.5 * np.exp(rng.normal(0, 0.05, len(n)))
    model = fit_power_law(n, t)
    assert model.fitted and model.n_labels == 20 and model.kind == "measured"
    assert model.exponent == pytest.approx(2.5, abs=0.05)
    assert model.prefactor == pytest.approx(2e-3, rel=0.15)
    assert model.cost([128])[0] == pytest.approx(2e-3 * 128**2.5, rel=0.15)
    # one size: the exponent cannot be fitted (3 is used), the prefactor still can
    one = fit_power_law([8, 8, 8], [0.5, 0.5, 0.5])
    assert not one.fitted and one.exponent == 3.0 and one.cost([8])[0] == pytest.approx(0.5)
    # a cheap, noisy oracle whose times fall with size: never a negative exponent
    assert fit_power_law([8, 16, 32], [3.0, 2.0, 1.0]).exponent == 0.0


def test_store_records_the_time_of_every_paid_label(tmp_path):
    store = LabelStore(tmp_path / "labels.db")
    cells = [bulk("Si", "diamond", a=5.43, cubic=True).repeat((k, 1, 1)) for k in (1, 2, 3)]
    ids = store.add_pool(cells)
    for pid, atoms, seconds in zip(ids[:2], cells, [0.4, 1.7]):
        store.record(pid, Label("labeled", -1.0, np.zeros((len(atoms), 3)), None, seconds), oracle="sw")
    imported = cells[0].copy()
    from ase.calculators.singlepoint import SinglePointCalculator

    imported.calc = SinglePointCalculator(imported, energy=-1.0, forces=np.zeros((8, 3)))
    store.add_labeled([imported])  # no oracle time: not counted
    n, t = store.label_times()
    np.testing.assert_array_equal(n, [8, 16])
    np.testing.assert_allclose(t, [0.4, 1.7])


@pytest.mark.parametrize("kind", ["atoms3", "measured"])
def test_loop_selects_by_score_per_cost(tmp_path, kind):
    data = json.loads(json.dumps(TINY))
    data["run"]["out"] = str(tmp_path / "run")
    data["acquisition"] = {"cost": kind, "diversity": "none"}
    result = run(data)
    assert result.stop_reason == "budget spent"
    store = LabelStore(tmp_path / "run" / "labels.db")
    records = [json.loads(p.read_text()) for p in sorted((tmp_path / "run" / "iterations").glob("iter_*.json"))]
    rec = records[0]
    model = CostModel(**rec["cost"]["model"])
    assert model.kind == kind
    if kind == "measured":  # fitted on the 6 initial labels' recorded times
        assert model.n_labels == 6
        initial = store.meta["initial"]
        times = [store.get_label(i).wall_time for i in initial]
        ref = fit_power_law([len(store.get(i)) for i in initial], times)
        assert (model.exponent, model.prefactor) == pytest.approx((ref.exponent, ref.prefactor), rel=1e-9)
    # independent recomputation: the iteration-0 committee's QBC scores of the pool at that
    # moment, divided by the cost model, top 3
    com = Committee.load(tmp_path / "run" / rec["checkpoint"])
    before = sorted(set(store.ids()) - set(store.meta["initial"]))
    pool = [store.get(i) for i in before]
    scores = qbc_scores(com.predict(pool), "force")
    per_cost = scores / model.cost([len(a) for a in pool])
    expected = [before[i] for i in np.argsort(-per_cost, kind="stable")[:3]]
    assert rec["selected"] == expected
    np.testing.assert_allclose(rec["cost"]["selected_costs"], model.cost([len(store.get(i)) for i in expected]))
    np.testing.assert_allclose(rec["selected_scores"], scores[[before.index(i) for i in expected]], rtol=1e-9)


def test_bad_cost_values_are_refused():
    with pytest.raises(ConfigError, match=r"acquisition.cost must be one of \['none', 'atoms3', 'measured'\]"):
        Config.from_dict({"acquisition": {"cost": "n3"}})
    with pytest.raises(ValueError, match="cost must be one of"):
        cost_model("seconds")
    with pytest.raises(ValueError, match="at least one label paid"):
        fit_power_law([], [])
    with pytest.raises(ValueError, match="needs the atom counts and seconds"):
        cost_model("measured")
    with pytest.raises(ValueError, match="label times must be finite and > 0"):
        fit_power_law([8, 16], [0.1, -1.0])
    with pytest.raises(ValueError, match="atom counts >= 1"):
        fit_power_law([0, 16], [0.1, 1.0])
    with pytest.raises(ValueError, match="finite scores >= 0"):
        cost_aware_scores([1.0, -0.5], [1.0, 1.0])
    with pytest.raises(ValueError, match="label costs must be finite and > 0"):
        cost_aware_scores([1.0, 0.5], [1.0, 0.0])
    with pytest.raises(ValueError, match="n_atoms must be a 1-d array of atom counts >= 1"):
        cost_model("atoms3").cost([0, 8])
