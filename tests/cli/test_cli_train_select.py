"""`alip train` and `alip select` (labelling outside alip): the saved committee reproduces the
reported errors; the selection equals select_batch on independently computed QBC scores after
a numpy trust window and exclusion; written frames and the CSV match the pool; error exits."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

from alip.al.acquisition import combine_qbc, qbc_scores, select_batch
from alip.cli import main
from alip.cli.select import CSV_COLUMNS, select_from_pool
from alip.cli.train import read_structures, train_from_file
from alip.config import TrainingSection
from alip.data.oracles import make_oracle
from alip.data.structures import generate_si_pool
from alip.models.committee import Committee
from alip.models.training import TrainConfig

SMALL = {"small_distortion": {"max_atoms": 16}, "large_distortion": {"max_atoms": 16}, "random": {"n_atoms": (8, 16)}}
TRAIN_ARGS = ["--members", "3", "--hidden", "12,12", "--epochs", "15", "--val-fraction", "0.25", "--seed", "2"]
BAD = {4: "nan", 11: "carbon", 17: "nocell"}  # pool frame -> kind of unusable frame


def _label(structures: list[Atoms]) -> list[Atoms]:
    oracle = make_oracle("sw")
    for a in structures:
        lab = oracle.label(a)
        assert lab.ok, lab.error
        a.calc = SinglePointCalculator(a, energy=lab.energy, forces=lab.forces, stress=lab.stress)
    return structures


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    """Labelled file, trained committee (by the CLI), and a pool with bad frames and two
    structures of the labelled file."""
    d = tmp_path_factory.mktemp("ts")
    labeled = _label(generate_si_pool(36, seed=5, family_kwargs=SMALL))
    write(d / "lab.extxyz", labeled, format="extxyz")
    code, out, err = _run(["train", str(d / "lab.extxyz"), "-o", str(d / "c.pt"), *TRAIN_ARGS])
    assert code == 0, err
    good = generate_si_pool(40, seed=6, family_kwargs=SMALL)
    good.insert(7, labeled[3].copy())
    good.insert(20, labeled[30].copy())
    for a in good:
        a.calc = None
    pool, ids = [], []
    for a in good:
        while len(pool) in BAD:
            kind = BAD[len(pool)]
            b = good[0].copy()
            if kind == "nan":
                b.positions[2, 0] = np.nan
            elif kind == "carbon":
                b.numbers[1] = 6
            else:
                b.cell[:] = 0.0
                b.pbc = False
            pool.append(b)
        ids.append(len(pool))
        pool.append(a)
    write(d / "pool.extxyz", pool, format="extxyz")
    from_file = read(d / "pool.extxyz", ":")  # positions as written (8 decimals)
    return {
        "dir": d,
        "labeled": read(d / "lab.extxyz", ":"),
        "stdout": out,
        "ids": np.array(ids),
        "good": [from_file[i] for i in ids],
    }


def _errors_by_hand(
    committee: Committee, structures: list[Atoms], members: list[np.ndarray] | None = None
) -> tuple[float, float]:
    """RMSE of the mean over all members, or over ``members[i]`` for structure i."""
    de, df = [], []
    for i, a in enumerate(structures):
        pred = committee.predict([a])
        ks = slice(None) if members is None else members[i]
        de.append((pred.energies[ks, 0].mean() - a.get_potential_energy()) / len(a))
        df.append(pred.forces[ks].mean(0) - a.get_forces())
    return float(np.sqrt(np.mean(np.square(de)))), float(np.sqrt(np.mean(np.square(np.concatenate(df)))))


# ----------------------------------------------------------------------------- train
def test_train_saves_committee_that_reproduces_reported_errors(files, tmp_path):
    d, labeled = files["dir"], files["labeled"]
    cfg = TrainConfig(n_members=3, hidden=(12, 12), epochs=15, val_fraction=0.25, seed=2)
    s = train_from_file(d / "lab.extxyz", tmp_path / "f.pt", cfg)
    cli = Committee.load(d / "c.pt")
    for (name, x), y in zip(cli.network.state_dict().items(), s.committee.network.state_dict().values()):
        assert torch.equal(x, y), name  # the CLI trained the same committee
    assert sorted(os.listdir(tmp_path)) == ["f.pt"]  # no temporary file left
    val = [labeled[i] for i in s.result.val_indices]
    train = [labeled[i] for i in s.result.train_indices]
    # a validation fold of 9 per member: each structure of the 27 is predicted by the member that held it out
    assert len(val) == 27 and len(train) == 36 and s.n_atoms == sum(len(a) for a in labeled)
    held_out = [np.flatnonzero(s.result.held_out[:, j]) for j in range(len(val))]
    assert all(len(m) == 1 for m in held_out) and sorted(np.bincount(np.concatenate(held_out))) == [9, 9, 9]
    e_val, f_val = _errors_by_hand(cli, val, held_out)
    e_tr, f_tr = _errors_by_hand(cli, train)
    assert np.isclose(s.val_errors["energy_rmse"], e_val, rtol=1e-9) and np.isclose(
        s.val_errors["force_rmse"], f_val, rtol=1e-9
    )
    assert np.isclose(s.train_errors["force_rmse"], f_tr, rtol=1e-9)
    out = files["stdout"]
    assert f"on 36 of 36 structures ({s.n_atoms} atoms; each member held out 9 for validation)" in out
    printed = re.search(
        r"RMSE validation \(27 structures, each by the members that held it out\): "
        r"energy ([\d.]+) meV/atom, forces ([\d.]+) eV/Å",
        out,
    )
    assert printed and abs(float(printed[1]) - 1000 * e_val) <= 0.006 and abs(float(printed[2]) - f_val) <= 6e-5
    printed = re.search(r"RMSE train +\(36 structures, committee mean\): energy ([\d.]+) meV/atom", out)
    assert printed and abs(float(printed[1]) - 1000 * e_tr) <= 0.006
    assert cli.metadata["n_train"] == 36 and cli.metadata["n_val"] == 27 and cli.n_members == 3


def test_train_reads_ase_database_like_extxyz(files, tmp_path):
    import ase.db

    with ase.db.connect(str(tmp_path / "lab.db")) as db:
        for a in files["labeled"][:5]:
            db.write(a)
    from_db, from_xyz = read_structures(tmp_path / "lab.db"), read_structures(files["dir"] / "lab.extxyz")[:5]
    for a, b in zip(from_db, from_xyz):
        assert (a.numbers == b.numbers).all() and np.allclose(a.positions, b.positions, atol=1e-12)
        assert np.isclose(a.get_potential_energy(), b.get_potential_energy())
        assert np.allclose(a.get_forces(), b.get_forces()) and np.allclose(a.get_stress(), b.get_stress())


def test_train_bad_inputs_exit_2(files, tmp_path):
    labeled = [a.copy() for a in files["labeled"][:4]]
    for a, src in zip(labeled, files["labeled"]):
        a.calc = SinglePointCalculator(a, **src.calc.results)
    unlabeled = list(labeled)
    unlabeled[2] = labeled[2].copy()  # copy() drops the calculator
    write(tmp_path / "unl.extxyz", unlabeled, format="extxyz")
    carbon = list(labeled)
    carbon[1] = labeled[1].copy()
    carbon[1].numbers[0] = 6
    carbon[1].calc = SinglePointCalculator(carbon[1], **labeled[1].calc.results)
    write(tmp_path / "c.extxyz", carbon, format="extxyz")
    (tmp_path / "empty.extxyz").write_text("")
    cases = [
        ("unl.extxyz", "frame 2 is not labelled"),
        ("c.extxyz", "frame 1 (line 11): element Z=6 is not among the descriptor species"),
        ("empty.extxyz", "no structures"),
        ("missing.extxyz", "no such file"),
    ]
    for name, message in cases:
        code, out, err = _run(["train", str(tmp_path / name), "-o", str(tmp_path / "o.pt")])
        assert code == 2 and message in err and err.startswith("alip train: error:"), (name, err)
        assert not (tmp_path / "o.pt").exists()
    before = (files["dir"] / "c.pt").read_bytes()
    code, _, err = _run(["train", str(files["dir"] / "lab.extxyz"), "-o", str(files["dir"] / "c.pt")])
    assert code == 2 and "exists; pass --force" in err and (files["dir"] / "c.pt").read_bytes() == before


def test_train_loss_weights_and_bootstrap_reach_the_training(files, tmp_path):
    """--weight-energy/-forces/-stress, --batch-size and --bootstrap/--no-bootstrap land in the
    committee's recorded training config; without them the TrainingSection defaults do."""
    src = str(files["dir"] / "lab.extxyz")
    short = ["--members", "2", "--hidden", "4", "--epochs", "2", "--lbfgs-steps", "0", "--no-progress"]
    given = [
        "--weight-energy",
        "4",
        "--weight-forces",
        "0.3",
        "--weight-stress",
        "0",
        "--bootstrap",
        "--batch-size",
        "7",
    ]
    assert _run(["train", src, "-o", str(tmp_path / "a.pt"), *short, *given])[0] == 0
    assert _run(["train", src, "-o", str(tmp_path / "b.pt"), *short])[0] == 0
    assert _run(["train", src, "-o", str(tmp_path / "c.pt"), *short, "--bootstrap", "--no-bootstrap"])[0] == 0
    a = Committee.load(tmp_path / "a.pt").metadata["train_config"]
    b = Committee.load(tmp_path / "b.pt").metadata["train_config"]
    assert (a["weight_energy"], a["weight_forces"], a["weight_stress"], a["bootstrap"]) == (4.0, 0.3, 0.0, True)
    d = TrainingSection()
    assert (a["batch_size"], b["batch_size"]) == (7, d.batch_size)
    assert (b["weight_energy"], b["weight_forces"], b["weight_stress"]) == (
        d.weight_energy,
        d.weight_forces,
        d.weight_stress,
    )
    assert b["bootstrap"] is d.bootstrap is False
    assert Committee.load(tmp_path / "c.pt").metadata["train_config"]["bootstrap"] is False  # the last flag wins


