"""Figures of the report: each plot function draws a real, non-blank image from data loaded
out of a small synthetic run directory; the helpers behind them give known numbers."""

from __future__ import annotations

import math

import matplotlib.image as mpimg
import numpy as np
import pytest
from run_fixtures import curve_value, write_run_dir

from alip.reports import plots, report


def _assert_image(path, min_px=(300, 300)):
    """A PNG that exists, is large enough and is not one flat color."""
    img = mpimg.imread(path)
    h, w = img.shape[:2]
    assert h >= min_px[0] and w >= min_px[1], (h, w)
    rgb = img[..., :3]
    assert rgb.std() > 0.05  # not blank
    assert (rgb < 0.5).mean() > 0.002  # some dark ink (text, lines)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = write_run_dir(tmp_path_factory.mktemp("runs") / "qbc_seed0", n_iterations=3)
    return report.load_run(path)


@pytest.fixture(scope="module")
def prediction(run):
    committee = report.load_committee(run.checkpoint())
    return report.predict_test_set(committee, report.read_test_set(run), "qbc")


def test_learning_curves_from_run_dir(run, tmp_path):
    rows = report.learning_rows(run.path, [run])
    assert [r["n_labels"] for r in rows] == [8, 12, 16]
    assert rows[-1]["energy_rmse_mev_per_atom"] == pytest.approx(curve_value("qbc", 0, 16, "energy_rmse_mev_per_atom"))
    _assert_image(plots.plot_learning_curves(rows, tmp_path / "lc.png"))


def test_aggregate_learning_curves_mean_std_over_seeds():
    rows = [
        {
            "strategy": "qbc",
            "seed": s,
            "iteration": i,
            "n_labels": 10 * (i + 1),
            "energy_rmse_mev_per_atom": 100.0 / (i + 1) + s,
        }
        for s in (0, 1, 2)
        for i in range(3)
    ]
    rows.append({"strategy": "random", "seed": 0, "iteration": 0, "n_labels": 10, "energy_rmse_mev_per_atom": math.nan})
    agg = plots.aggregate_learning_curves(rows, "energy_rmse_mev_per_atom")
    assert set(agg) == {"qbc"}  # NaN-only strategies are dropped
    np.testing.assert_allclose(agg["qbc"]["n_labels"], [10, 20, 30])
    np.testing.assert_allclose(agg["qbc"]["mean"], [101, 51, 100 / 3 + 1])
    np.testing.assert_allclose(agg["qbc"]["std"], np.full(3, 1.0))  # sample std of 0, 1, 2
    np.testing.assert_array_equal(agg["qbc"]["n_seeds"], [3, 3, 3])
    with pytest.raises(ValueError):
        plots.plot_learning_curves(rows[-1:], "/nonexistent/x.png")


def test_ev_curve_model_against_oracle(run, tmp_path):
    oracle = report.reference_ev(run, tmp_path / "ev_oracle.json")  # 4 stored points: too few, call SW
    assert oracle.label == "oracle (sw)" and len(oracle.volumes) == 15
    assert (tmp_path / "ev_oracle.json").is_file()
    cells = report.diamond_cells(volumes=oracle.volumes)
    assert oracle.fit["a0"] == pytest.approx(5.431, abs=2e-3)  # Stillinger–Weber's lattice constant
    assert oracle.fit["e0"] == pytest.approx(-4.3366, abs=1e-3)  # -2 epsilon per atom
    model = report.model_ev(report.load_committee(run.checkpoint()), cells, "qbc")
    assert model.spread.shape == model.energies.shape and (model.spread > 0).all()
    np.testing.assert_allclose(model.volumes, oracle.volumes)
    _assert_image(plots.plot_ev_curve(oracle, [model], tmp_path / "ev.png"))
    _assert_image(plots.plot_ev_curve(None, [model], tmp_path / "ev_model_only.png"))


def test_parity_and_uncertainty_from_test_set(run, prediction, tmp_path):
    p = prediction
    test = report.read_test_set(run)
    assert len(p.e_true) == len(test) and len(p.f_true) == sum(len(a) for a in test)
    assert set(p.families) == {"volume", "small_distortion", "large_distortion", "random"}
    # the committee mean equals the mean of the members' predictions
    c = report.load_committee(run.checkpoint())
    pred = c.predict(test[:2])
    np.testing.assert_allclose(p.e_pred[:2], pred.energies.mean(0) / pred.n_atoms)
    assert (p.e_std >= 0).all() and (p.f_dev >= 0).all()
    _assert_image(plots.plot_parity([p], tmp_path / "parity.png"))
    _assert_image(plots.plot_uncertainty_vs_error([p, p], tmp_path / "unc.png"))


