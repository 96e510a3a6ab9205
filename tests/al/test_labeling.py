"""Batch labeling on executors: process pool, Dask LocalCluster, failures, timeouts,
and crash safety under SIGKILL."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
import pytest
from ase.calculators.calculator import Calculator, all_changes

from alip.al.labeling import InlineExecutor, ThreadLimitedProcessPool, label_batch, make_process_pool
from alip.data import structures as st
from alip.data.oracles import ManybodyOracle, UserOracle, make_oracle
from alip.data.store import LabelStore

HERE = Path(__file__).resolve().parent
# workers import this module by name ("test_labeling:scripted"); spawned ones inherit sys.path
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


# ----------------------------------------------------------------------------- helper calculators
class Scripted(Calculator):
    """Stillinger-Weber, but misbehaving for structures tagged in ``info["test"]``."""

    implemented_properties = ["energy", "forces", "stress"]

    def __init__(self, delay=0.0, **kw):
        super().__init__(**kw)
        self.delay = delay
        self.sw = ManybodyOracle("sw")

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        mode = self.atoms.info.get("test", "ok")
        time.sleep(self.delay + (30.0 if mode == "hang" else 0.0))
        if mode == "raise":
            raise RuntimeError("KohnShamConvergenceError: SCF not converged (scripted)")
        energy, forces, stress = self.sw.compute(self.atoms.copy())
        self.results = {"energy": float("nan") if mode == "nan" else energy, "forces": forces, "stress": stress}


def scripted(delay=0.0):
    return Scripted(delay=delay)


class ThreadEnv(Calculator):
    """Energy = OMP_NUM_THREADS seen by the worker (to check the per-worker settings)."""

    implemented_properties = ["energy", "forces"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.results = {
            "energy": float(os.environ.get("OMP_NUM_THREADS", "-1")),
            "forces": np.zeros((len(self.atoms), 3)),
        }


def thread_env():
    return ThreadEnv()


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def structures():
    return st.generate_si_pool(12, seed=21)


@pytest.fixture(scope="module")
def reference(structures):
    oracle = make_oracle("sw")
    return {a.info["pool_id"]: oracle.label(a) for a in structures}


@pytest.fixture(scope="module")
def process_pool():
    with make_process_pool(max_workers=2) as pool:
        yield pool


def assert_same(labels, reference):
    assert set(labels) == set(reference)
    for key, lab in labels.items():
        ref = reference[key]
        assert lab.ok and lab.energy == pytest.approx(ref.energy, rel=0, abs=1e-12)
        assert np.allclose(lab.forces, ref.forces, rtol=0, atol=1e-12)
        assert np.allclose(lab.stress, ref.stress, rtol=0, atol=1e-14)


# ----------------------------------------------------------------------------- executors
def test_process_pool_matches_in_process_labels(tmp_path, structures, reference, process_pool):
    store = LabelStore(tmp_path / "pp.db")
    store.add_pool(structures)
    result = label_batch("sw", structures, store, executor=process_pool, iteration=0, progress=False)
    assert result.n_labeled == 12 and result.n_failed == 0
    assert_same(result.labels, reference)
    assert_same({k: store.get_label(k) for k in store.ids()}, reference)
    assert store.ids(iteration=0) == list(range(12))
    # second call: everything is already labeled, nothing is computed again
    stamps = [store.db.get(pool_id=k).labeled_at for k in range(12)]
    again = label_batch("sw", list(range(12)), store, executor=process_pool, progress=False)
    assert again.skipped == list(range(12)) and again.labels == {}
    assert [store.db.get(pool_id=k).labeled_at for k in range(12)] == stamps


def test_dask_local_cluster_matches(tmp_path, structures, reference):
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        store = LabelStore(tmp_path / "dask.db")
        store.add_pool(structures)
        by_client = label_batch("sw", structures[:6], store, executor=client, iteration=1, progress=False)
        by_executor = label_batch(
            make_oracle("sw"), structures[6:], store, executor=client.get_executor(), iteration=2, progress=False
        )
        failing = label_batch(
            UserOracle("test_labeling:scripted"), [_tagged(structures[0], "raise")], executor=client, progress=False
        )
    assert_same({**by_client.labels, **by_executor.labels}, reference)
    assert_same({k: store.get_label(k) for k in store.ids()}, reference)
    assert store.ids(iteration=2) == list(range(6, 12))
    assert "SCF not converged" in failing.labels[0].error


def test_serial_executor_and_no_store(structures, reference):
    result = label_batch("sw", structures[:4], executor="serial", progress=False)
    assert_same(result.labels, {k: reference[k] for k in range(4)})
    result = label_batch("sw", structures[:2], executor=InlineExecutor(), progress=False)
    assert set(result.labels) == {0, 1}


def test_workers_run_with_one_thread(process_pool, structures):
    before = os.environ.get("OMP_NUM_THREADS")
    result = label_batch(UserOracle("test_labeling:thread_env"), structures[:2], executor=process_pool, progress=False)
    assert [lab.energy for lab in result.labels.values()] == [1.0, 1.0]
    assert os.environ.get("OMP_NUM_THREADS") == before  # the parent is left as it was


def _tagged(atoms, mode):
    a = atoms.copy()
    a.info["test"] = mode
    return a


def test_failures_are_recorded_and_batch_goes_on(tmp_path, structures, reference, process_pool):
    batch = [_tagged(a, mode) for a, mode in zip(structures[:6], ["ok", "raise", "ok", "nan", "hang", "ok"])]
    store = LabelStore(tmp_path / "f.db")
    store.add_pool(batch)
    t0 = time.perf_counter()
    result = label_batch(
        UserOracle("test_labeling:scripted"),
        batch,
        store,
        executor=process_pool,
        iteration=0,
        timeout=5.0,
        progress=False,
    )
    assert time.perf_counter() - t0 < 25  # the 30 s hang was cut off after 5 s
    assert result.n_labeled == 3 and result.n_failed == 3
    assert store.ids("labeled") == [0, 2, 5] and store.ids("failed") == [1, 3, 4]
    errors = {k: store.get_label(k).error for k in store.ids("failed")}
    assert "SCF not converged" in errors[1]
    assert "non-finite energy" in errors[3]
    assert "timeout" in errors[4]
    assert_same({k: store.get_label(k) for k in (0, 2, 5)}, {k: reference[k] for k in (0, 2, 5)})


class _BreaksAfter(InlineExecutor):
    """An executor whose pool breaks after ``n`` submissions: submit raises, as a
    ProcessPoolExecutor's does once a worker has died."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.left = n

    def submit(self, fn, *args, **kwargs):
        if self.left == 0:
            raise BrokenProcessPool("A child process terminated abruptly, the process pool is not usable anymore")
        self.left -= 1
        return super().submit(fn, *args, **kwargs)


