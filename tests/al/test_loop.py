"""The active-learning loop end to end on tiny problems: the run-directory contract, recorded
errors and scores against independent recomputation, replay on stored labels, failed labels,
stop conditions, the configuration and the command line."""

from __future__ import annotations

import csv
import json
import os
import sys
import textwrap

import numpy as np
import pytest
from ase.calculators.singlepoint import SinglePointCalculator
from run_fixtures import TINY_LOOP as TINY

from alip.al.acquisition import qbc_scores
from alip.al.loop import run
from alip.al.run_dir import read_curve
from alip.cli import loop as cli_loop
from alip.config import Config, ConfigError, example_toml, load_config, loads
from alip.data.feature_store import FeatureStore
from alip.data.io import read_extxyz, write_extxyz
from alip.data.oracles import make_oracle
from alip.data.store import LabelStore
from alip.data.structures import generate_si_pool
from alip.models.committee import Committee
from alip.models.training import errors

CONTRACT_COLUMNS = [
    "iteration",
    "n_labels",
    "energy_rmse_mev_per_atom",
    "force_rmse_ev_per_ang",
    "ev_rmse_mev_per_atom",
    "wall_label_s",
    "wall_train_s",
    "wall_score_s",
    "n_failed",
]


def tiny(out, **tables) -> Config:
    data = json.loads(json.dumps(TINY))
    data["run"]["out"] = str(out)
    for name, entries in tables.items():
        data.setdefault(name, {}).update(entries)
    return Config.from_dict(data)


def _iters(run_dir) -> list[dict]:
    names = sorted(os.listdir(os.path.join(run_dir, "iterations")))
    return [json.load(open(os.path.join(run_dir, "iterations", n))) for n in names]


def test_loop_end_to_end_follows_the_run_directory_contract(tmp_path):
    out = tmp_path / "run"
    cfg = tiny(out, labeling={"executor": "process", "max_workers": 1})
    result = run(cfg)
    assert result.stop_reason == "budget spent"
    assert [r["n_labels"] for r in result.curve] == [6, 9, 12]
    for name in ("config.toml", "labels.db", "test.extxyz", "learning_curve.csv", "log.txt"):
        assert (out / name).is_file(), name
    assert load_config(out / "config.toml") == cfg.replace(run={"out": str(out)})
    with open(out / "learning_curve.csv") as fh:
        assert next(csv.reader(fh)) == CONTRACT_COLUMNS
    assert read_curve(str(out))[2]["n_labels"] == 12

    store = LabelStore(out / "labels.db")
    assert store.counts() == {"pool": 28, "queued": 0, "labeled": 12, "failed": 0}
    records = _iters(out)
    assert [r["iteration"] for r in records] == [0, 1, 2]
    assert records[0]["labeled_this_iteration"] == store.meta["initial"]
    assert len(store.meta["initial"]) == 6
    for prev, nxt in zip(records, records[1:]):
        assert sorted(prev["selected"]) == sorted(nxt["labeled_this_iteration"])
        assert sorted(store.ids(iteration=nxt["iteration"])) == sorted(prev["selected"])
        assert prev["selected_families"] == [store.get(i).info["family"] for i in prev["selected"]]
        assert len(prev["selected"]) == 3 and prev["stop_reason"] is None
    assert records[-1]["selected"] == [] and records[-1]["stop_reason"] == "budget spent"

    test = read_extxyz(out / "test.extxyz")
    assert len(test) == 13 and all(a.calc is not None for a in test)
    volume = [a for a in test if a.info["family"] == "volume"]
    assert len(volume) >= 5
    for r in records:
        com = Committee.load(out / r["checkpoint"])
        ref = errors(com, test)
        assert r["errors"]["energy_rmse_mev_per_atom"] == pytest.approx(1e3 * ref["energy_rmse"], rel=1e-9)
        assert r["errors"]["force_rmse_ev_per_ang"] == pytest.approx(ref["force_rmse"], rel=1e-9)
        assert r["errors"]["ev_rmse_mev_per_atom"] == pytest.approx(1e3 * errors(com, volume)["energy_rmse"], rel=1e-9)
        if r["selected"]:  # the recorded scores are that committee's QBC scores of those structures
            pred = com.predict([store.get(i) for i in r["selected"]])
            np.testing.assert_allclose(r["selected_scores"], qbc_scores(pred, "force"), rtol=1e-9)
    assert "iteration 2" in (out / "log.txt").read_text()
    # the pool's descriptors, computed once at set-up: frame k is the k-th pool id
    features = FeatureStore(out / "features", Committee.load(out / records[0]["checkpoint"]).acsf)
    ids = store.ids()
    assert features.n_structures == len(ids) == 40 and not features.skipped
    np.testing.assert_array_equal(features.structure(5), features.acsf.compute(store.get(ids[5])))
    assert (out / "log.txt").read_text().count("pool structures featurized") == 1


