"""Label store: round trips, status transitions, never labeling twice, persistence, extxyz."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from ase.build import bulk

from alip.data import structures as st
from alip.data.io import attach_label, read_extxyz, write_extxyz
from alip.data.oracles import Label, make_oracle
from alip.data.store import STATUSES, LabelStore


@pytest.fixture()
def pool():
    return st.generate_si_pool(12, seed=5)


@pytest.fixture()
def store(tmp_path, pool):
    s = LabelStore(tmp_path / "run.db")
    s.add_pool(pool)
    return s


def fake_label(n, seed=0, stress=True):
    rng = np.random.default_rng(seed)
    return Label(
        "labeled", float(rng.normal()), rng.normal(size=(n, 3)), rng.normal(size=6) if stress else None, wall_time=0.25
    )


def test_pool_round_trip(store, pool):
    assert len(store) == 12
    assert store.counts() == {"pool": 12, "queued": 0, "labeled": 0, "failed": 0}
    assert store.ids() == list(range(12))
    for a in pool:
        b = store.get(a.info["pool_id"])
        assert np.array_equal(a.numbers, b.numbers)
        assert np.array_equal(a.positions, b.positions)
        assert np.array_equal(a.cell.array, b.cell.array)
        assert np.array_equal(a.pbc, b.pbc)
        assert b.calc is None and b.info["status"] == "pool"
        assert {k: b.info[k] for k in a.info} == a.info  # family, pool_id, parent, scale, ...
    assert store.ids(family="random") == [a.info["pool_id"] for a in pool if a.info["family"] == "random"]


def test_status_flow_and_labels_are_exact(store):
    store.mark_queued([1, 2, 3], iteration=4)
    assert store.ids("queued") == [1, 2, 3] and store.ids(iteration=4) == [1, 2, 3]
    assert [a.info["pool_id"] for a in store.queued()] == [1, 2, 3]
    n = len(store.get(1))
    lab = fake_label(n, seed=1)
    store.record(1, lab, make_oracle("sw"))
    got = store.get_label(1)
    assert got.ok and got.energy == lab.energy
    assert np.array_equal(got.forces, lab.forces) and np.array_equal(got.stress, lab.stress)
    assert got.wall_time == 0.25
    atoms = store.get(1)
    assert atoms.get_potential_energy() == lab.energy and np.array_equal(atoms.get_forces(), lab.forces)
    assert atoms.info["oracle"] == "sw" and atoms.info["iteration"] == 4
    row = store.db.get(pool_id=1)
    assert "Stillinger" in row.oracle_settings and row.labeled_at >= row.queued_at
    store.record(2, Label.failed("SCF not converged"), "gpaw")
    assert store.status(2) == "failed" and store.get_label(2).error == "SCF not converged"
    assert store.get(2).calc is None
    assert store.counts() == {"pool": 9, "queued": 1, "labeled": 1, "failed": 1}
    assert store.get_label(5) is None  # never attempted
    # a failed structure may be queued and labeled again; the error goes away
    store.mark_queued([2], iteration=5)
    store.record(2, fake_label(len(store.get(2)), seed=2, stress=False), "gpaw")
    row = store.db.get(pool_id=2)
    assert row.status == "labeled" and "error" not in row.key_value_pairs and row.n_failures == 1
    assert store.get_label(2).stress is None


def test_never_labels_twice(store):
    store.record(0, fake_label(len(store.get(0))))
    with pytest.raises(ValueError, match="already labeled"):
        store.mark_queued([0, 1], iteration=1)
    assert store.status(1) == "pool"  # the failed transaction changed nothing
    with pytest.raises(ValueError, match="already labeled"):
        store.record(0, fake_label(len(store.get(0)), seed=9))
    new = fake_label(len(store.get(0)), seed=9)
    store.record(0, new, overwrite=True)
    assert store.get_label(0).energy == new.energy


def test_requeue(store):
    store.mark_queued([4, 5, 6], iteration=0)
    store.record(6, fake_label(len(store.get(6))))
    assert store.requeue() == [4, 5]
    assert store.ids("queued") == [] and store.status(6) == "labeled"
    assert "iteration" not in store.get(4).info


def test_reopen_and_second_reader_see_committed_rows(tmp_path, pool):
    path = tmp_path / "r.db"
    writer = LabelStore(path)
    writer.add_pool(pool[:6])
    reader = LabelStore(path)  # e.g. another process watching the run
    writer.add_pool(pool[6:])
    assert 8 in reader and reader.get(8).info["family"] == pool[8].info["family"]
    writer.record(3, fake_label(len(pool[3]), seed=3))
    assert reader.get_label(3).energy == fake_label(len(pool[3]), seed=3).energy
    reopened = LabelStore(path)
    assert reopened.counts()["labeled"] == 1 and len(reopened) == 12
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    con.close()


def test_pool_ids_assigned_and_checked(tmp_path):
    s = LabelStore(tmp_path / "a.db")
    atoms = [bulk("Si", "diamond", a=5.43) for _ in range(3)]
    assert s.add_pool(atoms) == [0, 1, 2]
    assert s.get(0).info["family"] == "unknown"
    tagged = bulk("Si")
    tagged.info["pool_id"] = 10
    assert s.add_pool([tagged, bulk("Si")]) == [10, 11]
    with pytest.raises(ValueError, match="already present"):
        s.add_pool([tagged])
    dup = [bulk("Si"), bulk("Si")]
    for a in dup:
        a.info["pool_id"] = 20
    with pytest.raises(ValueError, match="repeated"):
        s.add_pool(dup)
    assert 20 not in s
    with pytest.raises(TypeError):
        s.add_pool(["Si"])
    with pytest.raises(TypeError):
        s.mark_queued([True], 0)
    with pytest.raises(KeyError):
        s.get(99)
    with pytest.raises(ValueError):
        s.ids(status="done")
    with pytest.raises(TypeError):
        s.record(0, {"energy": 1.0})


def test_bad_paths(tmp_path):
    with pytest.raises(ValueError, match=".db"):
        LabelStore(tmp_path / "run.sqlite")
    with pytest.raises(FileNotFoundError):
        LabelStore(tmp_path / "missing_dir" / "run.db")


def test_metadata(store):
    store.update_meta(oracle={"type": "manybody", "potential": "sw"}, seed=3)
    store.update_meta(strategy="qbc")
    assert LabelStore(store.path).meta == {
        "oracle": {"type": "manybody", "potential": "sw"},
        "seed": 3,
        "strategy": "qbc",
    }


def test_extxyz_export_and_import(tmp_path, store):
    for pid in (0, 7):
        store.record(pid, fake_label(len(store.get(pid)), seed=pid), "sw")
    store.record(3, Label.failed("boom"))
    out = tmp_path / "labeled.extxyz"
    assert store.to_extxyz(out) == 2
    back = read_extxyz(out)
    assert [a.info["pool_id"] for a in back] == [0, 7]
    for a in back:
        ref = store.get_label(a.info["pool_id"])
        assert a.get_potential_energy() == pytest.approx(ref.energy, abs=1e-8)
        assert np.allclose(a.get_forces(), ref.forces, atol=1e-7)
        assert np.allclose(a.get_stress(), ref.stress, atol=1e-7)
    everything = tmp_path / "all.extxyz"
    assert store.to_extxyz(everything, status=None) == 12
    copy = LabelStore.from_extxyz(everything, tmp_path / "copy.db")
    assert copy.counts() == {"pool": 10, "queued": 0, "labeled": 2, "failed": 0}
    assert copy.get(7).info["oracle"] == "imported"
    assert copy.get(7).info["family"] == store.get(7).info["family"]
    with pytest.raises(FileExistsError):
        LabelStore.from_extxyz(everything, tmp_path / "copy.db")


def test_add_labeled_requires_labels(tmp_path):
    s = LabelStore(tmp_path / "l.db")
    atoms = bulk("Si", "diamond", a=5.43)
    with pytest.raises(ValueError, match="no energy"):
        s.add_labeled([atoms])
    assert len(s) == 0  # the transaction was rolled back
    labeled = attach_label(atoms, -10.0, np.zeros((2, 3)))
    s.add_labeled([labeled], oracle="dft-dataset", oracle_settings={"xc": "PBE"})
    assert s.get_label(0).energy == -10.0 and s.db.get(pool_id=0).oracle == "dft-dataset"
    assert set(s.counts()) == set(STATUSES)


def test_write_extxyz_rejects_non_atoms(tmp_path):
    with pytest.raises(TypeError):
        write_extxyz(tmp_path / "x.extxyz", [bulk("Si"), "Si"])
    with pytest.raises(FileNotFoundError):
        read_extxyz(tmp_path / "nope.extxyz")


def test_text_that_reads_as_a_number(tmp_path):
    # ASE's database refuses such strings as key-value pairs; the store must not fail
    s = LabelStore(tmp_path / "t.db")
    atoms = bulk("Si", "diamond", a=5.43)
    atoms.info.update(family="1", note="nan", flag="True", label="x")
    s.add_pool([atoms])
    back = s.get(0)
    assert (back.info["family"], back.info["note"], back.info["flag"]) == ("1", "nan", "True")
    assert s.ids(family="family-1") == [0]
    s.record(0, Label.failed("404"), oracle="7")
    assert s.get_label(0).error == "error: 404" and s.db.get(pool_id=0).oracle == "oracle-7"


def test_stale_lock_file_of_a_killed_writer_does_not_block(tmp_path, pool):
    # ase.db's default lock file "<path>.lock" outlives a SIGKILLed writer; the store
    # must rely on SQLite's locking only, or a resumed run would wait forever.
    import threading

    s = LabelStore(tmp_path / "k.db")
    s.add_pool(pool[:2])
    (tmp_path / "k.db.lock").write_text("")
    done = threading.Event()

    def write():
        s.record(0, fake_label(len(pool[0])))
        s.mark_queued([1], iteration=0)
        done.set()

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    assert done.wait(timeout=30), "store writes blocked by a stale lock file"
    assert s.counts()["labeled"] == 1 and s.status(1) == "queued"
