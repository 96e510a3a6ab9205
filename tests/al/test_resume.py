"""Crash safety: the loop process is SIGKILLed during test-set labeling, during labeling of the
initial set and of a later batch, and during training; each time `run(..., resume=True)` picks
up. A counting oracle logs every finished label: none is computed twice, none is lost, and the
final state equals that of an uninterrupted run."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
import torch
from run_fixtures import COUNTING_ORACLE

from alip.config import Config
from alip.data.store import LabelStore
from alip.models.committee import Committee

ORACLE = COUNTING_ORACLE  # SW labels through a calculator that logs each label and can SIGKILL its process


RUNNER = "import sys; from alip.al.loop import run; run(sys.argv[1], resume=True)"


def _config(tmp_path, name: str, kill_at: list[int]) -> str:
    out = tmp_path / name
    cfg = Config.from_dict(
        {
            "run": {"out": str(out), "n_initial": 6, "batch_size": 3, "budget": 15, "progress": False},
            "oracle": {
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
            "labeling": {"executor": "serial"},
            "pool": {"n": 40, "max_atoms": 16, "random_atoms": [8, 12], "max_energy_above": 0.0},
            "test": {"n": 8, "n_volume": 5},
            "training": {"n_members": 2, "hidden": [8], "epochs": 12, "batch_size": 4, "lbfgs_steps": 0},
        }
    )
    path = tmp_path / f"{name}.toml"
    path.write_text(cfg.to_toml())
    return str(path)


def _launch(tmp_path, config: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen(
        [sys.executable, "-c", RUNNER, config], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _finish(proc: subprocess.Popen, timeout: float = 120) -> int:
    out, _ = proc.communicate(timeout=timeout)
    proc.stdout_text = out  # type: ignore[attr-defined]
    return proc.returncode


def _kill_when_logged(proc: subprocess.Popen, log: str, text: str, timeout: float = 120) -> str:
    """SIGKILL ``proc`` as soon as ``text`` appears in ``log``; returns the log at that moment."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise AssertionError(f"process ended before {text!r}: {proc.communicate()[0]}")
        content = open(log).read() if os.path.exists(log) else ""
        if text in content:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            return open(log).read()
        time.sleep(0.01)
    proc.kill()
    raise AssertionError(f"{text!r} never appeared in {log}")


def _curve(run_dir) -> list[list[str]]:
    with open(os.path.join(run_dir, "learning_curve.csv")) as fh:
        rows = list(csv.reader(fh))
    return [row[:5] for row in rows]  # without the wall times


def _labels(run_dir) -> dict[int, tuple]:
    store = LabelStore(os.path.join(run_dir, "labels.db"))
    out = {}
    for pid in store.ids("labeled"):
        lab = store.get_label(pid)
        out[pid] = (lab.energy, lab.forces.tobytes())
    return out