def test_train_threads_reach_the_training_and_are_reported(files, tmp_path):
    src = str(files["dir"] / "lab.extxyz")
    short = ["--members", "2", "--hidden", "4", "--epochs", "2", "--lbfgs-steps", "0", "--no-progress"]
    code, out, _ = _run(["train", src, "-o", str(tmp_path / "a.pt"), *short, "--threads", "1"])
    assert code == 0 and "(1 process, 1 torch thread each)" in out
    meta = Committee.load(tmp_path / "a.pt").metadata
    assert meta["threads"] == 1 and meta["train_config"]["threads"] == 1
    with pytest.raises(SystemExit) as exit_, contextlib.redirect_stderr(io.StringIO()) as err:
        main(["train", src, "-o", str(tmp_path / "b.pt"), *short, "--threads", "0"])
    assert exit_.value.code == 2 and "expected 'auto' or a positive integer" in err.getvalue()
    assert not (tmp_path / "b.pt").exists()


def test_train_validation_shared_holds_one_split_out_of_every_member(files, tmp_path):
    src = str(files["dir"] / "lab.extxyz")
    short = ["--members", "2", "--hidden", "4", "--epochs", "2", "--lbfgs-steps", "0", "--no-progress"]
    code, out, _ = _run(["train", src, "-o", str(tmp_path / "s.pt"), *short, "--validation", "shared"])
    assert code == 0 and "on 32 of 36 structures" in out and "4 for validation" in out
    assert "RMSE validation (4 structures, committee mean)" in out
    assert Committee.load(tmp_path / "s.pt").metadata["train_config"]["validation"] == "shared"
    assert TrainingSection().validation == "folds"
    with pytest.raises(ValueError, match="validation must be one of folds, shared, got 'none'"):
        TrainingSection(validation="none").check()


