"""Exploration inside the active-learning loop: end to end on Si and on Si–C, crash safety
under SIGKILL, bad input refused before any label, `alip init --explore`."""

from __future__ import annotations

import json
import signal
from collections import Counter

import pytest
from ase.build import bulk
from ase.io import write
from explore_fixtures import finish, kill_when_logged, launch_run, stored_labels
from run_fixtures import COUNTING_ORACLE

from alip.al.loop import run
from alip.config import Config, ConfigError, example_toml
from alip.data.io import read_extxyz
from alip.data.store import LabelStore

EXPLORE = {
    "enabled": True,
    "supercell": [1, 1, 1],
    "temperatures": [300.0, 1200.0],
    "steps": 40,
    "every": 5,
    "max_trajectories": 3,
    "trust_lo": 0.02,
    "trust_hi": 3.0,
}
TINY = {
    "run": {"n_initial": 6, "batch_size": 4, "budget": 14, "progress": False},
    "labeling": {"executor": "serial"},
    "test": {"n": 6, "n_volume": 3},
    "training": {"n_members": 3, "hidden": [8], "epochs": 20},
    "explore": EXPLORE,
}


def tiny(out, **tables) -> dict:
    cfg = json.loads(json.dumps(TINY))
    cfg["run"]["out"] = str(out)
    for name, entries in tables.items():
        cfg.setdefault(name, {}).update(entries)
    return cfg


@pytest.mark.slow
def test_si_exploration_end_to_end(tmp_path):
    result = run(tiny(tmp_path / "run", test={"md": True, "md_frames": 2, "md_scale": 0.1}))
    out = tmp_path / "run"
    assert result.stop_reason == "budget spent" and result.n_labels == 14
    assert (out / "committee.pt").is_file() and (out / "explore" / "iter_000.json").is_file()
    header = (out / "learning_curve.csv").read_text().splitlines()[0]
    assert header == (
        "iteration,n_labels,energy_rmse_mev_per_atom,force_rmse_ev_per_ang,ev_rmse_mev_per_atom,"
        "wall_label_s,wall_train_s,wall_score_s,n_failed"
    )
    rec = json.loads((out / "iterations" / "iter_001.json").read_text())
    trust = rec["explore"]["trust"]
    assert trust["n_frames"] == trust["accurate"] + trust["candidate"] + trust["failed"] > 0
    assert len(rec["selected"]) == 4 and rec["selected_families"] == ["explore"] * 4
    assert {o["explore_temperature"] for o in rec["selected_origins"]} <= {300.0, 1200.0}
    assert any(k.startswith("md_crystal") for k in rec["errors_by_family"])
    store = LabelStore(out / "labels.db")
    explored = store.structures("labeled", iteration=2)
    assert len(explored) == 4
    for a in explored:  # each label keeps its origin, and it is the selected frame's
        origin = next(o for pid, o in zip(rec["selected"], rec["selected_origins"]) if pid == a.info["pool_id"])
        assert a.info["explore_trajectory"] == origin["explore_trajectory"]
        assert a.info["explore_step"] == origin["explore_step"]
        assert 0.02 <= a.info["max_force_dev"] <= 3.0
    assert store.counts()["labeled"] == 14


@pytest.mark.slow
def test_sic_exploration_end_to_end_with_tersoff(tmp_path):
    seeds = tmp_path / "sic.extxyz"
    write(seeds, [bulk("SiC", "zincblende", a=4.32, cubic=True)])
    cfg = tiny(
        tmp_path / "run",
        oracle={"spec": "tersoff-sic"},
        descriptor={"preset": "seeds"},
        test={"md": True, "md_frames": 2, "md_scale": 0.1},
        explore={"seeds": str(seeds), "temperatures": [300.0, 900.0], "trust_hi": 5.0},
    )
    result = run(cfg)
    assert result.stop_reason == "budget spent" and result.n_labels == 14
    from alip.models.committee import Committee

    committee = Committee.load(tmp_path / "run" / "committee.pt")
    assert committee.species == [6, 14] and committee.acsf.n_features == 96
    rec = json.loads((tmp_path / "run" / "iterations" / "iter_002.json").read_text())
    assert set(rec["errors_by_family"]) == {"md_seed0_300K", "md_seed0_900K"}  # no Si families for SiC
    labeled = LabelStore(tmp_path / "run" / "labels.db").labeled()
    assert all(sorted(set(a.get_chemical_symbols())) == ["C", "Si"] for a in labeled)
    assert sum(a.info.get("family") == "explore" for a in labeled) == 8


