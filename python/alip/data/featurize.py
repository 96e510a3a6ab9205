"""Streaming featurization of large pools into a chunked on-disk feature store.

:func:`featurize_pool` reads a pool (extxyz or ASE ``*.db``) chunk by chunk, computes
each chunk's ACSF values in one batched call of the compiled core and writes the
chunk to a store directory (layout and format choice: :mod:`alip.data.feature_store`);
memory stays bounded by a few chunks whatever the pool size. Locally, reading,
featurizing and writing overlap in three threads. With a ``distributed.Client`` each
chunk is a Dask task that reads its own frames and writes its own files (the pool and
the store must be on a filesystem the workers share); the descriptor spec is
broadcast to the workers once, and the files are the same bytes as a local run's.
``resume=True`` continues an interrupted run with the chunks that are missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from ase.data import chemical_symbols
from tqdm.auto import tqdm

from alip.config import ON_BAD
from alip.core.batch import Batch, species_index
from alip.core.build import set_num_threads
from alip.core.descriptors import ACSF
from alip.core.device import DeviceLike, compute, select_device
from alip.data import feature_store as fs
from alip.data.dask_window import run_windowed
from alip.data.feature_store import FeatureStore
from alip.data.pool_reader import ChunkRef, PoolReader, chunk_bounds, open_pool, read_ref

if TYPE_CHECKING:  # pragma: no cover
    from ase import Atoms
    from distributed import Client

__all__ = [
    "featurize_pool",
    "FeatureStore",
    "FeaturizeSummary",
    "BadFrameError",
    "featurize_frames",
    "core_values",
    "process_chunk",
    "ON_BAD",
]

DTYPES = ("float64", "float32")


class BadFrameError(ValueError):
    """A pool frame that cannot be featurized, with ``on_bad="stop"``."""

    def __init__(self, frame: int, reason: str, path: str = "") -> None:
        self.frame, self.reason, self.path = int(frame), reason, path
        super().__init__(f"{path + ': ' if path else ''}frame {frame}: {reason} (on_bad='skip' records it and goes on)")


# ----------------------------------------------------------------------------- core adapter
def _species_index(acsf: ACSF, frames: Batch) -> tuple[np.ndarray, dict[int, str]]:
    """(species index per atom (-1 for elements not in the spec), {frame: reason} for such frames)."""
    idx = species_index(acsf.species, frames.numbers)
    bad: dict[int, str] = {}
    if (idx < 0).any():
        per_frame = np.add.reduceat(np.concatenate([(idx < 0).astype(np.int64), [0]]), frames.offsets[:-1])
        off = frames.offsets
        names = ", ".join(chemical_symbols[z] for z in acsf.species)
        for k in np.flatnonzero(per_frame[: frames.n_structures]):
            z = int(frames.numbers[off[k] : off[k + 1]][idx[off[k] : off[k + 1]] < 0][0])
            bad[int(frames.frame_ids[k])] = f"element Z={z} is not among the descriptor species [{names}]"
    return idx, bad


def core_values(
    acsf: ACSF, frames: Batch, species_index: np.ndarray | None = None, device: DeviceLike | None = None
) -> np.ndarray:
    """ACSF values (N, F) of all frames in one batched call (no ``ase.Atoms`` built): the
    compiled CPU core, or with ``device`` given the :mod:`alip.core.device` path on it ("cuda")."""
    if species_index is None:
        species_index, bad = _species_index(acsf, frames)
        if bad:
            frame, reason = next(iter(bad.items()))
            raise ValueError(f"frame {frame}: {reason}")
    if device is None:
        return acsf.compute_packed(frames, species_index)
    return compute(acsf, frames.to("cpu", acsf.species, species_index), device=device).cpu().numpy()


def featurize_frames(acsf: ACSF, frames: Batch, device: DeviceLike | None = None) -> tuple[Batch, np.ndarray]:
    """(frames the core accepted, their values); the rejected ones move to ``bad`` with the
    core's reason (unknown element, overlapping atoms, degenerate cell, ...)."""
    idx, bad = _species_index(acsf, frames)
    if bad:
        keep = ~np.isin(frames.frame_ids, np.fromiter(bad, dtype=np.int64))
        idx = idx[np.repeat(keep, frames.counts)]
        frames = frames.select(keep)
        frames.bad.update(bad)
    if frames.n_structures == 0:
        return frames, np.zeros((0, acsf.n_features))
    try:
        return frames, core_values(acsf, frames, idx, device)
    except ValueError:
        pass
    keep = np.ones(frames.n_structures, dtype=bool)
    for k in range(frames.n_structures):  # locate the structures the core rejects
        one = frames.select(np.arange(frames.n_structures) == k)
        try:
            core_values(acsf, one, _species_index(acsf, one)[0], device)
        except ValueError as exc:
            keep[k] = False
            frames.bad[int(frames.frame_ids[k])] = str(exc)
    out = frames.select(keep)
    return out, core_values(acsf, out, _species_index(acsf, out)[0], device) if out.n_structures else np.zeros(
        (0, acsf.n_features)
    )