def test_qbc_scoring_on_dask_selects_what_local_scoring_selects(tmp_path, monkeypatch):
    """With a Dask executor the pool is scored by the streamed scorer on the workers; the
    selections, scores and curve equal an in-process run's."""
    import alip.al.pool_scoring as scoring

    calls = []
    streamed = scoring.score_pool_streamed
    monkeypatch.setattr(scoring, "score_pool_streamed", lambda *a, **k: calls.append(1) or streamed(*a, **k))
    local = run(tiny(tmp_path / "local", run={"strategy": "qbc"}))
    assert calls == []
    dask = run(tiny(tmp_path / "dask", run={"strategy": "qbc"}, labeling={"executor": "dask", "max_workers": 2}))
    a, b = _iters(tmp_path / "local"), _iters(tmp_path / "dask")
    assert [r["selected"] for r in a] == [r["selected"] for r in b]
    assert len(a[0]["selected"]) == 3
    for ra, rb in zip(a, b):
        np.testing.assert_allclose(ra["selected_scores"], rb["selected_scores"], rtol=1e-10)
    assert [r["n_labels"] for r in local.curve] == [r["n_labels"] for r in dask.curve]
    assert len(calls) == len(b) - 1  # every iteration but the last (budget spent) scored on Dask


def test_strategies_share_initial_sets_and_random_is_reproducible(tmp_path):
    runs = {}
    for name, strategy, seed in (
        ("q0", "qbc", 0),
        ("e0", "emc", 0),
        ("r0", "random", 0),
        ("r0b", "random", 0),
        ("r1", "random", 1),
    ):
        runs[name] = _iters(run(tiny(tmp_path / name, run={"strategy": strategy, "seed": seed, "budget": 9})).run_dir)
    first = {k: sorted(v[0]["labeled_this_iteration"]) for k, v in runs.items()}
    assert first["q0"] == first["e0"] == first["r0"] != first["r1"]
    # same seed, same labels: the first committees (and their test errors) are identical
    assert runs["q0"][0]["errors"] == runs["e0"][0]["errors"] == runs["r0"][0]["errors"]
    assert runs["r0"][0]["selected"] == runs["r0b"][0]["selected"]
    assert runs["r0"][0]["selected"] != runs["r1"][0]["selected"]
    assert all(v[-1]["n_labels"] == 9 for v in runs.values())


def _fake_labeled_file(path, n: int, seed: int) -> list:
    """SW geometries whose labels are *not* SW's: replay must return exactly these."""
    oracle = make_oracle("sw")
    structures = generate_si_pool(
        n,
        seed=seed,
        family_kwargs={
            "small_distortion": {"max_atoms": 16},
            "large_distortion": {"max_atoms": 16},
            "random": {"n_atoms": (8, 12)},
        },
    )
    for i, a in enumerate(structures):
        lab = oracle.label(a)
        a.info.pop("pool_id")
        a.calc = SinglePointCalculator(
            a, energy=lab.energy + 0.25 * len(a) + 0.01 * i, forces=1.5 * lab.forces + 0.1, stress=lab.stress
        )
    write_extxyz(path, structures)
    return read_extxyz(path)


def test_replay_on_stored_labels_never_calls_a_real_calculator(tmp_path, monkeypatch):
    data = tmp_path / "dft.extxyz"
    dataset = _fake_labeled_file(data, 36, seed=5)
    import alip.data.oracles as oracles

    calls = []

    def forbidden(self, atoms):
        calls.append(type(self).__name__)
        raise AssertionError("a real calculator was called during replay")

    for klass in (oracles.ManybodyOracle, oracles.GPAWOracle, oracles.UserOracle):
        monkeypatch.setattr(klass, "make_calculator", forbidden)
    cfg = tiny(
        tmp_path / "replay", oracle={"spec": "stored"}, pool={"file": str(data)}, test={"split": 0.25, "seed": 3}
    )
    run(cfg)
    assert calls == []
    store = LabelStore(tmp_path / "replay" / "labels.db")
    assert store.counts()["labeled"] == 12 and store.counts()["failed"] == 0
    for pid in store.ids("labeled"):
        ref = dataset[pid]  # pool ids are the positions in the file
        lab = store.get_label(pid)
        assert lab.energy == pytest.approx(ref.get_potential_energy(), abs=1e-9)
        np.testing.assert_allclose(lab.forces, ref.get_forces(), atol=1e-9)
        assert store.get(pid).info["oracle"] == "stored"
    test = read_extxyz(tmp_path / "replay" / "test.extxyz")
    assert len(test) == 9 and len(store) == 27
    by_energy = sorted(a.get_potential_energy() for a in dataset)
    for a in test:  # held-out labels are the file's labels, never recomputed
        assert min(abs(a.get_potential_energy() - e) for e in by_energy) < 1e-9
    assert not (tmp_path / "replay" / "test.db").exists()