@pytest.mark.slow
def test_sigkill_at_several_points_then_resume_gives_the_uninterrupted_result(tmp_path):
    (tmp_path / "counting_oracle.py").write_text(ORACLE)
    # calls: test set 1-13, initial set 14-19, iteration 1: 20-22, iteration 2: 23-25, iteration 3: 26-28
    crashy = _config(tmp_path, "crashy", kill_at=[5, 16, 24])
    reference = _config(tmp_path, "reference", kill_at=[])
    ref_proc = _launch(tmp_path, reference)

    for k in (5, 16, 24):  # killed by its own oracle in the middle of label k
        proc = _launch(tmp_path, crashy)
        assert _finish(proc) == -signal.SIGKILL, proc.stdout_text
        assert (tmp_path / f"killed_at_{k}").exists()
    proc = _launch(tmp_path, crashy)  # killed from outside while training iteration 3
    log = _kill_when_logged(proc, str(tmp_path / "crashy" / "log.txt"), "iteration 3: training on")
    assert proc.returncode == -signal.SIGKILL
    assert log.rstrip().splitlines()[-1].endswith("iteration 3: training on 15 structures")
    assert not (tmp_path / "crashy" / "checkpoints" / "committee_003.pt").exists()
    proc = _launch(tmp_path, crashy)
    assert _finish(proc) == 0, proc.stdout_text
    assert _finish(ref_proc) == 0, ref_proc.stdout_text

    run_log = (tmp_path / "crashy" / "log.txt").read_text()
    assert run_log.count("resuming at iteration") == 2  # after the kills at 24 (iteration 2) and in training
    calls = (tmp_path / "crashy_calls.log").read_text().split()
    ref_calls = (tmp_path / "reference_calls.log").read_text().split()
    assert len(calls) == 28 and Counter(calls).most_common(1)[0][1] == 1  # no label computed twice
    assert sorted(calls) == sorted(ref_calls)

    crashy_dir, ref_dir = tmp_path / "crashy", tmp_path / "reference"
    store = LabelStore(crashy_dir / "labels.db")
    assert store.counts() == {"pool": 25, "queued": 0, "labeled": 15, "failed": 0}
    assert _labels(crashy_dir) == _labels(ref_dir)  # no label lost, identical values
    assert _curve(crashy_dir) == _curve(ref_dir)
    assert [r[1] for r in _curve(crashy_dir)[1:]] == ["6", "9", "12", "15"]
    for n in range(4):
        a = json.load(open(crashy_dir / "iterations" / f"iter_{n:03d}.json"))
        b = json.load(open(ref_dir / "iterations" / f"iter_{n:03d}.json"))
        for key in ("selected", "selected_scores", "selected_families", "labeled_this_iteration", "errors"):
            assert a[key] == b[key], (n, key)
        wa = Committee.load(crashy_dir / a["checkpoint"]).network.state_dict()
        wb = Committee.load(ref_dir / b["checkpoint"]).network.state_dict()
        assert all(torch.equal(wa[k], wb[k]) for k in wa), n
    assert open(crashy_dir / "test.extxyz").read() == open(ref_dir / "test.extxyz").read()


def test_resume_of_a_kill_between_selection_and_queueing(tmp_path):
    """The iteration file is the commit point: a selection written but not yet queued is labeled next."""
    from alip.al.loop import run

    cfg = Config.from_dict(
        {
            "run": {"out": str(tmp_path / "run"), "n_initial": 5, "batch_size": 2, "budget": 9, "progress": False},
            "labeling": {"executor": "serial"},
            "pool": {"n": 20, "max_atoms": 16, "random_atoms": [8, 12], "max_energy_above": 0.0},
            "test": {"n": 4, "n_volume": 3},
            "training": {"n_members": 2, "hidden": [6], "epochs": 2, "lbfgs_steps": 0},
        }
    )
    done = run(cfg)
    full = [json.load(open(tmp_path / "run" / "iterations" / f"iter_{n:03d}.json")) for n in range(3)]
    # simulate the crash: forget iterations 1-2 and the labels of iteration 1's batch, keep iter_000.json
    store = LabelStore(tmp_path / "run" / "labels.db")
    for n in (1, 2):
        os.remove(tmp_path / "run" / "iterations" / f"iter_{n:03d}.json")
        os.remove(tmp_path / "run" / "checkpoints" / f"committee_{n:03d}.pt")
    with store.db:
        for pid in full[0]["selected"] + full[1]["selected"]:
            bare = store.get(pid)
            bare.calc = None
            store.db.update(store._row_id(pid), atoms=bare, status="pool")
    again = run(str(tmp_path / "run"), resume=True)
    assert [r["n_labels"] for r in again.curve] == [r["n_labels"] for r in done.curve] == [5, 7, 9]
    for n in (1, 2):
        rec = json.load(open(tmp_path / "run" / "iterations" / f"iter_{n:03d}.json"))
        assert rec["labeled_this_iteration"] == full[n]["labeled_this_iteration"]
        assert rec["errors"] == full[n]["errors"]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
