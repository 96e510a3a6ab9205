"""`alip compare`: identical inputs per seed, the combined CSVs against the runs' own curves,
mean/spread and labels-to-target against hand computation, resumption, the command line."""

from __future__ import annotations

import csv
import json
import math
import os
import re

import numpy as np
import pytest

from alip.al.compare import compare, first_reaching, labels_to_target, summarise
from alip.al.run_dir import read_curve
from alip.cli import loop as cli_loop
from alip.config import Config, ConfigError

TINY = {
    "run": {"n_initial": 5, "batch_size": 2, "budget": 9, "progress": False},
    "labeling": {"executor": "serial"},
    "pool": {"n": 30, "max_atoms": 16, "random_atoms": [8, 12], "max_energy_above": 0.0},
    "test": {"n": 6, "n_volume": 4},
    "training": {"n_members": 2, "hidden": [6], "epochs": 3, "batch_size": 8, "lbfgs_steps": 0},
}
COLUMNS = [
    "strategy",
    "seed",
    "iteration",
    "n_labels",
    "energy_rmse_mev_per_atom",
    "force_rmse_ev_per_ang",
    "ev_rmse_mev_per_atom",
]


def _rows(path) -> list[dict]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp")
    result = compare(Config.from_dict(TINY), ["qbc", "random"], seeds=2, out=out / "cmp", progress=False)
    return out / "cmp", result


def test_compare_writes_every_run_and_the_combined_curves(comparison):
    out, result = comparison
    for name in ("qbc_seed0", "qbc_seed1", "random_seed0", "random_seed1"):
        assert (out / name / "learning_curve.csv").is_file()
        assert not (out / name / "test.db").exists()  # the shared test set was labeled once
    assert (out / "shared" / "test.extxyz").is_file() and (out / "shared" / "pool.extxyz").is_file()
    with open(out / "learning_curves.csv") as fh:
        assert next(csv.reader(fh)) == COLUMNS
    rows = _rows(out / "learning_curves.csv")
    assert len(rows) == 4 * 3
    for r in rows:
        own = read_curve(str(out / f"{r['strategy']}_seed{r['seed']}"))[int(r["iteration"])]
        assert int(r["n_labels"]) == own["n_labels"]
        assert float(r["force_rmse_ev_per_ang"]) == own["force_rmse_ev_per_ang"]
    png = out / "learning_curves.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_same_seed_means_same_initial_set_and_first_committee(comparison):
    out, _ = comparison

    def first(name):
        return json.load(open(out / name / "iterations" / "iter_000.json"))

    for seed in (0, 1):
        q, r = first(f"qbc_seed{seed}"), first(f"random_seed{seed}")
        assert q["labeled_this_iteration"] == r["labeled_this_iteration"]
        assert q["errors"] == r["errors"]
    assert first("qbc_seed0")["labeled_this_iteration"] != first("qbc_seed1")["labeled_this_iteration"]


def test_summary_is_mean_and_sample_std_over_seeds(comparison):
    out, result = comparison
    rows = _rows(out / "learning_curves.csv")
    summary = _rows(out / "learning_curves_summary.csv")
    assert len(summary) == 2 * 3
    for s in summary:
        vals = [
            float(r["force_rmse_ev_per_ang"])
            for r in rows
            if r["strategy"] == s["strategy"] and r["iteration"] == s["iteration"]
        ]
        assert len(vals) == 2 == int(s["n_seeds"])
        assert float(s["force_rmse_ev_per_ang_mean"]) == pytest.approx(np.mean(vals), rel=1e-12)
        assert float(s["force_rmse_ev_per_ang_std"]) == pytest.approx(abs(vals[0] - vals[1]) / math.sqrt(2), rel=1e-9)
        assert float(s["force_rmse_ev_per_ang_min"]) == min(vals)