def test_failed_labels_are_recorded_counted_and_never_retried(tmp_path, monkeypatch):
    mod = tmp_path / "flaky_oracle.py"
    mod.write_text(
        textwrap.dedent("""
        from alip.data.oracles import make_oracle

        def make(atoms):
            if len(atoms) in (10, 11):
                raise RuntimeError("SCF did not converge")
            return make_oracle("sw").make_calculator(atoms)
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = tiny(tmp_path / "run", oracle={"spec": "flaky_oracle:make"}, run={"budget": 15})
    result = run(cfg)
    store = LabelStore(tmp_path / "run" / "labels.db")
    failed = store.ids("failed")
    assert failed, "the pool should contain 10- or 11-atom structures"
    assert all(len(store.get(i)) in (10, 11) for i in failed)
    assert "SCF" in store.get_label(failed[0]).error
    records = _iters(result.run_dir)
    assert sorted(i for r in records for i in r["failed_this_iteration"]) == failed
    assert store.counts()["labeled"] + len(failed) == 15
    assert result.curve[-1]["n_labels"] == 15 - len(failed)
    # a failed structure is never selected again
    chosen = [i for r in records for i in r["selected"]] + store.meta["initial"]
    assert len(chosen) == len(set(chosen))


def test_stops_at_the_target_error(tmp_path):
    result = run(tiny(tmp_path / "run", run={"target_force_rmse": 1e3, "target_energy_rmse": 1e6}))
    assert result.stop_reason == "target reached"
    assert [r["n_labels"] for r in result.curve] == [6]


def test_existing_directory_is_not_overwritten_and_finished_runs_resume_instantly(tmp_path):
    cfg = tiny(tmp_path / "run", run={"budget": 6})
    first = run(cfg)
    with pytest.raises(FileExistsError, match="--resume"):
        run(cfg)
    again = run(str(tmp_path / "run"), resume=True)
    assert again.curve == first.curve and again.stop_reason == first.stop_reason
    with pytest.raises(ConfigError, match="run.strategy changed from 'qbc' to 'random'"):
        run(cfg.replace(run={"strategy": "random"}), resume=True)
    with pytest.raises(FileNotFoundError, match="config.toml"):
        run(str(tmp_path), resume=True)


# ----------------------------------------------------------------------------- configuration
def test_example_toml_documents_every_key_and_parses_to_the_defaults():
    text = example_toml()
    assert loads(text) == Config()
    data = Config().to_dict()
    for table, keys in data.items():
        assert f"[{table}]" in text
        for key in keys:
            line = next(ln for ln in text.splitlines() if ln.startswith(f"{key} = ") or ln.startswith(f"{key}="))
            assert "#" in line and len(line.split("#", 1)[1].strip()) > 5, line


@pytest.mark.parametrize(
    "data,message",
    [
        ({"run": {"strategy": "bald"}}, "run.strategy"),
        ({"run": {"budgett": 3}}, "did you mean 'budget'"),
        ({"runn": {}}, "unknown key 'runn'"),
        ({"run": {"batch_size": 2.5}}, "run.batch_size must be an integer"),
        ({"run": {"budget": 5, "n_initial": 10}}, "at least run.n_initial"),
        ({"training": {"hidden": ["a"]}}, "training.hidden"),
        ({"training": {"dtype": "float16"}}, r"\[training\]"),
        ({"pool": {"families": ["volume", "liquid"]}}, "pool.families"),
        ({"test": {"split": 0.2}}, "test.split"),
        ({"oracle": {"spec": "stored"}}, "pool.file"),
        ({"acquisition": {"diversity": "greedy"}}, "acquisition.diversity"),
        ({"run": {"progress": "yes"}}, "true or false"),
        ({"run": {"target_force_rmse": float("nan")}}, "finite"),
    ],
)
def test_bad_configuration_raises_a_clear_error(data, message):
    with pytest.raises(ConfigError, match=message):
        Config.from_dict(data)


def test_config_round_trips_through_toml_with_tables():
    cfg = Config().replace(
        oracle={"spec": {"type": "gpaw", "ecut": 350.0, "xc": "PBE"}},
        run={"strategy": "emc", "out": 'dir with "quotes"'},
        training={"hidden": [16, 8]},
    )
    assert loads(cfg.to_toml()) == cfg
    with pytest.raises(ConfigError, match="invalid TOML"):
        loads("[run\nseed = 1")


# ----------------------------------------------------------------------------- command line
def test_cli_init_run_and_resume(tmp_path, capsys):
    assert cli_loop.main(["init", str(tmp_path / "alip.toml")]) == 0
    assert load_config(tmp_path / "alip.toml") == Config()
    assert cli_loop.main(["init", str(tmp_path / "alip.toml")]) == 2
    cfg_path = tmp_path / "tiny.toml"
    cfg_path.write_text(tiny("unused", run={"budget": 9}).to_toml())
    out = tmp_path / "cli_run"
    assert cli_loop.main(["run", str(cfg_path), "--out", str(out), "--strategy", "random", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "budget spent" in printed and load_config(out / "config.toml").run.strategy == "random"
    assert cli_loop.main(["run", str(cfg_path), "--out", str(out), "--no-progress"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert cli_loop.main(["run", "--resume", str(out), "--no-progress"]) == 0
    assert cli_loop.main(["run", "--resume", str(out), "--seed", "3"]) == 2
    assert cli_loop.main(["run"]) == 2
    bad = tmp_path / "bad.toml"
    bad.write_text("[run]\nstrategy = 'bald'\n")
    assert cli_loop.main(["run", str(bad)]) == 2
    assert "run.strategy" in capsys.readouterr().err
    assert sys.modules["alip.cli.loop"] is cli_loop


def test_run_device_is_validated_passed_on_and_checked_before_labeling(tmp_path):
    from alip.core import device as dev
    from alip.models.training import TrainConfig

    with pytest.raises(ConfigError, match="run.device"):
        tiny(tmp_path / "bad", run={"device": "gpu"})
    cfg = tiny(tmp_path / "x", run={"device": "cuda:1"})
    assert TrainConfig.from_config(cfg, 0).device == "cuda:1"
    if dev.cuda_available():
        return
    out = tmp_path / "cuda_run"
    with pytest.raises(RuntimeError, match="CUDA|GPU"):
        run(tiny(out, run={"device": "cuda"}))
    assert not (out / "labels.db").exists() or LabelStore(str(out / "labels.db")).counts()["labeled"] == 0
    # the same run continues on the CPU: the device may change on resume
    result = run(str(out), resume=True, device="cpu")
    assert result.stop_reason == "budget spent"
    assert load_config(out / "config.toml").run.device == "cuda"  # the stored config is unchanged
    assert cli_loop.main(["run", "--resume", str(out), "--device", "cuda", "--no-progress"]) == 0  # finished


def test_descriptor_presets():
    """The loop's preset picks the descriptor: default_si (36) unless fine_si, fine_g5_si (48), shells_si,
    windows_si (64) or cross_windows_si (72) is asked for."""
    from alip.al.loop import make_acsf
    from alip.core.descriptors import ACSF

    assert make_acsf(Config()).to_dict() == ACSF.default_si().to_dict()
    fine = loads('[descriptor]\npreset = "fine_si"\n')
    assert make_acsf(fine).to_dict() == ACSF.fine_si().to_dict()
    fine_g5 = loads('[descriptor]\npreset = "fine_g5_si"\n')
    assert make_acsf(fine_g5).to_dict() == ACSF.fine_g5_si().to_dict()
    shells = loads('[descriptor]\npreset = "shells_si"\n')
    assert make_acsf(shells).to_dict() == ACSF.shells_si().to_dict()
    windows = loads('[descriptor]\npreset = "windows_si"\n')
    assert make_acsf(windows).to_dict() == ACSF.windows_si().to_dict()
    cross = loads('[descriptor]\npreset = "cross_windows_si"\n')
    assert make_acsf(cross).to_dict() == ACSF.cross_windows_si().to_dict()
    with pytest.raises(ConfigError, match="descriptor.preset"):
        loads('[descriptor]\npreset = "finest"\n')
