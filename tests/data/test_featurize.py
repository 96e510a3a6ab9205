"""Streaming featurization (issue 7): reader vs ASE, streamed store vs in-memory compute,
resume after SIGKILL, Dask LocalCluster vs local bytes, bad frames stop/skip, spec checks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.io import read, write
from conftest import SMALL_G2, SMALL_G4, SMALL_G5

import alip
from alip.data.feature_store import FeatureStore
from alip.data.featurize import BadFrameError, featurize_pool, featurize_structures
from alip.data.pool_reader import PoolFormatError, chunk_bounds, open_pool


def _acsf(species=("Si",), cutoff=4.5) -> alip.ACSF:
    return alip.ACSF(species=list(species), cutoff=cutoff, g2=SMALL_G2, g4=SMALL_G4, g5=SMALL_G5)


def _pool(n: int = 37, seed: int = 0) -> list[Atoms]:
    """Mixed sizes and shapes: 8- and 16-atom cubic cells, 2-atom triclinic primitive cells,
    a few SiC cells (two species)."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        kind = k % 4
        if kind == 0:
            a = bulk("Si", "diamond", a=5.43, cubic=True)
        elif kind == 1:
            a = bulk("Si", "diamond", a=5.43, cubic=True).repeat((2, 1, 1))
        elif kind == 2:
            a = bulk("Si", "diamond", a=5.43)
        else:
            a = bulk("SiC", "zincblende", a=4.36, cubic=True)
        a.set_cell(a.cell.array @ (np.eye(3) + rng.normal(0, 0.02, (3, 3))), scale_atoms=True)
        a.positions += rng.normal(0, 0.05, a.positions.shape)
        a.info["family"] = f"kind{kind}"
        out.append(a)
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def pool_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pool") / "pool.extxyz"
    write(path, _pool(), format="extxyz")
    return path


# ----------------------------------------------------------------------------- reader
def test_reader_matches_ase_on_varied_extxyz(tmp_path):
    frames = _pool(9)
    frames[1].pbc = (True, True, False)  # partial periodicity
    frames[2].arrays["forces"] = np.arange(3 * len(frames[2]), dtype=float).reshape(-1, 3)  # extra columns
    frames[3].info.update(comment="a quoted string with spaces", energy=-1.5, tags=np.array([1, 2, 3]))
    path = tmp_path / "varied.extxyz"
    write(path, frames, format="extxyz")
    ase_frames = read(path, index=":")
    got = open_pool(path).read(0, 9)
    assert got.bad == {}
    assert np.array_equal(got.positions, np.concatenate([a.positions for a in ase_frames]))
    assert np.array_equal(got.numbers, np.concatenate([a.numbers for a in ase_frames]))
    assert np.array_equal(got.cells, np.array([a.cell.array for a in ase_frames]))
    assert np.array_equal(got.pbc, np.array([a.pbc for a in ase_frames]))
    assert got.pbc[1].tolist() == [True, True, False]
    # any sub-range reads the same frames
    part = open_pool(path).read(4, 7)
    assert part.frame_ids.tolist() == [4, 5, 6]
    assert np.array_equal(part.positions, got.positions[got.offsets[4] : got.offsets[7]])