@dataclass
class ChunkResult:
    """What processing one chunk did (returned by Dask tasks too: small)."""

    k: int
    start: int
    stop: int
    n_ok: int
    n_atoms: int
    bad: dict[int, str]
    read_s: float
    featurize_s: float
    write_s: float = 0.0
    written: bool = False


def _read_chunk(ref: ChunkRef) -> tuple[Batch, float]:
    t = time.perf_counter()
    frames = read_ref(ref)
    return frames, time.perf_counter() - t


def _featurize_chunk(
    acsf: ACSF, k: int, ref: ChunkRef, frames: Batch, read_s: float, device: DeviceLike | None = None
) -> tuple[ChunkResult, Batch, np.ndarray]:
    t = time.perf_counter()
    frames, values = featurize_frames(acsf, frames, device)
    res = ChunkResult(
        k, ref.start, ref.stop, frames.n_structures, frames.n_atoms, dict(frames.bad), read_s, time.perf_counter() - t
    )
    return res, frames, values


def _store_chunk(out: str, res: ChunkResult, frames: Batch, values: np.ndarray, dtype: str) -> ChunkResult:
    t = time.perf_counter()
    fs.write_chunk(out, res.k, res.start, res.stop, frames, values, dtype)
    res.write_s, res.written = time.perf_counter() - t, True
    return res


_MALLOC_TUNED = False