def test_bad_seeds_and_values_are_refused_before_any_label(tmp_path):
    sic = tmp_path / "sic.extxyz"
    write(sic, [bulk("SiC", "zincblende", a=4.32)])
    with pytest.raises(
        ConfigError, match=r"explore.seeds: seed 0 \(CSi\) contains \['C'\], which the descriptor lacks"
    ):
        run(tiny(tmp_path / "a", explore={"seeds": str(sic)}, test={"md": True}))
    assert (
        not (tmp_path / "a" / "labels.db").exists() or LabelStore(tmp_path / "a" / "labels.db").counts()["labeled"] == 0
    )
    empty = tmp_path / "empty.extxyz"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty"):
        run(tiny(tmp_path / "b", explore={"seeds": str(empty)}))
    with pytest.raises(ConfigError, match="temperatures > 0"):
        run(tiny(tmp_path / "c", explore={"temperatures": [300.0, -1.0]}))
    with pytest.raises(ConfigError, match="trust_lo .* must be >= 0 and below explore.trust_hi"):
        run(tiny(tmp_path / "d", explore={"trust_lo": 1.0, "trust_hi": 0.5}))
    with pytest.raises(ConfigError, match="test set is empty"):
        run(tiny(tmp_path / "e", explore={"seeds": str(sic)}, descriptor={"preset": "seeds"}))


def test_init_explore_writes_a_documented_exploration_config(tmp_path):
    from alip.cli import main

    path = tmp_path / "explore.toml"
    assert main(["init", "--explore", str(path)]) == 0
    text = path.read_text()
    cfg = Config.from_dict(__import__("tomllib").loads(text))
    assert cfg.explore.enabled and cfg.test.md
    for key in ("trust_lo", "trust_hi", "temperatures", "pressures", "seeds", "supercell", "adaptive", "every"):
        line = next(l for l in text.splitlines() if l.startswith(f"{key} ="))
        assert "#" in line and len(line.split("#", 1)[1].strip()) > 10  # documented where defined
    assert "enabled = false" in example_toml()


@pytest.mark.slow
def test_sigkill_during_exploration_and_labeling_then_resume(tmp_path):
    (tmp_path / "counting_oracle.py").write_text(COUNTING_ORACLE)

    def config(name, kill_at):
        cfg = tiny(
            tmp_path / name,
            oracle={
                "spec": {
                    "type": "user",
                    "factory": "counting_oracle:make",
                    "kwargs": {
                        "log": str(tmp_path / f"{name}_calls.log"),
                        "kill_at": kill_at,
                        "flag_dir": str(tmp_path),
                    },
                }
            },
            run={"n_initial": 4, "batch_size": 3, "budget": 10},
            test={"n": 4, "n_volume": 3},
            explore={"steps": 60},
        )
        path = tmp_path / f"{name}.toml"
        path.write_text(Config.from_dict(cfg).to_toml())
        return str(path)

    # calls: test set 1-7, initial set 8-11, iteration 1 (explored) 12-14, iteration 2 15-17
    crashy, reference = config("crashy", [16]), config("reference", [])
    ref_proc = launch_run(tmp_path, reference)
    proc = launch_run(tmp_path, crashy)  # killed from outside while iteration 0 explores
    log = kill_when_logged(proc, tmp_path / "crashy" / "log.txt", "iteration 0: trained in")
    assert "iteration 0: explored" not in log
    rc, out = finish(launch_run(tmp_path, crashy))  # killed by its oracle while labeling explored frames
    assert rc == -signal.SIGKILL, out
    assert (tmp_path / "killed_at_16").exists()
    rc, out = finish(launch_run(tmp_path, crashy))
    assert rc == 0, out
    rc, out = finish(ref_proc)
    assert rc == 0, out

    assert "resuming at iteration 2" in (tmp_path / "crashy" / "log.txt").read_text()
    calls = (tmp_path / "crashy_calls.log").read_text().split()
    ref_calls = (tmp_path / "reference_calls.log").read_text().split()
    assert len(calls) == 17 and Counter(calls).most_common(1)[0][1] == 1  # none twice
    assert sorted(calls) == sorted(ref_calls)  # none lost, same frames
    a, b = stored_labels(tmp_path / "crashy"), stored_labels(tmp_path / "reference")
    assert a.keys() == b.keys() and all(a[k][0] == pytest.approx(b[k][0], abs=1e-9) for k in a)
    assert sum(1 for c in calls if int(c.split(":")[1]) >= 1_000_000_000) == 6


