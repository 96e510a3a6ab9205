"""bench/training_probe.py and bench/gpaw_loop.py: the training tables, the grouping of the
probe's records into the per-strategy table, and the GPAW run's configuration."""

from __future__ import annotations

import pytest
from bench_scripts import load_bench

from alip.config import Config, TrainingSection
from alip.models.training import TrainConfig


@pytest.fixture(scope="module")
def probe():
    return load_bench("training_probe")  # it imports explore_evidence


@pytest.mark.parametrize("variant", ["fast", "default", "between", "fast-lbfgs", "fast-silu", "fast-wf1"])
def test_variants_are_valid_trainings(probe, variant):
    table = probe.training_table(variant)
    assert set(table) == set(TrainingSection.__dataclass_fields__)
    cfg = TrainConfig(**table, seed=0)  # energy_weighting 0 -> None, or TrainConfig refuses it
    assert cfg.energy_weighting is None
    if variant == "default":
        import dataclasses

        assert table == dict(dataclasses.asdict(TrainingSection()), energy_weighting=None)
    if variant == "fast-lbfgs":
        assert table["lbfgs_steps"] == 100 and table["epochs"] == probe.TRAINING["epochs"]


def test_tables_group_runs_by_strategy(probe):
    def rec(run, n, variant, f):
        return {"run": run, "labels": n, "variant": variant, "seed": 0, "crystal_force": f, "train_s": 10.0}

    done = [
        rec("x/explore_s0", 20, "default", 0.12),
        rec("x/explore_s0", 40, "default", 0.09),
        rec("y/explore_s1", 20, "default", 0.10),
        rec("y/explore_s1", 40, "default", 0.11),
        rec("x/random_s0", 20, "default", 0.30),
    ]
    assert probe.strategy_of("a/b/explore-rate_s12/") == "explore-rate"
    text = probe.tables(done, 0.10)
    explore = next(line for line in text.splitlines() if line.startswith("| explore | default"))
    assert "0.110 ± 0.014 [10 s]" in explore and "0.100 ± 0.014 [10 s]" in explore
    assert explore.endswith("| 40, 20 |")  # per run: x reaches 0.10 at 40, y at 20
    random = next(line for line in text.splitlines() if line.startswith("| random | default"))
    assert random.endswith("| > 20 |") and "| – |" in random


def test_gpaw_run_config_validates(tmp_path):
    gl = load_bench("gpaw_loop")
    cfg = Config.from_dict(gl.config(str(tmp_path / "run"), str(tmp_path / "test.extxyz"), 26))
    assert cfg.oracle.spec == gl.GPAW_SPEC and cfg.run.budget == 26
    assert cfg.explore.enabled and cfg.explore.supercell == [1, 1, 1] and cfg.training.lbfgs_steps == 100
