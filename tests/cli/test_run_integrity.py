"""A run directory survives what users do to it (issue 16), `alip run` driven as a subprocess:
moved and copied mid-run, two processes at once, configuration edited between runs, bad
input frames, a missing oracle, a worker pool that dies.  A counting oracle appends every
finished label to ``calls.log`` in the process's working directory, so each launch can
be given its own log and duplicates across launches are visible."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from alip.data.store import LabelStore

ORACLE = textwrap.dedent('''
    """Stillinger-Weber labels; logs each finished label to ./calls.log; KILL_AT=k SIGKILLs the
    process at its k-th label, SLEEP=s waits s per label, crash_flag kills the worker once, and
    while fail_flag exists every third pool structure fails like an unconverged SCF."""
    import os
    import signal
    import time

    from ase.calculators.calculator import Calculator, all_changes

    from alip.data.oracles import make_oracle

    _done = 0


    class CountingSW(Calculator):
        implemented_properties = ["energy", "forces", "stress"]

        def __init__(self, crash_flag="", fail_flag=""):
            super().__init__()
            self.crash_flag, self.fail_flag, self.sw = crash_flag, fail_flag, make_oracle("sw")

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            global _done
            super().calculate(atoms, properties, system_changes)
            info = self.atoms.info
            if self.crash_flag and "test_id" not in info and not os.path.exists(self.crash_flag):
                open(self.crash_flag, "w").close()
                os._exit(1)  # the labeling worker dies: BrokenProcessPool in the parent
            if (self.fail_flag and os.path.exists(self.fail_flag) and "test_id" not in info
                    and info["pool_id"] % 3 == 0):
                raise RuntimeError("SCF not converged")
            _done += 1
            if _done == int(os.environ.get("KILL_AT", "0")):
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(float(os.environ.get("SLEEP", "0")))
            energy, forces, stress = self.sw.compute(self.atoms.copy())
            self.results = {"energy": energy, "forces": forces, "stress": stress}
            key = f"test:{info['test_id']}" if "test_id" in info else f"pool:{info['pool_id']}"
            with open("calls.log", "a") as fh:
                fh.write(key + "\\n")


    def make(crash_flag="", fail_flag=""):
        return CountingSW(crash_flag, fail_flag)
''')

# 9 test labels, then 6 initial + 3 + 3 pool labels (budget 12)
CONFIG = textwrap.dedent("""
    [run]
    out = "{out}"
    n_initial = 6
    batch_size = 3
    budget = 12
    progress = false
    [oracle]
    spec = {{type = "user", factory = "{factory}", kwargs = {{crash_flag = "{crash_flag}", fail_flag = "{fail_flag}"}}}}
    [labeling]
    executor = "{executor}"
    max_workers = 1
    [pool]
    {pool}
    max_atoms = 16
    random_atoms = [8, 12]
    [test]
    n = 6
    n_volume = 3
    [training]
    n_members = 2
    hidden = [8]
    epochs = 5
    batch_size = 4