def test_selection_over_time_from_iterations(run, tmp_path):
    sel, n_runs = report.selections([run])
    assert n_runs == {"qbc": 1}
    picked = {it: sum(c.values()) for it, c in sel["qbc"].items()}
    assert picked == {0: 4, 1: 4}  # batch of 4, the last iteration selects nothing
    for rec in run.iterations[:-1]:
        fams = rec["selected_families"]
        assert sel["qbc"][rec["iteration"]] == {f: float(fams.count(f)) for f in set(fams)}
    _assert_image(plots.plot_selection_over_time(sel, tmp_path / "sel.png", n_runs, {"volume": 0.5, "random": 0.5}))


def test_descriptor_violins_by_family_and_iteration(run, tmp_path):
    import alip

    acsf = alip.ACSF.default_si()
    pool = report.pool_structures(run)
    groups = report.family_groups(acsf, pool)
    assert list(groups) == ["volume", "small_distortion", "large_distortion", "random"]
    assert sum(len(v) for v in groups.values()) == sum(len(a) for a in pool)
    _assert_image(
        plots.plot_descriptor_violins(groups, acsf.feature_labels(), tmp_path / "vf.png", "t"), min_px=(1000, 1000)
    )
    it_groups, colors = report.iteration_groups(acsf, run, pool)
    assert list(it_groups) == ["pool (all)", "initial set", "iter 0", "iter 1"]
    assert len(it_groups["initial set"]) == sum(
        len(a) for a in pool if a.info["pool_id"] in run.iterations[0]["labeled_this_iteration"]
    )
    _assert_image(
        plots.plot_descriptor_violins(it_groups, acsf.feature_labels(), tmp_path / "vi.png", "t", colors=colors),
        min_px=(1000, 1000),
    )


def test_violins_survive_constant_and_empty_groups(tmp_path):
    labels = ["G2[Si](eta=0,rs=0)", "G4[Si-Si](eta=0.01,zeta=2,lambda=-1)", "G2[Si](eta=4,rs=2.2)"]
    rng = np.random.default_rng(0)
    groups = {
        "volume": np.ones((8, 3)),
        "random": rng.normal(size=(50, 3)),
        "empty": np.zeros((0, 3)),
        "one atom": rng.normal(size=(1, 3)),
    }
    _assert_image(plots.plot_descriptor_violins(groups, labels, tmp_path / "v.png", "degenerate"), min_px=(200, 300))
    with pytest.raises(ValueError):
        plots.plot_descriptor_violins({"x": np.zeros((3, 2))}, labels, tmp_path / "bad.png", "bad")


def test_kde_is_a_normalised_gaussian_density():
    x = np.random.default_rng(1).normal(2.0, 0.5, size=20000)
    grid = np.linspace(-1, 5, 601)
    d = plots.kde_1d(x, grid)
    assert np.trapezoid(d, grid) == pytest.approx(1.0, abs=2e-3)
    exact = np.exp(-0.5 * ((grid - 2.0) / 0.5) ** 2) / (0.5 * np.sqrt(2 * np.pi))
    assert np.abs(d - exact).max() < 0.03 * exact.max()
    with pytest.raises(ValueError):
        plots.kde_1d(np.ones(5), grid)


def test_feature_labels_shortened():
    assert plots.short_feature_label("G4[Si-Si](eta=0.01,zeta=2,lambda=-1)") == "G4 η=0.01 ζ=2 λ=−1"
    assert plots.short_feature_label("G2[Si](eta=0.04,rs=0)") == "G2 η=0.04"
    assert plots.short_feature_label("G2[Si](eta=4,rs=2.2)") == "G2 η=4 rₛ=2.2"
    assert plots.short_feature_label("G5[O-Si](eta=0.1,zeta=1,lambda=+1)") == "G5[O-Si] η=0.1 ζ=1 λ=1"
    assert plots.short_feature_label("custom") == "custom"


def test_calibration_helpers_on_known_data():
    spread = np.arange(1.0, 25.0)
    err = 2 * spread
    bx, by = plots.binned_error(spread, err, n_bins=4)
    np.testing.assert_allclose(bx, [3.5, 9.5, 15.5, 21.5])
    assert (np.diff(by) > 0).all() and by[0] == pytest.approx(np.sqrt(np.mean((2 * np.arange(1, 7)) ** 2)))
    assert plots.spearman(spread, err) == pytest.approx(1.0)
    assert plots.spearman(spread, -err) == pytest.approx(-1.0)
    assert math.isnan(plots.spearman(spread[:2], err[:2]))