def tune_worker_malloc() -> None:
    """Undo a side effect of Dask's nannies on the core's speed (once per process).

    Nannies start workers with ``MALLOC_TRIM_THRESHOLD_`` set; in glibc that also pins
    the mmap threshold at 128 KiB, so every large array of the core is fresh, zeroed
    pages (measured: 10x the kernel time, +25-40 % CPU for 512-atom cells). This raises
    the mmap threshold to 32 MiB, the ceiling of glibc's own dynamic threshold. Nothing
    happens outside such processes or when ``MALLOC_MMAP_THRESHOLD_`` is set.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED or "MALLOC_TRIM_THRESHOLD_" not in os.environ or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return
    _MALLOC_TUNED = True
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):  # not glibc: nothing to undo
        pass


def process_chunk(
    out: str,
    k: int,
    ref: ChunkRef,
    acsf: ACSF,
    dtype: str,
    on_bad: str,
    threads: int | None = None,
    device: DeviceLike | None = None,
) -> ChunkResult:
    """Read, featurize and write chunk ``k`` (a Dask task); with ``on_bad="stop"`` a chunk
    holding a bad frame is not written and the result lists the bad frames."""
    tune_worker_malloc()
    if threads:
        set_num_threads(threads)
    frames, read_s = _read_chunk(ref)
    res, frames, values = _featurize_chunk(acsf, k, ref, frames, read_s, device)
    if res.bad and on_bad == "stop":
        return res
    return _store_chunk(out, res, frames, values, dtype)


# ----------------------------------------------------------------------------- runners
def _run_serial(
    out: str,
    refs: dict[int, ChunkRef],
    acsf: ACSF,
    dtype: str,
    on_bad: str,
    report: Callable[[ChunkResult], bool],
    device: DeviceLike | None = None,
) -> None:
    for k, ref in refs.items():
        if not report(process_chunk(out, k, ref, acsf, dtype, on_bad, device=device)):
            return


def _run_pipelined(
    out: str,
    refs: dict[int, ChunkRef],
    acsf: ACSF,
    dtype: str,
    on_bad: str,
    report: Callable[[ChunkResult], bool],
    device: DeviceLike | None = None,
) -> None:
    """Reading, featurizing (GIL released in the core) and writing overlap in three threads;
    at most two chunks wait between stages, so memory stays bounded."""
    to_core: queue.Queue = queue.Queue(maxsize=2)
    to_disk: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()
    errors: list[BaseException] = []

    def put(q: queue.Queue, item: Any) -> None:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def reader() -> None:
        try:
            for k, ref in refs.items():
                if stop.is_set():
                    break
                put(to_core, (k, ref, *_read_chunk(ref)))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)
            stop.set()
        finally:
            put(to_core, None)

    def writer() -> None:
        try:
            while (item := to_disk.get()) is not None:
                report(_store_chunk(out, *item, dtype))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
            stop.set()
            while to_disk.get() is not None:  # drain, so the producer never blocks on a dead writer
                pass

    threads = [threading.Thread(target=reader, daemon=True), threading.Thread(target=writer, daemon=True)]
    for t in threads:
        t.start()
    try:
        while not stop.is_set():
            try:
                item = to_core.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is None:
                break
            res, frames, values = _featurize_chunk(acsf, *item, device)
            if res.bad and on_bad == "stop":
                report(res)
                break
            put(to_disk, (res, frames, values))
    except BaseException as exc:  # noqa: BLE001
        errors.append(exc)
    finally:
        to_disk.put(None)
        threads[1].join()
        stop.set()
        threads[0].join()
    if errors:
        raise errors[0]


def _workers_see(paths: list[str]) -> bool:
    return all(os.path.exists(p) for p in paths)


def _run_dask(
    client: Client,
    out: str,
    refs: dict[int, ChunkRef],
    acsf: ACSF,
    dtype: str,
    on_bad: str,
    threads: int | None,
    report: Callable[[ChunkResult], bool],
    device: DeviceLike | None = None,
) -> None:
    """One Dask task per chunk; a sliding window of tasks keeps worker memory bounded."""
    if not refs:
        return
    paths = [next(iter(refs.values())).path, out]
    seen = client.run(_workers_see, paths)
    blind = sorted(w for w, ok in seen.items() if not ok)
    if blind:
        raise ValueError(
            f"Dask workers {blind} cannot see {paths}: the pool and the store must be on a "
            f"filesystem shared with the workers"
        )
    acsf_f = client.scatter(acsf, broadcast=True, hash=False)
    token = uuid.uuid4().hex[:8]

    def submit(item: tuple[int, ChunkRef]) -> Any:
        k, ref = item
        return client.submit(
            process_chunk,
            out,
            k,
            ref,
            acsf_f,
            dtype,
            on_bad,
            threads,
            device,
            key=f"alip-featurize-{token}-{k}",
            retries=1,
        )

    try:
        run_windowed(client, refs.items(), submit, report)
    finally:
        client.cancel(acsf_f)


# ----------------------------------------------------------------------------- entry point
@dataclass
class FeaturizeSummary:
    """What a :func:`featurize_pool` call did; times are of this call only."""

    out: str
    n_structures: int  # frames of the pool (skipped included)
    n_skipped: int
    n_atoms: int  # atoms featurized in the whole store
    n_features: int
    n_chunks: int
    chunks_resumed: int  # chunks already done before this call
    structures_run: int = 0  # frames processed by this call
    atoms_run: int = 0
    seconds: float = 0.0  # wall time of this call (index + chunks + finalize)
    index_s: float = 0.0
    read_s: float = 0.0  # summed over chunks (stages overlap when pipelined/distributed)
    featurize_s: float = 0.0
    write_s: float = 0.0
    skipped: dict[int, str] = field(default_factory=dict)

    @property
    def atoms_per_second(self) -> float:
        return self.atoms_run / self.seconds if self.seconds > 0 else 0.0

    @property
    def structures_per_second(self) -> float:
        return self.structures_run / self.seconds if self.seconds > 0 else 0.0

    def shares(self) -> dict[str, float]:
        """Fraction of the summed stage time spent reading, featurizing, writing."""
        total = self.read_s + self.featurize_s + self.write_s
        return {
            k: (v / total if total else 0.0)
            for k, v in (("read", self.read_s), ("featurize", self.featurize_s), ("write", self.write_s))
        }


_RESUME_KEYS = (
    "format",
    "format_version",
    "spec",
    "dtype",
    "chunk",
    "chunk_atoms",
    "n_frames",
    "n_chunks",
    "allow_nonperiodic",
)


def _prepare_store(out: str, meta: dict, bounds: np.ndarray, resume: bool, overwrite: bool) -> set[int]:
    """Create the store, or check an existing one for resuming; returns the chunks already done."""
    if os.path.exists(out):
        if resume and fs.is_store(out):
            old = fs.load_json(os.path.join(out, "meta.json"))
            for key in _RESUME_KEYS:
                if old.get(key) != meta[key]:
                    raise ValueError(
                        f"cannot resume {out}: its {key} is {old.get(key)!r}, this run's is "
                        f"{meta[key]!r} (pass overwrite=True to start again)"
                    )
            src_old, src_new = old.get("source", {}), meta["source"]
            if (src_old.get("size"), src_old.get("blake2b_head_tail")) != (
                src_new["size"],
                src_new["blake2b_head_tail"],
            ):
                raise ValueError(
                    f"cannot resume {out}: the pool file differs from the one it was started on "
                    f"(pass overwrite=True to start again)"
                )
            if not np.array_equal(np.load(os.path.join(out, "chunks.npy")), bounds):
                raise ValueError(f"cannot resume {out}: its chunk boundaries differ from this run's")
            return fs.done_chunks(out, len(bounds) - 1)
        if overwrite:
            if not (fs.is_store(out) or (os.path.isdir(out) and not os.listdir(out))):
                raise ValueError(f"{out} exists and is not an alip feature store: not overwriting it")
            shutil.rmtree(out)
        elif not resume:
            raise ValueError(f"{out} exists: pass resume=True to continue it or overwrite=True to start again")
        else:
            raise ValueError(f"{out} exists and is not an alip feature store: cannot resume it")
    fs.init_store(out, meta, bounds)
    return set()


def _store_meta(
    acsf: ACSF,
    dtype: str,
    chunk: int,
    chunk_atoms: int | None,
    bounds: np.ndarray,
    n_frames: int,
    allow_nonperiodic: bool,
    source: dict,
) -> dict:
    """A feature store's meta.json, with the types a reread one has (lists, not tuples)."""
    meta = {
        "format": fs.FORMAT,
        "format_version": fs.FORMAT_VERSION,
        "spec": acsf.to_dict(),
        "feature_labels": acsf.feature_labels(),
        "n_features": acsf.n_features,
        "dtype": dtype,
        "chunk": int(chunk),
        "chunk_atoms": None if chunk_atoms is None else int(chunk_atoms),
        "n_frames": int(n_frames),
        "n_chunks": len(bounds) - 1,
        "allow_nonperiodic": bool(allow_nonperiodic),
        "source": source,
    }
    return json.loads(json.dumps(meta))