""")


@pytest.fixture
def work(tmp_path):
    (tmp_path / "counting_oracle.py").write_text(ORACLE)
    return tmp_path


def _config(
    work: Path,
    out: str,
    factory: str = "counting_oracle:make",
    crash_flag: str = "",
    executor: str = "serial",
    pool: str = "n = 30",
    fail_flag: str = "",
) -> Path:
    path = work / f"{out}.toml"
    path.write_text(
        CONFIG.format(
            out=work / out, factory=factory, crash_flag=crash_flag, executor=executor, pool=pool, fail_flag=fail_flag
        )
    )
    return path


def _alip(
    work: Path, *args: str, cwd: Path | None = None, env: dict | None = None, wait: bool = True
) -> subprocess.Popen | subprocess.CompletedProcess:
    cwd = cwd or work
    cwd.mkdir(exist_ok=True)
    full_env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(work), os.environ.get("PYTHONPATH", "")]),
        OMP_NUM_THREADS="1",
        **(env or {}),
    )
    cmd = [sys.executable, "-m", "alip.cli", "run", *args]
    if not wait:
        return subprocess.Popen(cmd, cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=300)


def _calls(where: Path) -> list[str]:
    log = where / "calls.log"
    return log.read_text().split() if log.exists() else []


def _snapshot(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def _labeled_keys(run_dir: Path) -> set[str]:
    store = LabelStore(run_dir / "labels.db")
    test = LabelStore(run_dir / "test.db")
    return {f"pool:{i}" for i in store.ids("labeled")} | {f"test:{i}" for i in test.ids("labeled")}


@pytest.mark.slow
def test_moved_and_copied_runs_resume_in_place_without_relabeling(work):
    cfg = _config(work, "run")
    killed = _alip(work, str(cfg), cwd=work / "first", env={"KILL_AT": "14"})  # 9 test + 4 pool labels
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    before = _calls(work / "first")
    assert len(before) == 13
    shutil.copytree(work / "run", work / "copy")
    (work / "run").rename(work / "moved")

    moved = _alip(work, "--resume", str(work / "moved"), cwd=work / "second")
    assert moved.returncode == 0, moved.stderr
    assert not (work / "run").exists()  # nothing written to the old path
    after_move = _calls(work / "second")
    assert not set(after_move) & set(before) and len(after_move) == 21 - 13  # no label recomputed
    assert set(before) | set(after_move) == _labeled_keys(work / "moved")
    assert f'out = "{work / "moved"}"' in (work / "moved" / "config.toml").read_text()
    assert "took over the lock of pid" in (work / "moved" / "log.txt").read_text()  # the killed holder's

    original = _snapshot(work / "moved")
    copied = _alip(work, "--resume", str(work / "copy"), cwd=work / "third")
    assert copied.returncode == 0, copied.stderr
    after_copy = _calls(work / "third")
    assert not set(after_copy) & set(before) and len(after_copy) == 8
    assert _snapshot(work / "moved") == original  # the copy wrote nothing into the run it came from
    assert copied.stdout.splitlines()[-1].split()[:3] == ["2", "12", "0"]  # iteration, labels, failed
    assert (work / "copy" / "learning_curve.csv").read_text().splitlines()[1:] != []


@pytest.mark.slow
def test_two_concurrent_resumes_one_refused_no_duplicate_oracle_call(work):
    cfg = _config(work, "run")
    killed = _alip(work, str(cfg), cwd=work / "first", env={"KILL_AT": "10"})
    assert killed.returncode == -signal.SIGKILL
    first = _alip(work, "--resume", str(work / "run"), cwd=work / "a", env={"SLEEP": "0.8"}, wait=False)
    log = work / "run" / "log.txt"
    t0 = time.time()
    while "took over the lock" not in log.read_text():  # the first resume holds the run now
        assert first.poll() is None and time.time() - t0 < 120, first.communicate()
        time.sleep(0.05)
    second = _alip(work, "--resume", str(work / "run"), cwd=work / "b")
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert second.returncode == 2
    assert f"is in use by pid {first.pid} on {socket.gethostname()} (since " in second.stderr
    assert "Traceback" not in second.stderr
    calls = _calls(work / "first") + _calls(work / "a") + _calls(work / "b")
    assert _calls(work / "b") == [] and Counter(calls).most_common(1)[0][1] == 1  # 0 duplicate oracle calls
    assert set(calls) == _labeled_keys(work / "run") and len(calls) == 21
    assert json.loads((work / "run" / "lock").read_text() or "{}") == {}  # released


@pytest.mark.slow
def test_budget_raised_on_resume_continues_and_a_strategy_change_is_refused(work):
    cfg = _config(work, "run")
    assert _alip(work, str(cfg)).returncode == 0
    config = work / "run" / "config.toml"
    config.write_text(config.read_text().replace("budget = 12 ", "budget = 15 "))
    more = _alip(work, "--resume", str(work / "run"))
    assert more.returncode == 0, more.stderr
    assert "budget spent" in more.stdout and more.stdout.splitlines()[-1].split()[:2] == ["3", "15"]
    log = (work / "run" / "log.txt").read_text()
    assert "resume: applied run.budget: 12 -> 15" in log and "reopening iteration 2" in log
    assert len(_calls(work)) == 9 + 15

    config.write_text(config.read_text().replace('strategy = "qbc"', 'strategy = "random"'))
    refused = _alip(work, "--resume", str(work / "run"))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "run.strategy changed from 'qbc' to 'random'" in refused.stderr and "--force" in refused.stderr
    forced = _alip(work, "--resume", str(work / "run"), "--force")
    assert forced.returncode == 0, forced.stderr
    assert "FORCED unsafe change run.strategy: 'qbc' -> 'random'" in (work / "run" / "log.txt").read_text()
    meta = LabelStore(work / "run" / "labels.db").meta
    assert meta["forced"][0]["changes"] == [{"key": "run.strategy", "old": "qbc", "new": "random"}]


def _pool_file(work: Path, defect: str) -> tuple[Path, int, int]:
    """A pool extxyz with one defective frame: (path, frame, 1-based line named in the error)."""
    from alip.data.io import write_extxyz
    from alip.data.structures import generate_si_pool

    pool = generate_si_pool(
        24,
        seed=0,
        family_kwargs={
            "small_distortion": {"max_atoms": 16},
            "large_distortion": {"max_atoms": 16},
            "random": {"n_atoms": (8, 12)},
        },
    )
    path = work / f"{defect}.extxyz"
    write_extxyz(path, pool)
    lines = path.read_text().splitlines()
    starts = [0]
    for _ in pool[:-1]:
        starts.append(starts[-1] + int(lines[starts[-1]]) + 2)
    frame = 20 if defect != "truncated" else len(pool) - 1
    head = starts[frame]
    if defect == "nan":
        parts = lines[head + 2 + 3].split()
        lines[head + 2 + 3] = " ".join([parts[0], "nan", *parts[2:]])
        line = head + 2 + 3 + 1
    elif defect == "no_cell":
        lines[head + 1] = 'Properties=species:S:1:pos:R:3 pbc="T T T"'
        line = head + 1
    elif defect in ("element", "not_a_number"):
        parts = lines[head + 2].split()
        lines[head + 2] = " ".join(["Xx", *parts[1:]] if defect == "element" else [parts[0], "abc", *parts[2:]])
        line = head + 2 + 1
    else:  # truncated: the file ends inside the last frame
        lines = lines[: head + 4]
        line = head + 1
    path.write_text("\n".join(lines) + "\n")
    return path, frame, line


@pytest.mark.parametrize("defect", ["nan", "no_cell", "element", "not_a_number", "truncated"])
def test_bad_pool_frames_are_refused_before_any_oracle_call(work, defect):
    path, frame, line = _pool_file(work, defect)
    cfg = _config(work, "run", pool=f'file = "{path}"')
    result = _alip(work, str(cfg))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"frame {frame} (line " in result.stderr and f"line {line}" in result.stderr, result.stderr
    assert str(path) in result.stderr and "--on-bad skip" in result.stderr
    assert _calls(work) == [] and not (work / "run").exists()  # nothing paid, nothing blocks a rerun


@pytest.mark.slow
def test_on_bad_skip_leaves_the_bad_frame_out_and_logs_it(work):
    path, frame, _ = _pool_file(work, "nan")
    cfg = _config(work, "run", pool=f'file = "{path}"')
    skipped = _alip(work, str(cfg), "--on-bad", "skip")
    assert skipped.returncode == 0, skipped.stderr
    assert f"skipped 1 unusable frame(s) (pool.on_bad = 'skip'): {frame}" in (work / "run" / "log.txt").read_text()
    assert len(LabelStore(work / "run" / "labels.db")) == 23


@pytest.mark.parametrize(
    "factory,error",
    [("no_such_module:make", "No module named 'no_such_module'"), ("counting_oracle:nope", "has no attribute 'nope'")],
)
def test_a_missing_oracle_factory_is_one_clear_line(work, factory, error):
    result = _alip(work, str(_config(work, "run", factory=factory)))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("alip run: error: oracle.spec") and error in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (work / "run").exists()


def test_n_initial_larger_than_the_pool_leaves_nothing_behind(work):
    cfg = _config(work, "run", pool="n = 5")
    result = _alip(work, str(cfg))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "run.n_initial = 6 exceeds the pool (5 structures)" in result.stderr
    assert _calls(work) == [] and not (work / "run").exists()  # `alip run CONFIG` works again after the fix


@pytest.mark.slow
def test_a_worker_pool_failure_is_retried_on_resume_with_the_budget_intact(work):
    cfg = _config(work, "run", crash_flag=str(work / "crashed"), executor="process")
    broken = _alip(work, str(cfg))
    assert broken.returncode == 2 and "Traceback" not in broken.stderr
    assert "failed for infrastructure reasons" in broken.stderr and "BrokenProcessPool" in broken.stderr
    assert f"alip run --resume {work / 'run'}" in broken.stderr
    store = LabelStore(work / "run" / "labels.db")
    assert store.counts()["failed"] == 6 and store.failed_ids("infrastructure") == store.failed_ids()
    resumed = _alip(work, "--resume", str(work / "run"))
    assert resumed.returncode == 0, resumed.stderr
    store = LabelStore(work / "run" / "labels.db")
    assert store.counts()["labeled"] == 12 and store.counts()["failed"] == 0  # the whole budget labeled
    assert "requeued 6 failed labels for iteration 0" in (work / "run" / "log.txt").read_text()
    calls = _calls(work)
    assert len(calls) == 21 and Counter(calls).most_common(1)[0][1] == 1
    curve = (work / "run" / "learning_curve.csv").read_text().splitlines()
    assert curve[0].endswith(",n_failed") and [r.split(",")[1] for r in curve[1:]] == ["6", "9", "12"]


@pytest.mark.slow
def test_failed_labels_are_counted_and_retry_failed_labels_them_again(work):
    flag = work / "scf_fails"
    flag.touch()
    cfg = _config(work, "run", fail_flag=str(flag))
    first = _alip(work, str(cfg))
    assert first.returncode == 0, first.stderr
    store = LabelStore(work / "run" / "labels.db")
    failed = store.failed_ids()
    assert failed and store.failed_ids("structure") == failed  # the structure's fault: counted in the budget
    assert store.counts()["labeled"] + len(failed) == 12 and "SCF not converged" in store.get_label(failed[0]).error
    assert f"failed labels: {len(failed)} of the structure" in first.stdout
    last = (work / "run" / "learning_curve.csv").read_text().splitlines()[-1].split(",")
    assert int(last[-1]) == len(failed)  # n_failed, the last column
    flag.unlink()  # the cause is fixed
    again = _alip(work, "--retry-failed", str(work / "run"))  # a run directory as CONFIG continues it
    assert again.returncode == 0, again.stderr
    store = LabelStore(work / "run" / "labels.db")
    assert store.failed_ids() == [] and store.counts()["labeled"] == 12
    assert all(store.status(i) == "labeled" for i in failed)
    assert Counter(_calls(work)).most_common(1)[0][1] == 1


@pytest.mark.slow
def test_item7_train_progress_and_frames_cli_flags_and_strict_summary_json(work):
    """Item 7: `alip train` prints epochs and losses and names a NaN frame by line; CLI errors
    name flags, not keyword arguments; summary.json values are strict JSON (null, not NaN)."""
    import numpy as np
    from ase.io import read
    from run_fixtures import labeled

    from alip.cli._common import cli_error
    from alip.data.io import write_extxyz
    from alip.files import json_safe

    path, frame, line = _pool_file(work, "nan")
    good = work / "labeled.extxyz"
    frames = read(path, index=":")
    write_extxyz(good, labeled([a for k, a in enumerate(frames) if k != frame]))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    train = [sys.executable, "-m", "alip.cli", "train", "-o", str(work / "c.pt"), "--members", "2", "--epochs", "12"]
    ok = subprocess.run([*train[:4], str(good), *train[4:]], capture_output=True, text=True, env=env, timeout=300)
    assert ok.returncode == 0, ok.stderr
    epochs = [ln for ln in ok.stdout.splitlines() if ln.startswith("epoch")]
    assert [ln.split()[1] for ln in epochs] == ["1/12", "10/12", "12/12"] and "validation" in epochs[0]
    bad = subprocess.run(
        [*train[:4], str(path), *train[4:], "--force"], capture_output=True, text=True, env=env, timeout=300
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert f"frame {frame} (line {line}): NaN/inf position of atom 3" in bad.stderr, bad.stderr

    text = cli_error(
        "featurize", "out exists: pass resume=True to continue it or overwrite=True to start again; on_bad='skip' skips"
    )
    assert text == (
        "alip featurize: error: out exists: pass --resume to continue it or --overwrite to start "
        "again; --on-bad skip skips"
    )
    summary = {"a": float("nan"), "b": [np.float64(np.inf), np.float32(1.5)], "c": {"d": np.array([np.nan, 2.0])}}
    assert json.loads(json.dumps(json_safe(summary), allow_nan=False)) == {
        "a": None,
        "b": [None, 1.5],
        "c": {"d": [None, 2.0]},
    }