# ----------------------------------------------------------------------------- select
def _independent(files: dict) -> dict:
    """Scores, pooled features and exclusion of the good pool frames, without alip's pool code."""
    committee = Committee.load(files["dir"] / "c.pt")
    good = files["good"]
    pred = committee.predict(good)
    values = committee.acsf.compute(good)
    feats = np.add.reduceat(values, pred.offsets[:-1], axis=0) / pred.n_atoms[:, None]
    excluded = np.array(
        [
            any(
                len(a) == len(b)
                and (a.numbers == b.numbers).all()
                and np.allclose(a.positions, b.positions, rtol=0, atol=1e-8)
                and np.allclose(a.cell.array, b.cell.array, rtol=0, atol=1e-8)
                for b in files["labeled"]
            )
            for a in good
        ]
    )
    return {
        "committee": committee,
        "force": qbc_scores(pred, "force"),
        "energy": qbc_scores(pred, "energy"),
        "combined": qbc_scores(pred, "combined"),
        "features": feats,
        "excluded": excluded,
    }


def test_select_matches_independent_scores_trust_window_and_exclusion(files):
    d, ids = files["dir"], files["ids"]
    ref = _independent(files)
    f = ref["force"]
    lo, hi = np.quantile(f[~ref["excluded"]], [0.2, 0.9])
    code, out, err = _run(
        [
            "select",
            str(d / "c.pt"),
            str(d / "pool.extxyz"),
            "-n",
            "6",
            "-o",
            str(d / "next.extxyz"),
            "--scores",
            str(d / "scores.csv"),
            "--trust-lo",
            repr(float(lo)),
            "--trust-hi",
            repr(float(hi)),
            "--exclude",
            str(d / "lab.extxyz"),
            "--no-progress",
        ]
    )
    assert code == 0, err
    free = ~ref["excluded"]
    below, above = free & (f < lo), free & (f > hi)
    cand = np.flatnonzero(free & ~below & ~above)
    expected = ids[cand[select_batch(f[cand], ref["features"][cand], 6, "fps", 4.0, 0)]]
    assert ref["excluded"].sum() >= 2 and below.sum() > 0 and above.sum() > 0
    assert f"excluded {ref['excluded'].sum()} already labelled" in out
    assert f"{below.sum()} below (accurate), {above.sum()} above (likely unphysical), {len(cand)} candidates" in out
    assert f"pool {len(ids) + len(BAD)} frames" in out and f"skipped {len(BAD)}" in out
    for frame in BAD:
        assert f"skipped frame {frame}:" in out

    written = read(d / "next.extxyz", ":")
    assert [a.info["pool_index"] for a in written] == expected.tolist()
    for a in written:
        src = read(d / "pool.extxyz", index=a.info["pool_index"])
        k = int(np.flatnonzero(ids == a.info["pool_index"])[0])
        assert (a.numbers == src.numbers).all() and np.array_equal(a.positions, src.positions)
        assert np.array_equal(a.cell.array, src.cell.array) and (a.pbc == src.pbc).all()
        assert a.info["pool_id"] == src.info["pool_id"] and a.calc is None
        assert np.isclose(a.info["max_force_dev"], f[k], rtol=1e-9, atol=1e-12)
        assert np.isclose(a.info["qbc_score"], f[k], rtol=1e-9, atol=1e-12)
        assert np.isclose(a.info["energy_std_per_atom"], ref["energy"][k], rtol=1e-9, atol=1e-12)

    with open(d / "scores.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == CSV_COLUMNS and [int(r["frame"]) for r in rows] == list(range(len(ids) + len(BAD)))
    for frame, kind in BAD.items():
        r = rows[frame]
        assert r["ok"] == "0" and r["selected"] == "0" and np.isnan(float(r["score"]))
        assert {"nan": "NaN/inf position", "carbon": "Z=6", "nocell": "missing cell"}[kind] in r["skipped_reason"]
    good_rows = [rows[i] for i in ids]
    assert all(r["ok"] == "1" for r in good_rows)
    assert [int(r["n_atoms"]) for r in good_rows] == [len(a) for a in files["good"]]
    assert np.allclose([float(r["max_force_dev"]) for r in good_rows], f, rtol=1e-9, atol=1e-12)
    assert np.allclose([float(r["energy_std_per_atom"]) for r in good_rows], ref["energy"], rtol=1e-9, atol=1e-12)
    assert sorted(int(r["frame"]) for r in rows if r["selected"] == "1") == sorted(expected.tolist())
    reasons = [r["skipped_reason"] for r in good_rows]
    assert reasons.count("already labelled (--exclude)") == ref["excluded"].sum()
    assert reasons.count("max_force_dev < trust_lo") == below.sum()
    assert reasons.count("max_force_dev > trust_hi") == above.sum() and reasons.count("") == len(cand)


def test_select_combined_kmeans_function_and_dask(files):
    d, ids = files["dir"], files["ids"]
    ref = _independent(files)
    sel = select_from_pool(
        ref["committee"], d / "pool.extxyz", 5, score="combined", diversity="kmeans", candidates=3, seed=4, chunk=7
    )
    expected = ids[select_batch(ref["combined"], ref["features"], 5, "kmeans", 3, 4)]
    assert sel.selected.tolist() == expected.tolist() and sel.n_excluded == sel.n_below == sel.n_above == 0
    assert np.allclose(sel.score[ids], combine_qbc(ref["energy"], ref["force"]), rtol=1e-9, atol=1e-12)
    assert sorted(sel.scores.skipped) == sorted(BAD)
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as c,
        distributed.Client(c) as client,
    ):
        on_dask = select_from_pool(
            ref["committee"],
            d / "pool.extxyz",
            5,
            score="combined",
            diversity="kmeans",
            candidates=3,
            seed=4,
            chunk=7,
            client=client,
        )
    assert on_dask.selected.tolist() == expected.tolist()