@pytest.mark.parametrize("block", [37, 100, 4096])
def test_index_is_independent_of_the_block_size(pool_file, tmp_path, block):
    """Frames straddling blocks, frames longer than a block, trailing blank lines, no final newline."""
    from alip.data.pool_extxyz import index_extxyz

    ref_starts, ref_counts, _ = index_extxyz(str(pool_file))
    starts, counts, bad = index_extxyz(str(pool_file), block=block)
    assert np.array_equal(starts, ref_starts) and np.array_equal(counts, ref_counts) and bad == {}
    assert len(counts) == 37 and starts[-1] == pool_file.stat().st_size
    text = pool_file.read_bytes()
    (tmp_path / "blank.extxyz").write_bytes(text + b"\n  \n\n")
    s2, c2, _ = index_extxyz(str(tmp_path / "blank.extxyz"), block=block)
    assert np.array_equal(c2, ref_counts) and np.array_equal(s2[:-1], ref_starts[:-1])
    (tmp_path / "nonl.extxyz").write_bytes(text.rstrip(b"\n"))
    s3, c3, bad3 = index_extxyz(str(tmp_path / "nonl.extxyz"), block=block)
    assert np.array_equal(c3, ref_counts) and bad3 == {}
    cut = int(ref_starts[36]) + 60  # inside the last frame
    (tmp_path / "cut.extxyz").write_bytes(text[:cut])
    s4, c4, bad4 = index_extxyz(str(tmp_path / "cut.extxyz"), block=block)
    assert len(c4) == 37 and list(bad4) == [36] and "truncated" in bad4[36]
    (tmp_path / "gap.extxyz").write_bytes(text[: int(ref_starts[5])] + b"\n" + text[int(ref_starts[5]) :])
    with pytest.raises(PoolFormatError, match="blank line"):
        index_extxyz(str(tmp_path / "gap.extxyz"), block=block)


def test_chunk_bounds_respect_frame_and_atom_limits():
    counts = np.array([8, 8, 64, 8, 500, 8, 8])
    assert chunk_bounds(counts, 3).tolist() == [0, 3, 6, 7]
    b = chunk_bounds(counts, 3, chunk_atoms=80)
    assert b.tolist() == [0, 3, 4, 5, 7]  # a 500-atom frame alone: one frame always fits
    for lo, hi in zip(b[:-1], b[1:]):
        assert hi - lo <= 3 and (hi - lo == 1 or counts[lo:hi].sum() <= 80)
    with pytest.raises(ValueError, match="chunk"):
        chunk_bounds(counts, 0)


# ----------------------------------------------------------------------------- streamed == in memory
@pytest.mark.parametrize("chunk, chunk_atoms", [(1, None), (5, None), (16, None), (37, None), (100, None), (50, 40)])
def test_streamed_store_equals_in_memory_compute(tmp_path, pool_file, chunk, chunk_atoms):
    acsf = _acsf(["Si", "C"])
    structures = read(pool_file, index=":")
    expected = acsf.compute(structures)
    summary = featurize_pool(pool_file, tmp_path / "out", acsf, chunk=chunk, chunk_atoms=chunk_atoms)
    store = FeatureStore(tmp_path / "out", acsf=acsf)
    n_chunks = len(chunk_bounds(store.n_atoms_per_structure, chunk, chunk_atoms)) - 1
    if chunk_atoms is None:
        assert n_chunks == -(-37 // chunk)  # last chunk partial for 5 and 16
    assert summary.n_chunks == store.n_chunks == n_chunks and summary.n_skipped == 0
    assert summary.atoms_run == len(expected) == store.n_atoms
    assert np.array_equal(store.values(), expected)
    assert np.array_equal(store.offsets, alip.core.descriptors.offsets(structures))
    assert np.array_equal(store.numbers(), np.concatenate([a.numbers for a in structures]))
    assert np.array_equal(store.structure(3), acsf.compute(structures[3]))
    assert np.array_equal(store.values(5, 9), acsf.compute(structures[5:9]))
    assert np.array_equal(store.to_dask().compute(), expected)
    pooled = store.mean_pooled()
    assert np.allclose(pooled[7], expected[store.offsets[7] : store.offsets[8]].mean(0), rtol=1e-13, atol=0)
    assert store.feature_labels == acsf.feature_labels()


def test_serial_and_pipelined_runs_write_the_same_bytes(tmp_path, pool_file):
    acsf = _acsf(["Si", "C"])
    featurize_pool(pool_file, tmp_path / "a", acsf, chunk=6, pipeline=True)
    featurize_pool(pool_file, tmp_path / "b", acsf, chunk=6, pipeline=False, threads=1)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")


@pytest.mark.parametrize("pipeline", [True, False])
def test_device_path_writes_the_core_bytes_and_skips_the_same_frames(tmp_path, pool_file, pipeline):
    """``device=`` routes every chunk through alip.core.device (here its CPU path: what a GPU run
    does up to the kernels); the store, bad frames included, equals the core's."""
    acsf = _acsf(["Si", "C"])
    featurize_pool(pool_file, tmp_path / "core", acsf, chunk=6)
    featurize_pool(pool_file, tmp_path / "dev", acsf, chunk=6, pipeline=pipeline, device="cpu")
    assert _files(tmp_path / "core") == _files(tmp_path / "dev")
    path, _, reasons = _bad_pool_text(tmp_path)
    summary = featurize_pool(path, tmp_path / "bad", acsf, chunk=4, on_bad="skip", pipeline=pipeline, device="cpu")
    assert sorted(summary.skipped) == sorted(reasons)
    featurize_pool(path, tmp_path / "bad_core", acsf, chunk=4, on_bad="skip")
    assert _files(tmp_path / "bad") == _files(tmp_path / "bad_core")


def test_gpu_request_without_gpu_fails_before_writing(tmp_path, pool_file):
    from alip.core import device as dev

    if dev.cuda_available():
        pytest.skip("checks the error raised without a usable GPU")
    with pytest.raises(RuntimeError, match="CUDA|GPU"):
        featurize_pool(pool_file, tmp_path / "out", _acsf(["Si", "C"]), device="cuda")
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="device must be"):
        featurize_pool(pool_file, tmp_path / "out", _acsf(["Si", "C"]), device="gpu")