@pytest.mark.slow
def test_a_run_without_candidates_stops_with_a_hint(tmp_path):
    # every step after the first leaves the (tiny) trust region: no frame is ever a candidate
    result = run(tiny(tmp_path / "run", explore={"trust_lo": 1e-7, "trust_hi": 1e-6}))
    assert result.stop_reason.startswith("no candidates in two iterations in a row")
    records = [json.loads(p.read_text()) for p in sorted((tmp_path / "run" / "iterations").glob("iter_*.json"))]
    assert [r["explore"]["n_candidates"] for r in records] == [0, 0]
    assert [r["selected"] for r in records] == [[], []] and result.n_labels == 6
    assert all(r["explore"]["trust"]["failed"] >= 1 for r in records)


@pytest.mark.slow
def test_biased_cost_aware_exploration_end_to_end_and_its_report(tmp_path):
    from alip.reports.report import build_report

    out = tmp_path / "run"
    cfg = tiny(
        out,
        explore={"ensembles": ["nvt", "nvt_biased"], "bias_strength": 0.5, "bias_width": 0.02},
        acquisition={"cost": "measured"},
    )
    result = run(cfg)
    assert result.stop_reason == "budget spent" and result.n_labels == 14
    records = [json.loads(p.read_text()) for p in sorted((out / "iterations").glob("iter_*.json"))]
    ensembles = {t["ensemble"] for r in records[:2] for t in r["explore"]["trajectories"]}
    assert ensembles == {"nvt", "nvt_biased"}
    # the explored frames keep the unbiased spread and their bias energy
    frames = read_extxyz(out / "explore" / "iter_001.extxyz")
    biased = [f for f in frames if f.info["explore_ensemble"] == "nvt_biased"]
    assert biased and all(f.info["bias_energy"] <= 0 for f in biased)
    assert any(f.info["bias_energy"] < 0 for f in biased)
    # cost model fitted to the paid labels' times (all 8-atom cells: exponent 3, not fitted)
    cost = records[0]["cost"]["model"]
    assert cost["kind"] == "measured" and cost["n_labels"] == 6 and not cost["fitted"]
    assert len(records[0]["cost"]["selected_costs"]) == len(records[0]["selected"]) == 4
    # the report of the real run shows the exploration
    index = build_report(out, progress=False, strict=True, descriptor_sample=16)
    assert {"explore_trust.png", "explore_origins.png"} <= {p.name for p in (out / "report").glob("*.png")}
    summary = json.loads((out / "report" / "summary.json").read_text())
    ex = next(iter(summary["explore"].values()))
    assert [t["iteration"] for t in ex["trust"]] == [0, 1]
    assert sum(ex["origins"].values()) == 8 and all(k.split()[0] in ("nvt", "nvt_biased") for k in ex["origins"])
    assert "Exploration statistics" in index.read_text()