def test_select_nothing_in_window_writes_empty_file(files, tmp_path):
    d = files["dir"]
    code, out, err = _run(
        [
            "select",
            str(d / "c.pt"),
            str(d / "pool.extxyz"),
            "-n",
            "3",
            "-o",
            str(tmp_path / "n.xyz"),
            "--trust-lo",
            "1e6",
            "--no-progress",
        ]
    )
    assert code == 0 and "selected 0" in out and (tmp_path / "n.xyz").read_text() == ""


def test_select_bad_inputs_exit_2(files, tmp_path):
    d = files["dir"]
    (tmp_path / "empty.extxyz").write_text("")
    (tmp_path / "existing.extxyz").write_text("keep")
    base = [str(d / "c.pt"), str(d / "pool.extxyz"), "-n", "3", "--no-progress"]
    cases = [
        (base + ["-o", str(tmp_path / "existing.extxyz")], "exists; pass --force"),
        (base + ["-o", str(tmp_path / "o.xyz"), "--scores", str(tmp_path / "existing.extxyz")], "exists"),
        (base + ["-o", str(tmp_path / "o.xyz"), "--trust-lo", "2", "--trust-hi", "1"], "above --trust-hi"),
        ([str(d / "c.pt"), str(tmp_path / "empty.extxyz"), "-n", "3", "-o", str(tmp_path / "o.xyz")], "no structures"),
        (
            [str(d / "c.pt"), str(tmp_path / "nope.extxyz"), "-n", "3", "-o", str(tmp_path / "o.xyz")],
            "no such pool file",
        ),
        (
            [str(d / "lab.extxyz"), str(d / "pool.extxyz"), "-n", "3", "-o", str(tmp_path / "o.xyz")],
            "not a readable alip committee",
        ),
        (base + ["-o", str(tmp_path / "o.xyz"), "--exclude", str(tmp_path / "nope.extxyz")], "no such file"),
    ]
    for argv, message in cases:
        code, _, err = _run(["select", *argv])
        assert code == 2 and message in err and err.startswith("alip select: error:"), (argv, err)
    assert sorted(os.listdir(tmp_path)) == ["empty.extxyz", "existing.extxyz"]
    assert (tmp_path / "existing.extxyz").read_text() == "keep"