def test_ase_database_pool_and_float32(tmp_path):
    import ase.db

    structures = _pool(11, seed=3)
    with ase.db.connect(tmp_path / "pool.db") as db:
        for a in structures:
            db.write(a)
    acsf = _acsf(["Si", "C"])
    featurize_pool(tmp_path / "pool.db", tmp_path / "out", acsf, chunk=4)
    assert np.array_equal(FeatureStore(tmp_path / "out").values(), acsf.compute(structures))
    featurize_pool(tmp_path / "pool.db", tmp_path / "f32", acsf, chunk=4, dtype="float32")
    v32 = FeatureStore(tmp_path / "f32").values()
    assert v32.dtype == np.float32 and np.array_equal(v32, acsf.compute(structures).astype(np.float32))


def test_store_refuses_other_spec_and_existing_output(tmp_path, pool_file):
    acsf = _acsf(["Si", "C"])
    featurize_pool(pool_file, tmp_path / "out", acsf, chunk=10)
    other = _acsf(["Si", "C"], cutoff=5.0)
    with pytest.raises(ValueError, match=r"another descriptor spec \(differs in \['cutoff'\]\)"):
        FeatureStore(tmp_path / "out", acsf=other)
    with pytest.raises(ValueError, match="exists: pass resume=True"):
        featurize_pool(pool_file, tmp_path / "out", acsf, chunk=10)
    with pytest.raises(ValueError, match="cannot resume .* its spec"):
        featurize_pool(pool_file, tmp_path / "out", other, chunk=10, resume=True)
    with pytest.raises(ValueError, match="cannot resume .* its chunk is 10, this run's is 12"):
        featurize_pool(pool_file, tmp_path / "out", acsf, chunk=12, resume=True)
    (tmp_path / "other.extxyz").write_bytes(pool_file.read_bytes().replace(b"Si ", b"C  ", 1))
    with pytest.raises(ValueError, match="pool file differs"):
        featurize_pool(tmp_path / "other.extxyz", tmp_path / "out", acsf, chunk=10, resume=True)
    (tmp_path / "notastore").mkdir()
    (tmp_path / "notastore" / "keep.txt").write_text("user data")
    with pytest.raises(ValueError, match="not an alip feature store"):
        featurize_pool(pool_file, tmp_path / "notastore", acsf, overwrite=True)
    assert (tmp_path / "notastore" / "keep.txt").read_text() == "user data"