def featurize_pool(
    pool: str | os.PathLike | PoolReader,
    out: str | os.PathLike,
    acsf: ACSF = None,
    chunk: int = 1024,
    client: Client | None = None,
    resume: bool = False,
    on_bad: str = "stop",
    *,
    chunk_atoms: int | None = 65536,
    dtype: str = "float64",
    overwrite: bool = False,
    allow_nonperiodic: bool = False,
    threads: int | None = None,
    pipeline: bool = True,
    progress: bool = False,
    device: str | None = None,
) -> FeaturizeSummary:
    """Featurize every frame of ``pool`` into the feature store ``out`` (a directory).

    Chunks hold at most ``chunk`` frames and (beyond one frame) ``chunk_atoms`` atoms.
    ``on_bad``: "stop" raises :class:`BadFrameError` at the first unusable frame (chunks
    before it stay written); "skip" records it in the store and goes on. ``client``: a
    ``distributed.Client``; chunks become tasks on its workers. ``threads``: OpenMP
    threads of the core (per task with a client). ``pipeline``: overlap reading,
    featurizing and writing in threads (local runs). ``device``: None runs the compiled
    CPU core; "cuda[:i]" computes on the GPU (in float64; on each Dask worker's GPU with a
    client), checked before any chunk is read.
    """
    if on_bad not in ON_BAD:
        raise ValueError(f"on_bad must be one of {ON_BAD}, got {on_bad!r}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if device is not None:
        select_device(device=device)  # a clear error now, not in the first chunk
        device = str(device)
    t0 = time.perf_counter()
    acsf = acsf if acsf is not None else ACSF.default_si()
    reader = pool if isinstance(pool, PoolReader) else open_pool(pool, allow_nonperiodic=allow_nonperiodic)
    if reader.n_frames == 0:
        raise ValueError(f"{reader.path} contains no structures")
    bounds = chunk_bounds(reader.counts, chunk, chunk_atoms)
    index_s = time.perf_counter() - t0
    out = os.path.abspath(os.fspath(out))
    meta = _store_meta(
        acsf,
        dtype,
        chunk,
        chunk_atoms,
        bounds,
        reader.n_frames,
        reader.allow_nonperiodic,
        {"path": reader.path, "kind": reader.kind, **reader.fingerprint},
    )
    done = _prepare_store(out, meta, bounds, resume, overwrite)
    refs = {k: reader.ref(int(bounds[k]), int(bounds[k + 1])) for k in range(len(bounds) - 1) if k not in done}
    summary = FeaturizeSummary(out, reader.n_frames, 0, 0, acsf.n_features, len(bounds) - 1, len(done), index_s=index_s)
    first_bad: list[tuple[int, str]] = []
    bar = _progress_bar(progress, reader.n_frames, int(sum(bounds[k + 1] - bounds[k] for k in done)))

    def report(res: ChunkResult) -> bool:
        if res.bad and on_bad == "stop":
            first_bad.append(min(res.bad.items()))
            return False
        summary.structures_run += res.stop - res.start
        summary.atoms_run += res.n_atoms
        summary.read_s += res.read_s
        summary.featurize_s += res.featurize_s
        summary.write_s += res.write_s
        if bar is not None:
            bar.update(res.stop - res.start)
            bar.set_postfix_str(f"{summary.atoms_run / max(time.perf_counter() - t0, 1e-9):,.0f} atoms/s")
        return True

    try:
        if client is not None:
            _run_dask(client, out, refs, acsf, dtype, on_bad, threads, report, device)
        else:
            if threads:
                set_num_threads(threads)
            (_run_pipelined if pipeline else _run_serial)(out, refs, acsf, dtype, on_bad, report, device)
    finally:
        if bar is not None:
            bar.close()
    if first_bad:
        frame, reason = min(first_bad)
        raise BadFrameError(frame, reason, reader.path)
    missing = set(range(len(bounds) - 1)) - fs.done_chunks(out, len(bounds) - 1)
    if missing:
        raise RuntimeError(f"chunks {sorted(missing)[:10]} of {out} were not written")
    totals = fs.finalize(out)
    summary.n_skipped, summary.n_atoms = totals["n_skipped"], totals["n_atoms"]
    summary.skipped = FeatureStore(out).skipped
    summary.seconds = time.perf_counter() - t0
    return summary


def _progress_bar(enabled: bool, total: int, initial: int) -> Any:
    if not enabled:
        return None

    return tqdm(total=total, initial=initial, desc="featurize", unit=" structures", smoothing=0.1)


def featurize_structures(
    structures: list[Atoms],
    out: str | os.PathLike,
    acsf: ACSF,
    chunk: int = 1024,
    chunk_atoms: int | None = 65536,
) -> FeatureStore:
    """Featurize in-memory structures into the float64 feature store ``out``, or continue it.

    Crash-safe like ``featurize_pool(resume=True)``: chunks already written are kept, the
    others computed. The source fingerprint is a hash of every structure's numbers,
    positions, cell and pbc, so a store made from other structures is refused, not reused.
    A structure the core rejects raises ValueError.
    """
    out = os.path.abspath(os.fspath(out))
    if not structures:
        raise ValueError("no structures to featurize")
    h = hashlib.blake2b(digest_size=16)
    for a in structures:
        for arr in (a.numbers.astype(np.int64), a.positions, np.asarray(a.cell), a.pbc):
            h.update(np.ascontiguousarray(arr).tobytes())
    counts = np.array([len(a) for a in structures], dtype=np.int64)
    bounds = chunk_bounds(counts, chunk, chunk_atoms)
    source = {"path": "", "kind": "structures", "size": int(counts.sum()), "blake2b_head_tail": h.hexdigest()}
    meta = _store_meta(acsf, "float64", chunk, chunk_atoms, bounds, len(structures), False, source)
    if os.path.isdir(out) and not fs.is_store(out) and not any(files for _, _, files in os.walk(out)):
        shutil.rmtree(out)  # killed between creating the directories and writing meta.json
    done = _prepare_store(out, meta, bounds, resume=True, overwrite=False)  # checks spec and source
    if len(done) == len(bounds) - 1 and os.path.exists(os.path.join(out, "complete.json")):
        return FeatureStore(out, acsf)
    for k in range(len(bounds) - 1):
        if k in done:
            continue
        a, b = int(bounds[k]), int(bounds[k + 1])
        frames, values = featurize_frames(acsf, Batch.from_atoms(structures[a:b], np.arange(a, b)))
        if frames.bad:
            frame, reason = min(frames.bad.items())
            raise ValueError(f"{out}: structure {frame} cannot be featurized: {reason}")
        fs.write_chunk(out, k, a, b, frames, values, "float64")
    fs.finalize(out)
    return FeatureStore(out, acsf)
