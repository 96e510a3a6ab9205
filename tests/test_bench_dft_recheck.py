"""bench/dft_recheck.py: labels against a recomputation, and a run that never pays for a frame twice."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from bench_scripts import load_bench


@pytest.fixture(scope="module")
def dr():
    return load_bench("dft_recheck")


def test_a_model_that_is_the_truth_errs_by_the_labels_deviation(dr):
    rng = np.random.default_rng(1)
    n = np.array([64, 64, 63, 64, 63, 64])
    truth = rng.normal(-4.6, 0.05, size=6)  # eV/atom
    noise = rng.normal(0, 4e-3, size=6)
    noise -= noise.mean()
    label = (truth + noise + 0.8) * n  # the labels' code: another reference energy per atom
    dft = truth * n
    model = (truth + 0.8) * n  # trained on the labels, it has their reference energy
    res = dr.label_consistency(n, label, dft, model)
    assert res["offset"] == pytest.approx(800.0)
    assert res["label_minus_dft"] == pytest.approx(1e3 * noise)
    assert res["label_rms"] == pytest.approx(1e3 * np.sqrt(np.mean(noise**2)))
    assert res["error"] == pytest.approx(-1e3 * noise)
    assert res["error_rms"] == pytest.approx(res["label_rms"])
    assert res["model_dft_rms"] == pytest.approx(0.0, abs=1e-9)
    assert res["correlation"] == pytest.approx(-1.0)


def test_consistent_labels_leave_the_models_own_error(dr):
    rng = np.random.default_rng(2)
    n = np.array([64, 63, 64, 63, 64])
    dft = rng.normal(-4.6, 0.05, size=5) * n
    label = dft - 0.3 * n  # a constant per atom, not per frame: nothing left with 63 and 64 atoms
    own = rng.normal(0, 3e-3, size=5)
    res = dr.label_consistency(n, label, dft, label + own * n)
    assert res["offset"] == pytest.approx(-300.0)
    assert res["label_rms"] == pytest.approx(0.0, abs=1e-9)
    assert res["error"] == pytest.approx(1e3 * own)
    assert res["model_minus_dft"] == pytest.approx(1e3 * own)
    assert "error" not in dr.label_consistency(n, label, dft)


def test_parse_frames_and_bad_input(dr):
    assert dr.parse_frames(["test:18,15", "train:3"]) == [("test", 18), ("test", 15), ("train", 3)]
    for bad in ("valid:1", "test", "test:"):
        with pytest.raises(SystemExit, match="split:index"):
            dr.parse_frames([bad])


def test_run_skips_frames_paid_for_and_rejects_bad_indices_first(dr, tmp_path, capsys):
    if not os.path.exists(os.path.join(dr.DEFAULT_DATA, "test.extxyz")):
        pytest.skip(f"mlearn Si benchmark not found at {dr.DEFAULT_DATA}")
    out = tmp_path / "recheck.jsonl"
    done = {"split": "test", "index": 3, "kpts": 2, "ecut": 300.0, "width": 0.05}
    out.write_text(json.dumps(done) + "\n")
    # everything asked for is there already: no DFT, no GPAW needed, the file unchanged
    assert dr.main(["run", "--frames", "test:3,3", "--out", str(out)]) == 0
    assert "skipped" in capsys.readouterr().out
    assert out.read_text() == json.dumps(done) + "\n"
    # test:4 is not paid for: the bad index must stop the run before GPAW is needed or started
    with pytest.raises(SystemExit, match="no index 25"):
        dr.main(["run", "--frames", "test:4,25", "--out", str(out)])
    with pytest.raises(SystemExit, match="no index -1"):
        dr.main(["run", "--frames", "train:-1", "--out", str(out)])


def test_kpoint_shifts_pair_the_meshes_of_each_frame_at_equal_settings(dr):
    def rec(split, index, kpts, energy, forces, basis="dzp", width=0.05):
        return {
            "split": split,
            "index": index,
            "kpts": kpts,
            "ecut": 300.0,
            "width": width,
            "basis": basis,
            "n": 2,
            "label": -9.0,
            "energy": energy,
            "forces": forces,
        }

    f0 = [[0.0, 0.0, 0.1], [0.0, 0.0, -0.1]]
    f1 = [[0.0, 0.0, 0.4], [0.0, 0.0, -0.4]]
    records = [
        rec("train", 4, 2, -8.000, f0),
        rec("test", 1, 3, -9.010, f1),
        rec("test", 1, 2, -9.000, f0),
        rec("train", 4, 3, -7.996, f0),
        rec("train", 7, 2, -5.0, f0),  # one mesh only: left out
        rec("train", 4, 3, -1.0, f0, basis=None),  # plane waves: another setting
        rec("train", 4, 3, -1.0, f0, width=0.1),  # another width
    ]
    rows = dr.kpoint_shifts(records, (2, 3), 300.0, 0.05, "dzp")
    assert [(r["split"], r["index"]) for r in rows] == [("test", 1), ("train", 4)]
    assert rows[0]["shift"] == pytest.approx(-5.0)  # -10 meV over 2 atoms
    assert rows[1]["shift"] == pytest.approx(2.0)
    assert rows[0]["force_shift"] == pytest.approx(0.3 * np.sqrt(2 / 6))
    assert rows[1]["force_shift"] == pytest.approx(0.0)
    assert dr.kpoint_shifts(records, (2, 3), 300.0, 0.05, None) == []  # no plane-wave frame at both


def test_pending_tells_lcao_from_plane_waves_and_reads_old_records_as_plane_waves(dr):
    old = {"split": "test", "index": 3, "kpts": 2, "ecut": 300.0, "width": 0.05}  # before --basis
    lcao = old | {"index": 4, "basis": "dzp"}
    todo = [("test", 3), ("test", 4), ("test", 3)]
    assert dr.pending([old, lcao], todo, 2, 300.0, 0.05, None) == [("test", 4, 2, 300.0, 0.05, None)]
    assert dr.pending([old, lcao], todo, 2, 300.0, 0.05, "dzp") == [("test", 3, 2, 300.0, 0.05, "dzp")]
    assert dr.pending([old, lcao], todo, 3, 300.0, 0.05, "dzp") == [
        ("test", 3, 3, 300.0, 0.05, "dzp"),
        ("test", 4, 3, 300.0, 0.05, "dzp"),
    ]