# ----------------------------------------------------------------------------- resume
def test_resume_recomputes_only_missing_chunks(tmp_path, pool_file):
    acsf = _acsf(["Si", "C"])
    featurize_pool(pool_file, tmp_path / "ref", acsf, chunk=5)
    featurize_pool(pool_file, tmp_path / "out", acsf, chunk=5)
    out = tmp_path / "out"
    # as if killed: chunk 2 values written but not committed, chunk 5 never started, a temp file left
    (out / "parts" / "2.json").unlink()
    for name in ("values/5.npy", "numbers/5.npy", "parts/5.json", "complete.json", "offsets.npy"):
        (out / name).unlink()
    (out / "values" / "6.npy.tmp-deadbeef0000").write_bytes(b"partial")
    with pytest.raises(ValueError, match="incomplete"):
        FeatureStore(out)
    kept = {k: os.stat(out / "values" / f"{k}.npy").st_mtime_ns for k in (0, 1, 3, 4, 6, 7)}
    summary = featurize_pool(pool_file, out, acsf, chunk=5, resume=True)
    assert summary.chunks_resumed == 6 and summary.structures_run == 10
    assert {k: os.stat(out / "values" / f"{k}.npy").st_mtime_ns for k in kept} == kept
    assert _files(out) == _files(tmp_path / "ref")


_KILL_SCRIPT = """
import sys, alip
from alip.data.featurize import featurize_pool
acsf = alip.ACSF.default_si()
acsf = alip.ACSF(species=["Si"], cutoff=8.0, g2=acsf.g2.tolist(), g4=acsf.g4.tolist())
featurize_pool(sys.argv[1], sys.argv[2], acsf, chunk=25, pipeline=False, threads=1)
"""


def test_resume_after_sigkill_gives_the_uninterrupted_store(tmp_path):
    rng = np.random.default_rng(5)
    base = bulk("Si", "diamond", a=5.43, cubic=True)
    structures = []
    for _ in range(1500):
        a = base.copy()
        a.positions += rng.normal(0, 0.05, a.positions.shape)
        structures.append(a)
    pool = tmp_path / "pool.extxyz"
    write(pool, structures, format="extxyz")
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, str(pool), str(out)])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "parts").is_dir() and len([n for n in os.listdir(out / "parts") if n.endswith(".json")]) >= 3:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (out / "complete.json").exists()
    done_before = {
        p.name: p.stat().st_mtime_ns
        for p in (out / "values").glob("*.npy")
        if (out / "parts" / p.name.replace(".npy", ".json")).exists()
    }
    assert 3 <= len(done_before) < 60

    base_acsf = alip.ACSF.default_si()
    acsf = alip.ACSF(species=["Si"], cutoff=8.0, g2=base_acsf.g2.tolist(), g4=base_acsf.g4.tolist())
    summary = featurize_pool(pool, out, acsf, chunk=25, resume=True)
    assert summary.chunks_resumed == len(done_before) and summary.n_chunks == 60
    assert {n: (out / "values" / n).stat().st_mtime_ns for n in done_before} == done_before  # not recomputed
    featurize_pool(pool, tmp_path / "ref", acsf, chunk=25)
    assert _files(out) == _files(tmp_path / "ref")


# ----------------------------------------------------------------------------- Dask
def test_dask_local_cluster_writes_the_local_bytes(tmp_path, pool_file):
    import distributed

    acsf = _acsf(["Si", "C"])
    featurize_pool(pool_file, tmp_path / "local", acsf, chunk=4)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        summary = featurize_pool(pool_file, tmp_path / "dask", acsf, chunk=4, client=client, threads=1)
        workers = client.run(os.getpid)
    assert len(set(workers.values()) - {os.getpid()}) == 2
    assert summary.n_chunks == 10 and summary.atoms_run == FeatureStore(tmp_path / "local").n_atoms
    assert _files(tmp_path / "dask") == _files(tmp_path / "local")


