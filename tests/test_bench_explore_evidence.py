"""bench/explore_evidence.py: its configurations are valid and pinned, and its tables
read run directories right (labels to the target, "not within N labels", curves)."""

from __future__ import annotations

import json
import os

import pytest
from bench_scripts import load_bench

from alip.config import Config, TrainingSection


@pytest.fixture(scope="module")
def ev():
    return load_bench("explore_evidence")


@pytest.mark.parametrize("training", ["fast", "default"])
@pytest.mark.parametrize("strategy", ["explore", "explore-rate", "explore-error", "qbc", "random"])
def test_configs_validate_and_pin_training(ev, strategy, training, tmp_path):
    cfg = Config.from_dict(ev.config(strategy, 3, 140, str(tmp_path / "run"), 1, training))
    pinned = Config.from_dict({"training": ev.TRAININGS[training]}).training
    assert cfg.training == pinned
    # Every pinned key is a real training key (a renamed one would break the bench only at run time).
    assert set(ev.TRAININGS[training]) == set(TrainingSection.__dataclass_fields__)
    assert cfg.run.seed == 3 and cfg.run.budget == 140 and cfg.labeling.max_workers == 1
    assert cfg.explore.enabled == strategy.startswith("explore")
    if strategy.startswith("explore"):
        assert cfg.explore.adaptive == {"explore": "fixed", "explore-rate": "rate", "explore-error": "error"}[strategy]
    assert cfg.run.strategy == ("random" if strategy == "random" else "qbc")


def test_trainings_differ_where_documented(ev):
    """fast (the first runs) and default (the new runs) differ in the network, batch, epochs and L-BFGS."""
    fast, default = ev.TRAININGS["fast"], ev.TRAININGS["default"]
    assert ev.TRAINING is fast
    diff = {k for k in fast if fast[k] != default[k]}
    assert diff == {"hidden", "activation", "epochs", "batch_size", "lr", "lr_final", "lbfgs_steps", "patience"}
    assert fast["lbfgs_steps"] == 0 and default["lbfgs_steps"] == 100


def _fake_run(ev, path, forces: list[float], n0: int = 20, step: int = 20) -> None:
    """A run directory whose iteration records have force RMSE ``forces[i]`` on every MD subset."""
    os.makedirs(os.path.join(path, "iterations"))
    for i, f in enumerate(forces):
        by_family = {k: {"force_rmse_ev_per_ang": f, "energy_rmse_mev_per_atom": 10.0 * f} for k in ev.SUBSETS}
        rec = {"iteration": i, "n_labels": n0 + step * i, "errors_by_family": by_family}
        with open(os.path.join(path, "iterations", f"iter_{i:03d}.json"), "w") as fh:
            json.dump(rec, fh)


def test_labels_to_target_and_tables(ev, tmp_path):
    _fake_run(ev, tmp_path / "explore_s0", [0.3, 0.2, 0.09, 0.12])  # reaches 0.10 at 60 labels
    _fake_run(ev, tmp_path / "explore_s1", [0.3, 0.15, 0.11, 0.105])  # never: "> 80"
    _fake_run(ev, tmp_path / "random_s0", [0.4, 0.3])
    summary = ev.summarise(str(tmp_path), ["explore", "random"], [0, 1], 0.10, budget=60)
    ex = summary["explore"]
    assert [r["labels_to_target"] for r in ex] == [60, None]
    assert [r["labels"] for r in ex] == [60, 60]  # errors reported at the budget, not the extension
    assert ex[0]["crystal_force"] == pytest.approx(0.09)
    assert summary["random"][0]["labels"] == 40  # the last iteration below the budget
    text = ev.tables(summary, 0.10)
    assert "| explore | 2 | 60 | 60, > 80 |" in text
    assert "| random | 1 | 40 | > 40 |" in text
    # The curve table: 60 labels is the mean of 0.09 and 0.11; random stopped at 40.
    row = next(line for line in text.splitlines() if line.startswith("| explore | 0.300"))
    assert "0.100 ± 0.014" in row
    random_row = next(line for line in text.splitlines() if line.startswith("| random | 0.400"))
    assert random_row.rstrip(" |").endswith("–")


def test_curve_at(ev):
    curve = [(20, 0.5), (37, 0.4), (57, 0.3)]
    assert ev.curve_at(curve, 40) == (37, 0.4)
    assert ev.curve_at(curve, 10) is None
    assert ev.curve_at(curve, 57) == (57, 0.3)