def test_a_pool_broken_while_submitting_fails_the_rest_as_infrastructure(tmp_path, structures, reference):
    """The labels finished before the pool broke are kept; every job it refused is recorded
    as an infrastructure failure (kept out of the budget, labeled again on resume), none lost."""
    store = LabelStore(tmp_path / "b.db")
    store.add_pool(structures[:5])
    result = label_batch(
        "sw", structures[:5], store, executor=_BreaksAfter(2), iteration=0, max_in_flight=5, progress=False
    )
    assert sorted(result.labels) == [0, 1, 2, 3, 4]
    assert store.ids("labeled") == [0, 1] and store.failed_ids("infrastructure") == [2, 3, 4]
    assert "BrokenProcessPool" in store.get_label(2).error
    assert_same({k: store.get_label(k) for k in (0, 1)}, {k: reference[k] for k in (0, 1)})


def test_bad_arguments(tmp_path, structures):
    store = LabelStore(tmp_path / "b.db")
    with pytest.raises(ValueError, match="add_pool"):
        label_batch("sw", structures[:1], store, executor="serial")
    with pytest.raises(ValueError, match="need a store"):
        label_batch("sw", [0, 1], executor="serial")
    with pytest.raises(ValueError, match="more than once"):
        label_batch("sw", [structures[0], structures[0]], executor="serial")
    with pytest.raises(TypeError):
        label_batch("sw", structures[:1], executor=object())
    with pytest.raises(ValueError):
        label_batch("sw", structures[:1], executor="threads")
    with pytest.raises(ValueError):
        ThreadLimitedProcessPool(max_workers=0)


# ----------------------------------------------------------------------------- crash safety
CRASH_SCRIPT = textwrap.dedent("""
    import sys
    from alip.al.labeling import label_batch
    from alip.data.oracles import UserOracle
    from alip.data.store import LabelStore

    if __name__ == "__main__":
        store = LabelStore(sys.argv[1])
        label_batch(UserOracle("test_labeling:scripted", kwargs={"delay": 0.05}),
                    store.ids("pool"), store, iteration=0, max_workers=2, progress=False)
""")


def _group_alive(pgid):
    """True while a (non-zombie) process of the group exists."""
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


def test_sigkill_mid_batch_loses_no_completed_label(tmp_path):
    path = tmp_path / "crash.db"
    n = 40
    pool = st.generate_si_pool(n, seed=21)
    LabelStore(path).add_pool(pool)
    script = tmp_path / "run_batch.py"
    script.write_text(CRASH_SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen(
        [sys.executable, str(script), str(path)],
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    watcher = LabelStore(path)
    deadline = time.monotonic() + 90
    try:
        while watcher.counts()["labeled"] < 6:
            assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "labeling did not start"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)  # the labeling process, mid-batch
        proc.wait(timeout=30)
        # its pool workers notice and leave by themselves (no orphans left running)
        while time.monotonic() < deadline and _group_alive(proc.pid):
            time.sleep(0.1)
        assert not _group_alive(proc.pid), "labeling workers outlived their parent"
    finally:
        if _group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    con = sqlite3.connect(path)
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    con.close()
    store = LabelStore(path)
    counts = store.counts()
    assert 1 <= counts["labeled"] <= n - 1
    assert counts["labeled"] + counts["queued"] == n and counts["failed"] == 0
    sw = make_oracle("sw")
    for row in store.db.select():
        if row.status == "labeled":  # complete and equal to a fresh SW label
            ref = sw.label(pool[row.pool_id])
            assert row.energy == pytest.approx(ref.energy, abs=1e-12)
            assert row.forces.shape == (row.natoms, 3) and np.allclose(row.forces, ref.forces, atol=1e-12)
            assert row.stress.shape == (6,) and np.all(np.isfinite(row.stress))
            assert row.wall_time >= 0.05 and row.oracle == "test_labeling:scripted"
        else:  # queued: no partial label
            assert row.status == "queued" and row.get("energy") is None and row.get("forces") is None

    # resume: label exactly the queued ones; completed labels are neither recomputed nor changed
    done = {row.pool_id: row.labeled_at for row in store.db.select(status="labeled")}
    queued = store.ids("queued")
    result = label_batch("sw", queued, store, executor="serial", progress=False)
    assert sorted(result.labels) == queued and result.skipped == []
    assert store.counts()["labeled"] == n
    assert {pid: store.db.get(pool_id=pid).labeled_at for pid in done} == done