# ----------------------------------------------------------------------------- bad frames
def _bad_pool_text(tmp_path: Path) -> tuple[Path, list[Atoms], dict[int, str]]:
    """A pool whose frames 3, 5, 7, 9, 11, 12 and 14 (truncated, last) are bad."""
    structures = _pool(15, seed=7)
    for k in (3, 5, 7, 9, 11, 12, 14):
        structures[k] = bulk("Si", "diamond", a=5.43, cubic=True)
        structures[k].rattle(0.05, seed=k)
    path = tmp_path / "clean.extxyz"
    write(path, structures, format="extxyz")
    lines = path.read_text().splitlines()
    starts, i = [], 0
    while i < len(lines):
        starts.append(i)
        i += int(lines[i]) + 2

    def atom_line(frame: int, atom: int) -> int:
        return starts[frame] + 2 + atom

    lines[atom_line(3, 2)] = "Si nan 0.5 0.5"
    lines[starts[5] + 1] = 'Properties=species:S:1:pos:R:3 pbc="T T T"'  # periodic, no Lattice
    lines[starts[7] + 1] = "Properties=species:S:1:pos:R:3"  # no cell at all
    lines[atom_line(9, 4)] = "Si 1.0 abc 2.0"
    lines[atom_line(11, 0)] = "O " + lines[atom_line(11, 0)].split(None, 1)[1]  # not in the spec
    lines[atom_line(12, 1)] = lines[atom_line(12, 0)]  # overlapping atoms
    text = "\n".join(lines[: atom_line(14, 5)]) + "\n"  # truncated last frame
    bad_path = tmp_path / "bad.extxyz"
    bad_path.write_text(text)
    structures = read(path, index=":")  # as written: the file rounds positions
    reasons = {
        3: "NaN/inf position of atom 2",
        5: "missing cell: periodic along xyz",
        7: "missing cell (no Lattice)",
        9: f"line {atom_line(9, 4) + 1}: a position is not a number: 'Si 1.0 abc 2.0'",
        11: "Z=8 is not among the descriptor species",
        12: "overlap",
        14: "truncated: declares 8 atoms, the file ends after 5",
    }
    return bad_path, structures, reasons


def test_bad_frames_stop_at_the_first_one(tmp_path):
    path, _, _ = _bad_pool_text(tmp_path)
    with pytest.raises(BadFrameError, match=r"frame 3: NaN/inf position of atom 2") as info:
        featurize_pool(path, tmp_path / "out", _acsf(["Si", "C"]), chunk=2)
    assert info.value.frame == 3
    parts = sorted(os.listdir(tmp_path / "out" / "parts"))
    assert parts == ["0.json"]  # frames 0-1 written, nothing from frame 2 on
    assert not (tmp_path / "out" / "complete.json").exists()


def test_bad_frame_stops_a_dask_run_and_names_the_frame(tmp_path):
    """On Dask a bad frame with on_bad="stop" also ends in a BadFrameError naming one of
    the bad frames, and the store is not marked complete."""
    import distributed

    path, _, reasons = _bad_pool_text(tmp_path)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        with pytest.raises(BadFrameError) as info:
            featurize_pool(path, tmp_path / "out", _acsf(["Si", "C"]), chunk=2, client=client, threads=1)
    assert info.value.frame in reasons
    assert f"frame {info.value.frame}:" in str(info.value)
    assert not (tmp_path / "out" / "complete.json").exists()


@pytest.mark.parametrize("pipeline", [True, False])
def test_bad_frames_skipped_are_recorded_in_place(tmp_path, pipeline):
    path, structures, reasons = _bad_pool_text(tmp_path)
    acsf = _acsf(["Si", "C"])
    summary = featurize_pool(path, tmp_path / "out", acsf, chunk=4, on_bad="skip", pipeline=pipeline)
    store = FeatureStore(tmp_path / "out")
    assert store.n_structures == 15 and summary.n_skipped == 7
    assert sorted(store.skipped) == sorted(reasons)
    for frame, words in reasons.items():
        assert words in store.skipped[frame], (frame, store.skipped[frame])
    counts = store.n_atoms_per_structure
    assert (counts[list(reasons)] == 0).all() and not store.ok[list(reasons)].any()
    good = [k for k in range(15) if k not in reasons]
    assert (counts[good] == [len(structures[k]) for k in good]).all()
    assert np.array_equal(store.values(), acsf.compute([structures[k] for k in good]))
    pooled = store.mean_pooled()
    assert np.isnan(pooled[list(reasons)]).all() and np.isfinite(pooled[good]).all()
    # with clusters allowed, frame 7 (no cell, no pbc) is a valid non-periodic structure
    again = featurize_pool(path, tmp_path / "clusters", acsf, chunk=4, on_bad="skip", allow_nonperiodic=True)
    assert 7 not in again.skipped and again.n_skipped == 6


