"""Shared pieces of the exploration tests: a tiny committee trained on Stillinger–Weber, and
the counting, self-killing oracle and process helpers of the crash tests."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from ase.build import bulk


@functools.cache
def tiny_committee_bytes() -> bytes:
    """A 3-member committee trained briefly on 24 SW-labelled rattled 8-atom Si cells (saved bytes)."""
    import alip
    from alip.data.io import attach_label
    from alip.data.oracles import make_oracle
    from alip.models.training import TrainConfig, train_committee

    oracle, rng, train = make_oracle("sw"), np.random.default_rng(0), []
    for i in range(24):
        a = bulk("Si", "diamond", a=5.431 * (1 + 0.02 * rng.standard_normal()), cubic=True)
        a.rattle(0.02 + 0.1 * i / 24, seed=i)
        lab = oracle.label(a)
        train.append(attach_label(a, lab.energy, lab.forces, lab.stress))
    # pinned, bootstrapped and briefly polished: its members must disagree above trust_lo on
    # these small cells (the tests exercise candidate selection, not the training defaults)
    cfg = TrainConfig(n_members=3, hidden=(16,), epochs=80, seed=0, val_fraction=0.0, bootstrap=True, lbfgs_steps=100)
    committee = train_committee(train, alip.ACSF.default_si(), cfg).committee
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "c.pt")
        committee.save(path)
        return Path(path).read_bytes()


def tiny_committee(path: os.PathLike) -> str:
    """Write the tiny committee to ``path``; returns it as a string."""
    Path(path).write_bytes(tiny_committee_bytes())
    return str(path)


# ----------------------------------------------------------------------------- crash tests
#: the counting, self-killing SW oracle module (COUNTING_ORACLE) is in run_fixtures, shared with tests/al


def launch_run(tmp_path: Path, config: str) -> subprocess.Popen:
    """`run(config, resume=True)` in a child process that can import the counting oracle."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    code = "import sys; from alip.al.loop import run; run(sys.argv[1], resume=True)"
    return subprocess.Popen(
        [sys.executable, "-c", code, config], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    """(return code, output) of a launched run."""
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def kill_when_logged(proc: subprocess.Popen, log: Path, text: str, timeout: float = 300) -> str:
    """SIGKILL ``proc`` as soon as ``text`` appears in ``log``; returns the log at that moment."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise AssertionError(f"process ended before {text!r}: {proc.communicate()[0]}")
        content = log.read_text() if log.exists() else ""
        if text in content:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            return log.read_text()
        time.sleep(0.01)
    proc.kill()
    raise AssertionError(f"{text!r} never appeared in {log}")


def stored_labels(run_dir: Path) -> dict[int, tuple]:
    """{pool id: (energy, forces bytes)} of every labeled row."""
    from alip.data.store import LabelStore

    store = LabelStore(run_dir / "labels.db")
    out = {}
    for pid in store.ids("labeled"):
        lab = store.get_label(pid)
        out[pid] = (lab.energy, lab.forces.tobytes())
    return out