def test_modules_run_standalone():
    for module, command in (("alip.cli.train", "train"), ("alip.cli.select", "select")):
        done = subprocess.run([sys.executable, "-m", module, command, "--help"], capture_output=True, text=True)
        assert done.returncode == 0 and f"alip {command}" in done.stdout


def test_select_from_ase_database_pool(files, tmp_path):
    import ase.db

    from alip.cli.select import selected_atoms

    ref = _independent(files)
    with ase.db.connect(str(tmp_path / "pool.db")) as db:
        for a in files["good"]:
            db.write(a, pool_id=int(a.info["pool_id"]))
    sel = select_from_pool(ref["committee"], tmp_path / "pool.db", 4, score="energy", diversity="none")
    assert sel.selected.tolist() == select_batch(ref["energy"], None, 4, "none").tolist()
    for a in selected_atoms(sel):
        src = files["good"][a.info["pool_index"]]
        assert np.allclose(a.positions, src.positions, atol=1e-12) and a.info["pool_id"] == src.info["pool_id"]
        assert a.calc is None and np.isclose(a.info["qbc_score"], ref["energy"][a.info["pool_index"]], rtol=1e-9)


def test_select_cost_atoms3_ranks_by_score_per_cubed_atom_count(files, tmp_path):
    ref = _independent(files)
    ids = files["ids"]
    n_atoms = np.array([len(a) for a in files["good"]], dtype=float)
    assert len(np.unique(n_atoms)) > 1  # else the cost could not change the ranking
    pool = files["dir"] / "pool.extxyz"
    plain = select_from_pool(ref["committee"], pool, 4, score="force", diversity="none")
    cheap = select_from_pool(ref["committee"], pool, 4, score="force", diversity="none", cost="atoms3")
    assert cheap.selected.tolist() == ids[select_batch(ref["force"] / n_atoms**3, None, 4, "none")].tolist()
    assert cheap.selected.tolist() != plain.selected.tolist()
    assert np.allclose(cheap.score[ids], ref["force"], rtol=1e-9)  # reported scores stay raw
    with pytest.raises(ValueError, match="--cost"):
        select_from_pool(ref["committee"], pool, 4, cost="measured")
    out = str(tmp_path / "o.extxyz")
    with pytest.raises(SystemExit) as exit_:  # argparse's choices: exit 2 with the usage line
        _run(["select", str(files["dir"] / "c.pt"), str(pool), "-n", "2", "-o", out, "--cost", "n3"])
    assert exit_.value.code == 2