def test_unsplittable_file_raises_naming_the_line(tmp_path, pool_file):
    text = pool_file.read_text().splitlines()
    third = int(text[0]) + 2 + int(text[int(text[0]) + 2]) + 2  # first line of frame 2
    assert third == 28
    text[third] = "eight"
    (tmp_path / "broken.extxyz").write_text("\n".join(text) + "\n")
    with pytest.raises(PoolFormatError, match=r"frame 2 \(line 29\) should start with its atom count, found 'eight'"):
        featurize_pool(tmp_path / "broken.extxyz", tmp_path / "out", _acsf(["Si", "C"]), on_bad="skip")
    with pytest.raises(FileNotFoundError):
        featurize_pool(tmp_path / "missing.extxyz", tmp_path / "out2")
    with pytest.raises(ValueError, match="on_bad"):
        featurize_pool(pool_file, tmp_path / "out3", on_bad="ignore")


def test_cli_featurize_stop_skip_resume(tmp_path, capsys):
    from alip.cli import main

    path, _, reasons = _bad_pool_text(tmp_path)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(_acsf(["Si", "C"]).to_dict()))
    out = str(tmp_path / "cli.features")
    assert main(["featurize", str(path), "-o", out, "--spec", str(spec), "--no-progress", "--chunk", "4"]) == 3
    assert "frame 3: NaN/inf position" in capsys.readouterr().err
    assert (
        main(
            [
                "featurize",
                str(path),
                "-o",
                out,
                "--spec",
                str(spec),
                "--no-progress",
                "--chunk",
                "4",
                "--on-bad",
                "skip",
                "--overwrite",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "featurized 8 of 15 structures" in text and "skipped frame 14: line 140: truncated" in text
    assert (
        main(
            [
                "featurize",
                str(path),
                "-o",
                out,
                "--spec",
                spec.read_text(),  # the same descriptor inline: the store accepts it
                "--no-progress",
                "--chunk",
                "4",
                "--on-bad",
                "skip",
                "--resume",
            ]
        )
        == 0
    )
    assert "4 of 4 chunks were already done" in capsys.readouterr().out
    assert main(["featurize", str(path), "-o", str(tmp_path / "x.npz"), "--no-progress"]) == 2


def test_featurize_structures_is_exact_resumable_and_refuses_other_structures(tmp_path):
    acsf, pool = _acsf(("C", "Si")), _pool(23, seed=3)
    out = tmp_path / "features"
    store = featurize_structures(pool, out, acsf, chunk=5)
    assert store.n_structures == 23 and store.n_chunks == 5 and not store.skipped
    for i in (0, 7, 22):
        np.testing.assert_array_equal(store.structure(i), acsf.compute(pool[i]))
    # a crash that lost chunk 2: only that chunk is computed again, the rest is kept
    os.remove(out / "parts" / "2.json")
    os.remove(out / "complete.json")
    kept = os.stat(out / "values" / "0.npy").st_mtime_ns
    again = featurize_structures(pool, out, acsf, chunk=5)
    assert os.stat(out / "values" / "0.npy").st_mtime_ns == kept
    np.testing.assert_array_equal(again.values(), store.values())
    moved = [a.copy() for a in pool]
    moved[4].positions[0, 0] += 0.01
    with pytest.raises(ValueError, match="differs from the one it was started on"):
        featurize_structures(moved, out, acsf, chunk=5)
    with pytest.raises(ValueError, match="spec"):
        featurize_structures(pool, out, _acsf(("C", "Si"), cutoff=4.0), chunk=5)
    with pytest.raises(ValueError, match="structure 3 cannot be featurized: element Z=6"):
        featurize_structures(pool, tmp_path / "si_only", _acsf(), chunk=5)
