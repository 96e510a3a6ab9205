"""`alip report`: a report rebuilt from the files of a run or of a comparison links every
image it writes, and its summary holds the numbers in those files."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from ase.build import bulk
from ase.units import GPa
from run_fixtures import curve_value, labeled, write_compare_dir, write_run_dir

from alip.data.io import attach_label, write_extxyz
from alip.data.store import LabelStore
from alip.reports import report

FIGURES = [
    "learning_curves.png",
    "ev_curve.png",
    "parity.png",
    "uncertainty_vs_error.png",
    "selection_over_time.png",
    "violins_by_family.png",
]


def _linked_images(index):
    return set(re.findall(r"<img src='([^']+)'", index.read_text()))


@pytest.fixture(scope="module")
def compare_dir(tmp_path_factory):
    return write_compare_dir(tmp_path_factory.mktemp("cmp") / "compare", ("qbc", "random"), seeds=2, n_iterations=3)


def test_compare_report_links_every_image_and_aggregates_seeds(compare_dir):
    index = report.build_report(compare_dir, progress=False, strict=True, descriptor_sample=32)
    out = compare_dir / "report"
    assert index == out / "index.html"
    pngs = {p.name for p in out.glob("*.png")}
    assert set(FIGURES) | {"violins_selected_qbc.png", "violins_selected_random.png"} == pngs
    assert _linked_images(index) == pngs
    for name in pngs:
        assert (out / name).stat().st_size > 20_000, name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kind"] == "compare" and summary["failures"] == {}
    assert sorted(summary["runs"]) == ["qbc_seed0", "qbc_seed1", "random_seed0", "random_seed1"]
    for strategy in ("qbc", "random"):
        st = summary["strategies"][strategy]
        assert st["n_seeds"] == 2 and st["n_labels"]["mean"] == 16
        finals = [curve_value(strategy, s, 16, "energy_rmse_mev_per_atom") for s in (0, 1)]
        assert st["energy_rmse_mev_per_atom"]["mean"] == pytest.approx(np.mean(finals))
        assert st["energy_rmse_mev_per_atom"]["std"] == pytest.approx(np.std(finals, ddof=1))
    assert summary["oracle_ev"]["label"] == "oracle (sw)"
    assert summary["oracle_ev"]["fit"]["a0"] == pytest.approx(5.431, abs=2e-3)
    # every run's final committee was fitted; both seeds use the same checkpoint here
    assert set(summary["ev_models"]) == {"qbc seed 0", "qbc seed 1", "random seed 0", "random seed 1"}
    html = index.read_text()
    assert "qbc" in html and "random" in html and "a₀ (Å)" in html


def test_single_run_report_and_rebuild_from_files(tmp_path):
    run = write_run_dir(tmp_path / "run", strategy="emc", seed=3, n_iterations=2)
    index = report.build_report(run, progress=False, strict=True, descriptor_sample=32)
    out = run / "report"
    pngs = {p.name for p in out.glob("*.png")}
    assert set(FIGURES) | {"violins_selected_emc.png"} == pngs == _linked_images(index)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kind"] == "run" and list(summary["strategies"]) == ["emc"]
    st = summary["strategies"]["emc"]
    assert st["n_labels"]["mean"] == 12
    assert st["force_rmse_ev_per_ang"]["mean"] == pytest.approx(curve_value("emc", 3, 12, "force_rmse_ev_per_ang"))
    # a copy of the run directory re-plots from its files alone; the oracle curve comes from the cache
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    cache = json.loads((copy / "report" / "ev_oracle.json").read_text())
    cache["energies"] = [e + 0.5 for e in cache["energies"]]  # a cached curve is used as is
    (copy / "report" / "ev_oracle.json").write_text(json.dumps(cache))
    report.build_report(copy, progress=False, strict=True, descriptor_sample=32)
    again = json.loads((copy / "report" / "summary.json").read_text())
    assert again["oracle_ev"]["fit"]["e0"] == pytest.approx(summary["oracle_ev"]["fit"]["e0"] + 0.5, abs=1e-9)
    assert again["strategies"] == summary["strategies"]


def test_broken_checkpoint_is_reported_not_fatal(tmp_path):
    run = write_run_dir(tmp_path / "run", n_iterations=2)
    last = run / "checkpoints" / "committee_001.pt"
    last.write_bytes(b"not a committee")
    with pytest.raises(ValueError):
        report.build_report(run, progress=False, strict=True, descriptor_sample=16)
    with pytest.warns(UserWarning):
        index = report.build_report(run, progress=False, descriptor_sample=16)
    html = index.read_text()
    assert "could not be drawn" in html and "not a readable alip committee file" in html
    pngs = {p.name for p in (run / "report").glob("*.png")}
    # no committee: no model figures, but the curves, selections and descriptors are still there
    assert {"learning_curves.png", "selection_over_time.png", "violins_by_family.png", "ev_curve.png"} <= pngs
    assert "parity.png" not in pngs
    assert _linked_images(index) == pngs


def test_stored_volume_labels_give_the_oracle_eos(tmp_path):
    """With enough labeled diamond volume-series structures in the run's files, the E–V
    reference comes from them (the oracle is not called); synthetic Birch–Murnaghan
    energies are fitted back to their parameters."""
    v0, e0, b0, bp = 20.3, -4.1, 95.0 * GPa, 4.2

    def bm(v):
        x = (v0 / v) ** (2 / 3) - 1
        return e0 + 9 * v0 * b0 / 16 * (x**3 * bp + x**2 * (6 - 4 * (v0 / v) ** (2 / 3)))

    run = write_run_dir(tmp_path / "run", n_iterations=1)
    test = []
    for a in np.linspace(5.2, 5.7, 9):
        atoms = bulk("Si", "diamond", a=float(a), cubic=True)
        atoms.info.update(family="volume", parent="diamond")
        v = atoms.get_volume() / len(atoms)
        test.append(attach_label(atoms, bm(v) * len(atoms), np.zeros((8, 3))))
    other = labeled([bulk("Si", "sc", a=2.6)])[0]
    other.info.update(family="volume", parent="sc")  # another polymorph: not on the diamond curve
    write_extxyz(run / "test.extxyz", test[::2] + [other])
    (run / "labels.db").unlink()  # half of the points come from the label store
    LabelStore(run / "labels.db").add_labeled(test[1::2], oracle="bm")
    loaded = report.load_run(run)
    ev = report.reference_ev(loaded, tmp_path / "cache.json")
    assert ev.label == "oracle (sw, stored labels)" and len(ev.volumes) == 9
    assert ev.fit["v0"] == pytest.approx(v0, rel=1e-5)
    assert ev.fit["e0"] == pytest.approx(e0, abs=1e-6)
    assert ev.fit["B0"] == pytest.approx(95.0, rel=1e-4)
    assert not (tmp_path / "cache.json").exists()
    # without an oracle in the config and with too few stored points: points, but no fit
    (run / "config.toml").write_text("[run]\nstrategy = 'qbc'\n")
    write_extxyz(run / "test.extxyz", test[:3])
    (run / "labels.db").unlink()
    few = report.reference_ev(report.load_run(run), tmp_path / "cache.json")
    assert len(few.volumes) == 3 and few.fit is None


def test_not_a_run_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a run directory"):
        report.build_report(tmp_path, progress=False)


def _add_exploration(run):
    """Turn a written run directory into an exploring one: trust statistics and origins of the
    selected frames in every iteration record (as alip.al.loop writes them), md_stability.json."""
    from alip.al.run_dir import read_iterations, write_iteration

    trust = []
    for rec in read_iterations(run):
        n = rec["iteration"]
        acc, cand, fail = 10 + 20 * n, 30 - 10 * n, 2
        total = acc + cand + fail
        rec["explore"] = {
            "trust": {
                "trust_lo": 0.05 + 0.01 * n,
                "trust_hi": 0.5,
                "n_frames": total,
                "accurate": acc,
                "candidate": cand,
                "failed": fail,
                "n_trajectories": 4,
                "stop_reasons": {"completed": 3, "trust_hi": 1},
                "accurate_fraction": acc / total,
                "candidate_fraction": cand / total,
                "failed_fraction": fail / total,
            },
            "n_candidates": cand,
        }
        temps = [300.0, 900.0, 900.0, 1500.0]
        rec["selected_origins"] = [
            {"explore_ensemble": "npt" if k == 3 else "nvt", "explore_temperature": temps[k], "explore_pressure": 0.0}
            for k in range(len(rec["selected"]))
        ]
        write_iteration(run, rec)
        trust.append(rec["explore"]["trust"])
    (run / "md_stability.json").write_text(json.dumps({"nvt_ps": 5.0, "nvt_min_distance": 1.97, "nvt_completed": True}))
    return trust


def test_exploration_report_shows_trust_statistics_origins_and_md_stability(tmp_path, capsys):
    from alip.cli import main

    run = write_run_dir(tmp_path / "run", n_iterations=3)
    trust = _add_exploration(run)
    assert main(["report", str(run), "--no-progress", "--descriptor-sample", "16", "--strict"]) == 0
    printed = capsys.readouterr().out
    index = run / "report" / "index.html"
    pngs = {p.name for p in (run / "report").glob("*.png")}
    assert {"explore_trust.png", "explore_origins.png"} <= pngs == _linked_images(index)
    ex = json.loads((run / "report" / "summary.json").read_text())["explore"]["qbc seed 0"]
    assert [t["iteration"] for t in ex["trust"]] == [0, 1, 2]
    for got, want in zip(ex["trust"], trust):
        assert got["accurate_fraction"] == pytest.approx(want["accurate"] / want["n_frames"])
        assert got["trust_lo"] == pytest.approx(want["trust_lo"])
    # 4 selected per iteration in iterations 0 and 1 (the last selects none): 300, 900, 900, npt 1500
    assert ex["origins"] == {"nvt 900 K": 4, "nvt 300 K": 2, "npt 1500 K 0 GPa": 2}
    per_iteration = {"nvt 300 K": 1, "nvt 900 K": 2, "npt 1500 K 0 GPa": 1}
    assert ex["origins_by_iteration"] == {"0": per_iteration, "1": per_iteration}
    assert ex["md_stability"]["nvt_min_distance"] == 1.97
    html = index.read_text()
    assert "Exploration statistics" in html and "npt 1500 K 0 GPa: 2" in html and "nvt_min_distance = 1.97" in html
    # the text summary of `alip report` lists them too
    assert "exploration: qbc seed 0" in printed and "nvt 900 K 4" in printed and "nvt_min_distance 1.97" in printed
    row = next(line.split() for line in printed.splitlines() if line.strip().startswith("1 "))
    assert row[:6] == ["1", "4", "52", "58%", "38%", "4%"]  # iteration 1: 30 accurate, 20 candidates of 52


def test_pool_runs_have_no_exploration_section(tmp_path):
    # (test_single_run_report_and_rebuild_from_files: a pool run's report has no exploration figure)
    run = write_run_dir(tmp_path / "run", n_iterations=2)
    assert report.summarize_explore([report.load_run(run)]) == {}
    assert report.format_explore({"explore": {}}) == "" and report._explore_html({}) == []