def test_train_select_chooses_the_descriptor_on_the_labels(files, tmp_path):
    from alip.core.selection import select_acsf

    src = files["dir"] / "lab.extxyz"
    short = ["--members", "2", "--hidden", "4", "--epochs", "2", "--lbfgs-steps", "0", "--no-progress"]
    code, out, _ = _run(["train", str(src), "-o", str(tmp_path / "s.pt"), *short, "--select", "6"])
    assert code == 0 and "chosen by CUR from the pool" in out
    acsf = Committee.load(tmp_path / "s.pt").acsf
    assert acsf.n_features == 6 and acsf.to_dict() == select_acsf(files["labeled"], 6).to_dict()
    code, out, _ = _run(["train", str(src), "-o", str(tmp_path / "d.pt"), *short])
    assert code == 0 and "(ACSF.cross_windows_si())" in out and Committee.load(tmp_path / "d.pt").acsf.n_features == 72
    code, _, err = _run(["train", str(src), "-o", str(tmp_path / "x.pt"), *short, "--select", "-1"])
    assert code == 2 and "select must be >= 0" in err
    code, _, err = _run(["train", str(src), "-o", str(tmp_path / "x.pt"), *short, "--select", "197"])
    assert code == 2 and "at most 196" in err
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(Committee.load(tmp_path / "s.pt").acsf.to_dict()))
    code, _, err = _run(["train", str(src), "-o", str(tmp_path / "x.pt"), *short, "--spec", str(spec), "--select", "6"])
    assert code == 2 and "not both" in err
    inline = json.dumps(acsf.to_dict())  # the spec inline and as a preset's name train with that descriptor
    code, out, err = _run(["train", str(src), "-o", str(tmp_path / "i.pt"), *short, "--spec", inline])
    assert code == 0 and "(--spec)" in out, err
    assert Committee.load(tmp_path / "i.pt").acsf.to_dict() == acsf.to_dict()
    code, out, err = _run(["train", str(src), "-o", str(tmp_path / "w.pt"), *short, "--spec", "windows_si"])
    assert code == 0 and Committee.load(tmp_path / "w.pt").acsf.n_features == 64, err
    code, _, err = _run(["train", str(src), "-o", str(tmp_path / "x.pt"), *short, "--spec", "no_such_preset"])
    assert code == 2 and "is not a preset" in err and not (tmp_path / "x.pt").exists()
    traj = tmp_path / "lab.traj"  # any ASE format: its elements are read with ASE
    write(traj, files["labeled"])
    code, out, err = _run(["train", str(traj), "-o", str(tmp_path / "t.pt"), *short, "--select", "6"])
    assert code == 0, err
    assert Committee.load(tmp_path / "t.pt").acsf.to_dict() == acsf.to_dict()
