"""alip.models.evaluation and `alip evaluate`: per-frame errors against an independent
computation (the members' predictions, the ASE calculator's stress), groups that partition the
frames, the written predictions, and bad input refused before anything is computed."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write
from ase.units import GPa

from alip.cli import main
from alip.data.oracles import make_oracle
from alip.data.structures import generate_si_pool
from alip.models.calculator import Calculator
from alip.models.evaluation import GROUP_KEYS, evaluate, group_labels
from alip.models.training import TrainConfig, errors, train_committee

SMALL = {"small_distortion": {"max_atoms": 16}, "large_distortion": {"max_atoms": 16}, "random": {"n_atoms": (8, 16)}}


def _labelled(n: int, seed: int) -> list[Atoms]:
    oracle = make_oracle("sw")
    out = []
    for a in generate_si_pool(n, seed=seed, family_kwargs=SMALL):
        b = a.copy()
        b.calc = oracle.make_calculator(b)
        a = a.copy()
        a.calc = SinglePointCalculator(
            a, energy=b.get_potential_energy(), forces=b.get_forces(), stress=b.get_stress(voigt=True)
        )
        out.append(a)
    return out


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("ev")
    train, test = _labelled(16, 1), _labelled(7, 2)
    cfg = TrainConfig(n_members=3, hidden=[8], epochs=5, lbfgs_steps=0, val_fraction=0, seed=0, threads=1)
    committee = train_committee(train, None, cfg).committee
    committee.save(d / "c.pt")
    write(d / "test.extxyz", test, format="extxyz")
    return {"dir": d, "committee": committee, "test": test}


def test_errors_against_the_members_and_the_calculator(setup):
    committee, test = setup["committee"], setup["test"]
    ev = evaluate(committee, test)
    pred = committee.predict(test)
    n = np.array([len(a) for a in test])
    labels_e = np.array([a.get_potential_energy() for a in test])
    assert ev.energy_error == pytest.approx(1e3 * (pred.energies.mean(0) - labels_e) / n)
    assert ev.energy_std == pytest.approx(1e3 * pred.energies.std(0) / n)
    labels_f = np.concatenate([a.get_forces() for a in test])
    assert np.allclose(ev.force_error, pred.forces.mean(0) - labels_f)
    assert np.allclose(ev.force_deviation, pred.force_deviation())
    for s, a in enumerate(test):  # stress: the ASE calculator's, Voigt, against the label
        b = a.copy()
        b.calc = Calculator(committee)
        assert np.allclose(ev.predicted_stress[s], b.get_stress(voigt=True), atol=1e-12)
        assert np.allclose(ev.stress_error[s], (b.get_stress(voigt=True) - a.get_stress(voigt=True)) / GPa, atol=1e-9)
    full = ev.summary()
    ref = errors(committee, test)  # training's own RMSEs (stress there over the 9 components)
    assert full["energy_rmse"] == pytest.approx(1e3 * ref["energy_rmse"])
    assert full["force_rmse"] == pytest.approx(ref["force_rmse"])
    assert full["energy_mae"] == pytest.approx(np.mean(np.abs(ev.energy_error)))
    assert full["energy_mean"] == pytest.approx(np.mean(ev.energy_error))
    assert full["stress_rmse"] == pytest.approx(np.sqrt(np.mean(ev.stress_error**2)))
    assert full["force_deviation_max"] == pytest.approx(ev.force_deviation.max())
    assert full["n"] == len(test) and full["n_stress"] == len(test)


def test_groups_partition_the_frames(setup):
    ev = evaluate(setup["committee"], setup["test"])
    groups = ["a", "b", "a", "c", "b", "a", "c"]
    table = ev.by_group(groups)
    assert list(table) == ["a", "b", "c"] and sum(r["n"] for r in table.values()) == 7
    whole = sum(r["n"] * r["energy_rmse"] ** 2 for r in table.values()) / 7
    assert np.sqrt(whole) == pytest.approx(ev.summary()["energy_rmse"])
    assert table["b"]["energy_rmse"] == pytest.approx(np.sqrt(np.mean(ev.energy_error[[1, 4]] ** 2)))
    with pytest.raises(ValueError, match="3 group names for 7 frames"):
        ev.by_group(["a", "b", "c"])


def test_group_labels_choose_the_key():
    frames = [Atoms("Si"), Atoms("Si"), Atoms("Si")]
    assert group_labels(frames) is None and group_labels(frames, "none") is None
    frames[0].info["family"], frames[1].info["group"] = "rnd", "AIMD"
    assert GROUP_KEYS.index("group") < GROUP_KEYS.index("family")
    assert group_labels(frames) == ("group", ["(none)", "AIMD", "(none)"])
    assert group_labels(frames, "family") == ("family", ["rnd", "(none)", "(none)"])
    frames[2].info["config_type"] = "liquid"
    assert group_labels(frames)[0] == "config_type"


def test_frames_without_stress_or_cell():
    committee = train_committee(
        _labelled(6, 3), None, TrainConfig(n_members=2, hidden=[4], epochs=1, lbfgs_steps=0, val_fraction=0)
    ).committee
    cluster = Atoms("Si3", positions=[[0, 0, 0], [2.3, 0, 0], [0, 2.3, 0]])
    cluster.calc = SinglePointCalculator(cluster, energy=-10.0, forces=np.zeros((3, 3)))
    ev = evaluate(committee, [cluster])
    assert np.isnan(ev.stress_error).all() and np.isnan(ev.predicted_stress).all()
    s = ev.summary()
    assert np.isnan(s["stress_rmse"]) and s["n_stress"] == 0 and np.isfinite(s["energy_rmse"])
    with pytest.raises(ValueError, match="no frames"):
        evaluate(committee, [])


def _cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def test_cli_table_predictions_and_json(setup):
    d, committee, test = setup["dir"], setup["committee"], setup["test"]
    code, out, err = _cli(
        ["evaluate", str(d / "c.pt"), str(d / "test.extxyz"), "--out", str(d / "p.extxyz"), "--json", str(d / "e.json")]
    )
    assert code == 0, err
    ev = evaluate(committee, test)
    full = ev.summary()
    assert f"| all | 7 | {full['energy_rmse']:.2f} | {full['energy_mae']:.2f} | {full['energy_mean']:+.2f} |" in out
    families = group_labels(test)
    assert families[0] == "family"
    for name, r in ev.by_group(families[1]).items():
        assert f"| family: {name} | {r['n']} | {r['energy_rmse']:.2f} |" in out
    record = json.loads((d / "e.json").read_text())
    assert record["groups"]["all"]["force_rmse"] == pytest.approx(full["force_rmse"])
    written = read(d / "p.extxyz", ":")
    assert len(written) == 7
    for s, (a, src) in enumerate(zip(written, test, strict=True)):
        assert a.get_potential_energy() == pytest.approx(src.get_potential_energy())  # the labels are kept
        assert np.allclose(a.get_forces(), src.get_forces())
        assert a.info["alip_energy"] == pytest.approx(ev.predicted_energy[s])
        sl = slice(ev.offsets[s], ev.offsets[s + 1])  # the file's positions carry 8 decimals
        assert np.allclose(a.arrays["alip_forces"], ev.predicted_forces[sl], atol=1e-6)
        assert np.allclose(a.arrays["alip_force_deviation"], ev.force_deviation[sl], atol=1e-6)
        assert np.allclose(a.info["alip_stress"], ev.predicted_stress[s], atol=1e-8)
    code, out, _ = _cli(["evaluate", str(d / "c.pt"), str(d / "test.extxyz"), "--by", "none"])
    assert code == 0 and "family:" not in out and "| all | 7 |" in out
    code, out, err = _cli(["evaluate", str(d / "c.pt"), str(d / "test.extxyz"), "--plots", str(d / "fig")])
    assert code == 0, err
    for name in ("parity.png", "uncertainty_vs_error.png"):
        assert (d / "fig" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_groups_of_other_names_get_distinct_colors(monkeypatch):
    from alip.reports import plots
    from alip.reports.plots import FAMILY_COLORS, family_color

    monkeypatch.setattr(plots, "_other_families", {})  # as in a fresh process

    names = ["AIMD-NVT", "Elastic", "Surface", "Vacancy", "md_300K"]
    colors = [family_color(n) for n in names]
    assert len(set(colors)) == len(names) and not set(colors) & set(FAMILY_COLORS.values())
    assert [family_color(n) for n in reversed(names)] == colors[::-1]  # a name keeps its color
    assert family_color("random") == FAMILY_COLORS["random"]


def test_cli_refuses_bad_input_before_computing(setup, tmp_path):
    d, test = setup["dir"], setup["test"]
    unlabelled = [a.copy() for a in test[:3]]  # no calculator: no labels
    write(tmp_path / "u.extxyz", unlabelled, format="extxyz")
    code, _, err = _cli(["evaluate", str(d / "c.pt"), str(tmp_path / "u.extxyz")])
    assert code == 2 and "alip evaluate: error:" in err and "frame 0" in err
    carbon = test[0].copy()
    carbon.numbers[0] = 6
    carbon.calc = SinglePointCalculator(carbon, energy=-1.0, forces=np.zeros((len(carbon), 3)))
    write(tmp_path / "c.extxyz", [test[1], carbon], format="extxyz")
    code, _, err = _cli(["evaluate", str(d / "c.pt"), str(tmp_path / "c.extxyz")])
    assert code == 2 and "frame 1" in err and "Z=6" in err
    code, _, err = _cli(["evaluate", str(tmp_path / "none.pt"), str(d / "test.extxyz")])
    assert code == 2 and "no committee file" in err
    (tmp_path / "o.extxyz").write_text("keep")
    code, _, err = _cli(["evaluate", str(d / "c.pt"), str(d / "test.extxyz"), "--out", str(tmp_path / "o.extxyz")])
    assert code == 2 and "exists" in err and (tmp_path / "o.extxyz").read_text() == "keep"
    code, _, err = _cli(["evaluate", str(d / "c.pt"), str(d / "test.extxyz"), "--out", str(tmp_path / "o.csv")])
    assert code == 2 and ".extxyz" in err and not (tmp_path / "o.csv").exists()


def _clusters(n: int) -> list[Atoms]:
    oracle = make_oracle("sw")
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        a = Atoms("Si4", positions=[[0, 0, 0], [2.35, 0, 0], [0, 2.35, 0], [0, 0, 2.35]] + rng.normal(0, 0.05, (4, 3)))
        e, f, _ = oracle.compute(a.copy())
        a.calc = SinglePointCalculator(a, energy=e, forces=f)
        out.append(a)
    return out


def test_summary_takes_a_mask_or_indices(setup):
    ev = evaluate(setup["committee"], setup["test"])
    mask = np.zeros(7, bool)
    mask[[2, 5]] = True
    assert ev.summary(mask) == ev.summary([2, 5])
    assert ev.summary(mask)["n"] == 2
    with pytest.raises(ValueError, match="7 entries"):
        ev.summary(np.ones(3, bool))


def test_cli_json_is_strict_and_groups_without_stress_are_null(setup, tmp_path):
    d, test = setup["dir"], setup["test"]
    frames = []
    for k, a in enumerate(test):
        b = a.copy()
        if k < 3:  # no stress label: their group has no stress error
            b.calc = SinglePointCalculator(b, energy=a.get_potential_energy(), forces=a.get_forces())
            b.info["config_type"] = "no stress"
        else:
            b.calc = a.calc
            b.info["config_type"] = "with stress"
        frames.append(b)
    write(tmp_path / "mixed.extxyz", frames, format="extxyz")
    code, out, err = _cli(
        ["evaluate", str(d / "c.pt"), str(tmp_path / "mixed.extxyz"), "--json", str(tmp_path / "e.json")]
    )
    assert code == 0, err
    assert "| config_type: no stress | 3 |" in out and "— |" in out

    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    record = json.loads((tmp_path / "e.json").read_text(), parse_constant=refuse)
    assert record["by"] == "config_type"
    assert record["groups"]["config_type: no stress"]["stress_rmse"] is None
    assert record["groups"]["config_type: with stress"]["n_stress"] == 4
    assert record["groups"]["all"]["n_stress"] == 4


def test_cli_outputs_that_cannot_be_written_stop_before_computing(setup, tmp_path):
    d = setup["dir"]
    args = ["evaluate", str(d / "c.pt"), str(d / "test.extxyz")]
    for extra, message in (
        (["--out", str(tmp_path / "nodir" / "p.extxyz")], "does not exist"),
        (["--json", str(tmp_path / "nodir" / "e.json")], "does not exist"),
        (["--json", str(tmp_path)], "is a directory"),
    ):
        code, out, err = _cli(args + extra)
        assert code == 2 and message in err and "| all |" not in out
    (tmp_path / "afile").write_text("")
    code, out, err = _cli(args + ["--plots", str(tmp_path / "afile")])
    assert code == 2 and "is a file" in err and "| all |" not in out


def test_cli_clusters_need_allow_nonperiodic(setup, tmp_path):
    write(tmp_path / "clusters.extxyz", _clusters(3), format="extxyz")
    args = ["evaluate", str(setup["dir"] / "c.pt"), str(tmp_path / "clusters.extxyz")]
    code, _, err = _cli(args)
    assert code == 2 and "--allow-nonperiodic" in err
    code, out, err = _cli(args + ["--allow-nonperiodic"])
    assert code == 0 and "| all | 3 |" in out, err


def test_train_accepts_clusters_with_allow_nonperiodic(tmp_path):
    write(tmp_path / "clusters.extxyz", _clusters(6), format="extxyz")
    args = ["train", str(tmp_path / "clusters.extxyz"), "-o", str(tmp_path / "c.pt"), "--members", "2"]
    args += ["--hidden", "4", "--epochs", "2", "--lbfgs-steps", "0", "--val-fraction", "0", "--no-progress"]
    code, _, err = _cli(args)
    assert code == 2 and "--allow-nonperiodic" in err and not (tmp_path / "c.pt").exists()
    code, out, err = _cli(args + ["--allow-nonperiodic"])
    assert code == 0 and (tmp_path / "c.pt").exists(), err


def test_train_with_a_test_file_prints_evaluate_s_table_and_checks_it_first(setup, tmp_path):
    from alip.models.committee import Committee
    from alip.models.evaluation import error_table, markdown_rows

    d = setup["dir"]
    write(tmp_path / "train.extxyz", _labelled(10, 4), format="extxyz")
    args = ["train", str(tmp_path / "train.extxyz"), "-o", str(tmp_path / "c.pt"), "--members", "2", "--hidden", "4"]
    args += ["--epochs", "2", "--lbfgs-steps", "0", "--val-fraction", "0", "--no-progress"]
    code, out, err = _cli(args + ["--test", str(d / "test.extxyz")])
    assert code == 0, err
    test = read(d / "test.extxyz", ":")
    ev = evaluate(Committee.load(tmp_path / "c.pt"), test)
    assert "\n".join(markdown_rows(error_table(ev, group_labels(test)))) in out
    unlabelled = [a.copy() for a in test[:2]]
    write(tmp_path / "u.extxyz", unlabelled, format="extxyz")
    code, out, err = _cli(args + ["--test", str(tmp_path / "u.extxyz"), "-o", str(tmp_path / "d.pt")])
    assert code == 2 and "u.extxyz" in err and "frame 0" in err
    assert not (tmp_path / "d.pt").exists() and "trained" not in out  # refused before training