def test_compare_resumes_without_recomputing_finished_runs(comparison):
    out, first = comparison
    stamp = os.path.getmtime(out / "qbc_seed0" / "iterations" / "iter_002.json")
    again = compare(Config.from_dict(TINY), ["qbc", "random"], seeds=2, out=out, progress=False)
    assert os.path.getmtime(out / "qbc_seed0" / "iterations" / "iter_002.json") == stamp
    assert again.rows == first.rows


def test_labels_to_target_on_hand_made_curves():
    rows = []
    curves = {
        ("random", 0): [1.0, 0.8, 0.6, 0.5],
        ("random", 1): [1.2, 0.9, 0.7, 0.5],
        ("qbc", 0): [1.0, 0.55, 0.45, 0.4],
        ("qbc", 1): [1.2, 0.7, 0.52, 0.42],
        ("emc", 0): [1.0, 0.9, 0.8, 0.7],
        ("emc", 1): [1.2, 1.0, 0.9, 0.8],
    }
    for (strategy, seed), values in curves.items():
        for it, v in enumerate(values):
            rows.append(
                {
                    "strategy": strategy,
                    "seed": seed,
                    "iteration": it,
                    "n_labels": 10 + 10 * it,
                    "energy_rmse_mev_per_atom": 1.0,
                    "force_rmse_ev_per_ang": v,
                    "ev_rmse_mev_per_atom": math.nan,
                }
            )
    summary = summarise(rows)
    out = {t["strategy"]: t for t in labels_to_target(rows, summary)}
    assert out["random"]["target"] == pytest.approx(0.5)
    assert out["random"]["labels_mean"] == 40 and out["random"]["reference_labels"] == 40
    # qbc mean curve: 1.1, 0.625, 0.485 <= 0.5 at 30 labels
    assert out["qbc"]["labels_mean"] == 30 and out["qbc"]["fraction_of_reference"] == pytest.approx(0.75)
    assert out["qbc"]["labels_per_seed"] == "30 40"  # seed 1: 0.52 > 0.5 at 30, 0.42 at 40
    assert out["emc"]["labels_mean"] is None and out["emc"]["labels_per_seed"] == "- -"
    assert first_reaching([1, 2, 3], [math.nan, 0.4, 0.1], 0.5) == 2
    assert math.isnan(summary[0]["ev_rmse_mev_per_atom_mean"])


def test_compare_rejects_bad_arguments(tmp_path):
    cfg = Config.from_dict(TINY)
    with pytest.raises(ConfigError, match="strategies"):
        compare(cfg, ["qbc", "bald"], 1, tmp_path / "x", progress=False)
    with pytest.raises(ConfigError, match="strategies"):
        compare(cfg, ["qbc", "qbc"], 1, tmp_path / "x", progress=False)
    with pytest.raises(ConfigError, match="seeds"):
        compare(cfg, ["qbc"], 0, tmp_path / "x", progress=False)
    with pytest.raises(ConfigError, match="jobs"):
        compare(cfg, ["qbc"], 1, tmp_path / "x", jobs=0, progress=False)


def test_cli_compare(tmp_path, capsys):
    cfg_path = tmp_path / "c.toml"
    cfg_path.write_text(Config.from_dict({**TINY, "run": {**TINY["run"], "budget": 7}}).to_toml())
    code = cli_loop.main(
        [
            "compare",
            str(cfg_path),
            "--strategies",
            "emc,random",
            "--seeds",
            "1",
            "--out",
            str(tmp_path / "cmp"),
        ]
    )
    assert code == 0
    captured = capsys.readouterr()
    assert re.search(r"\bemc: (\d+ labels to reach|did not reach) random's final force RMSE", captured.out)
    assert "it/s" not in captured.err and "label/s" not in captured.err  # the config's progress = false holds
    assert {r["strategy"] for r in _rows(tmp_path / "cmp" / "learning_curves.csv")} == {"emc", "random"}
    assert cli_loop.main(["compare", str(cfg_path), "--strategies", "foo"]) == 2
