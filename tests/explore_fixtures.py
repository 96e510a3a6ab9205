"""Shared pieces of the exploration tests: a tiny committee trained on Stillinger–Weber, and
the counting, self-killing oracle and process helpers of the crash tests."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
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
    cfg = TrainConfig(n_members=3, hidden=(16,), epochs=80, seed=0, val_fraction=0.0)
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
#: An oracle module: SW labels through a calculator that logs every finished label
#: ("pool:<id>" / "test:<id>") and SIGKILLs its own process in the middle of label k.
COUNTING_ORACLE = textwrap.dedent("""
    import os
    import signal

    from ase.calculators.calculator import Calculator, all_changes

    from alip.data.oracles import make_oracle


    class CountingSW(Calculator):
        implemented_properties = ["energy", "forces", "stress"]

        def __init__(self, log, kill_at=(), flag_dir=""):
            super().__init__()
            self.log, self.kill_at, self.flag_dir = log, list(kill_at), flag_dir
            self.sw = make_oracle("sw")

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            done = sum(1 for _ in open(self.log)) if os.path.exists(self.log) else 0
            for k in self.kill_at:
                flag = os.path.join(self.flag_dir, f"killed_at_{k}")
                if done + 1 == k and not os.path.exists(flag):
                    open(flag, "w").close()
                    os.kill(os.getpid(), signal.SIGKILL)
            energy, forces, stress = self.sw.compute(self.atoms.copy())
            self.results = {"energy": energy, "forces": forces, "stress": stress}
            info = self.atoms.info
            key = f"test:{info['test_id']}" if "test_id" in info else f"pool:{info['pool_id']}"
            with open(self.log, "a") as fh:
                fh.write(key + "\\n")


    def make(log, kill_at=(), flag_dir=""):
        return CountingSW(log, kill_at, flag_dir)
""")


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
