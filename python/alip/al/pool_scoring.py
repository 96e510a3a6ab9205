"""Committee (query-by-committee) scores of large pools, streamed in chunks, on Dask if asked.

:func:`score_pool_streamed` reads the pool chunk by chunk (a file is never loaded
whole), evaluates the committee on each chunk with the fused force path and keeps
only per-structure numbers, so memory is bounded by the chunk:

- ``energy_std``: standard deviation of the K members' energies (ddof = 0) divided by
  the atom count, eV/atom;
- ``max_force_dev``: max over the atoms of ε_F,i = sqrt(⟨|F_ik − ⟨F_i⟩_k|²⟩_k) (DP-GEN), eV/Å;
- ``virial_dev``: ε_W = sqrt(⟨‖W_k − ⟨W⟩_k‖²⟩_k) / N, the committee spread of the virial, eV/atom;
- ``energy_mean``: the committee's mean energy per atom, eV/atom;
- ``features``: mean-pooled descriptors (per-structure mean of the atomic ACSF rows),
  for diversity selection.

These are the definitions of :class:`alip.models.committee.Prediction` and of the
in-process QBC path of :func:`score_pool`, computed through the same code.
:func:`score_pool` is the one entry point of the loop: in process (QBC, EMC, random) or,
for QBC with a Dask client, through :func:`score_pool_streamed`.

With a ``distributed.Client`` each chunk is a task; the committee is scattered to every
worker once (``broadcast=True``) and tasks refer to that copy, so it is not shipped per
task. File pools are read by the workers themselves (a shared filesystem is needed);
in-memory lists of structures travel as packed arrays, one chunk per task.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from ase import Atoms
from tqdm.auto import tqdm

from alip.al.acquisition import emc_chunk, qbc_chunk, qbc_from_parts
from alip.config import QBC_KINDS, STRATEGIES
from alip.core.batch import Batch
from alip.core.build import get_num_threads, set_num_threads
from alip.core.device import DeviceLike, select_device
from alip.data.dask_window import run_windowed
from alip.data.featurize import (
    ON_BAD,
    BadFrameError,
    _species_index,
    featurize_frames,
    tune_worker_malloc,
)
from alip.data.pool_reader import ChunkRef, PoolReader, check_frames, chunk_bounds, open_pool, read_ref
from alip.models.committee import Committee, Prediction
from alip.models.networks import torch_threads

if TYPE_CHECKING:  # pragma: no cover
    from distributed import Client

__all__ = ["PoolScores", "StreamedScores", "score_pool", "score_pool_streamed", "score_frames"]


@dataclass
class StreamedScores:
    """Per-structure committee scores, in the order of the scored frames (``frame_ids``).

    Skipped frames (unreadable, NaN, missing cell, rejected by the core) have ``ok``
    False, NaN scores and features, and their reason in ``skipped``.
    """

    frame_ids: np.ndarray  # (S,) int64 pool frame of each entry
    n_atoms: np.ndarray  # (S,) int64 (0 for skipped frames)
    energy_mean: np.ndarray  # (S,) eV/atom
    energy_std: np.ndarray  # (S,) eV/atom
    max_force_dev: np.ndarray  # (S,) eV/Å
    virial_dev: np.ndarray  # (S,) eV/atom
    features: np.ndarray  # (S, F) mean-pooled descriptors
    ok: np.ndarray  # (S,) bool
    skipped: dict[int, str] = field(default_factory=dict)
    seconds: float = 0.0

    def __len__(self) -> int:
        return len(self.frame_ids)


def score_frames(
    committee: Committee, frames: Batch, device: DeviceLike | None = None, values: np.ndarray | None = None
) -> tuple[Batch, dict[str, np.ndarray]]:
    """(frames scored, per-structure arrays) of one chunk; rejected frames move to ``bad``.
    ``device``: None runs the compiled CPU core; "cuda[:i]" runs :mod:`alip.core.device`.
    ``values``: the frames' stored descriptors (atoms, F), used on the CPU instead of computing them."""
    F = committee.acsf.n_features
    if device is None and values is not None and len(values) == frames.n_atoms:
        pred = None
    elif device is None:
        frames, values = featurize_frames(committee.acsf, frames)
        pred = None
    else:
        frames, pred, values = _predict_on_device(committee, frames, device)
    if frames.n_structures == 0:
        empty = np.zeros(0)
        return frames, {
            "energy_mean": empty,
            "energy_std": empty,
            "max_force_dev": empty,
            "virial_dev": empty,
            "features": np.zeros((0, F)),
        }
    offsets = frames.offsets
    if pred is None:
        E, _, dE_dG = committee.evaluate(values, frames.numbers, offsets)

        idx = _species_index(committee.acsf, frames)[0]
        forces, virials = committee.acsf.forces_and_virial_packed(frames, dE_dG, idx)  # all K members at once
        pred = Prediction(E, forces, virials, offsets)
    counts = frames.counts
    pooled = np.add.reduceat(values, offsets[:-1], axis=0) / counts[:, None]
    return frames, {
        "energy_mean": pred.energies.mean(axis=0) / counts,
        "energy_std": pred.energy_std_per_atom(),
        "max_force_dev": pred.max_force_deviation(),
        "virial_dev": pred.virial_deviation_per_atom(),
        "features": pooled,
    }


def _predict_on_device(
    committee: Committee, frames: Batch, device: DeviceLike
) -> tuple[Batch, Prediction | None, np.ndarray | None]:
    """(frames kept, Prediction, values): one device pass for a clean chunk; in a chunk with
    rejected frames, those are first located frame by frame, as on the CPU."""

    def predict(frames: Batch, idx: np.ndarray) -> tuple[Batch, Prediction, np.ndarray]:
        values, E, e_atom, F, W = committee._predict_torch(
            frames.to("cpu", committee.acsf.species, idx), frames.numbers, frames.offsets, device
        )
        return frames, Prediction(E, F, W, frames.offsets, e_atom), values

    idx, bad = _species_index(committee.acsf, frames)
    if not bad and frames.n_structures:
        try:
            return predict(frames, idx)
        except ValueError:  # a frame the core rejects: locate it below
            pass
    frames, _ = featurize_frames(committee.acsf, frames, device)  # rejected frames move to frames.bad
    if frames.n_structures == 0:
        return frames, None, None
    return predict(frames, _species_index(committee.acsf, frames)[0])


def _score_task(
    committee: Committee,
    source: ChunkRef | Batch,
    keep: np.ndarray | None,
    threads: int | None,
    allow_nonperiodic: bool,
    device: DeviceLike | None = None,
    values: np.ndarray | None = None,
) -> tuple[Batch, dict[str, np.ndarray]]:
    """One chunk: read (a ChunkRef) or take (Batch), keep the wanted frames, score.
    ``values``: stored descriptors of an in-memory chunk's frames, used when none was rejected."""
    tune_worker_malloc()
    if threads:
        set_num_threads(threads)
    frames = read_ref(source) if isinstance(source, ChunkRef) else check_frames(source, allow_nonperiodic)
    if keep is not None:
        frames = frames.select(np.isin(frames.frame_ids, keep))
        frames.bad = {f: r for f, r in frames.bad.items() if f in set(keep.tolist())}
    return score_frames(committee, frames, device, None if frames.bad else values)


def _targets(n_frames: int, indices: Sequence[int] | None) -> np.ndarray:
    if indices is None:
        return np.arange(n_frames, dtype=np.int64)
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if len(np.unique(idx)) != len(idx):
        raise ValueError("indices contain duplicates")
    if len(idx) and (idx.min() < 0 or idx.max() >= n_frames):
        raise IndexError(f"indices outside the pool's {n_frames} frames")
    return idx


def _plan(
    targets: np.ndarray, counts: np.ndarray, chunk: int, chunk_atoms: int | None
) -> list[tuple[int, int, np.ndarray | None]]:
    """(first frame, stop frame, frames to keep or None) per task, over sorted targets."""
    order = np.sort(targets)
    if len(order) == len(counts):  # the whole pool
        b = chunk_bounds(counts, chunk, chunk_atoms)
        return [(int(b[k]), int(b[k + 1]), None) for k in range(len(b) - 1)]
    pos = chunk_bounds(counts[order], chunk, chunk_atoms)
    plan = []
    for k in range(len(pos) - 1):
        sel = order[pos[k] : pos[k + 1]]
        # a sparse selection would read long ranges: split where frames are far apart
        cuts = np.flatnonzero(np.diff(sel) > 8 * chunk) + 1
        for part in np.split(sel, cuts):
            plan.append((int(part[0]), int(part[-1]) + 1, part))
    return plan


def score_pool_streamed(
    committee: Committee,
    pool_source: str | os.PathLike | PoolReader | Sequence[Atoms],
    chunk: int = 256,
    client: Client | None = None,
    *,
    indices: Sequence[int] | None = None,
    chunk_atoms: int | None = 8192,
    on_bad: str = "skip",
    allow_nonperiodic: bool = False,
    threads: int | None = None,
    progress: bool = False,
    device: str | None = None,
    values: Sequence[np.ndarray] | None = None,
) -> StreamedScores:
    """QBC scores and mean-pooled descriptors of every frame (or of ``indices``) of a pool.

    ``pool_source``: an extxyz / ASE ``*.db`` path, a :class:`~alip.data.pool_reader.PoolReader`,
    or a list of ``ase.Atoms``. Chunks hold at most ``chunk`` structures and (beyond one)
    ``chunk_atoms`` atoms. ``on_bad="skip"`` scores the rest and reports unusable frames
    in ``skipped``; ``"stop"`` raises :class:`~alip.data.featurize.BadFrameError`.
    ``client``: a ``distributed.Client`` (the committee is broadcast to its workers once).
    Results are in the order of ``indices`` (default: pool order). ``device``: None runs
    the compiled CPU core; "cuda[:i]" runs descriptors, networks and forces on the GPU
    (on each worker's GPU with a client), checked before the first chunk. ``values``: each
    structure's stored descriptors (n_atoms, F) of an in-memory pool, sent with its chunk
    and used on the CPU instead of computing them.
    """
    if on_bad not in ON_BAD:
        raise ValueError(f"on_bad must be one of {ON_BAD}, got {on_bad!r}")
    if device is not None:
        select_device(device=device)
        device = str(device)
    t0 = time.perf_counter()
    in_memory = not isinstance(pool_source, (str, os.PathLike, PoolReader))
    if values is not None and not in_memory:
        raise ValueError("values are taken with an in-memory pool (a list of Atoms) only")
    if in_memory:
        atoms_list = list(pool_source)
        counts = np.array([len(a) for a in atoms_list], dtype=np.int64)
        if values is not None and len(values) != len(atoms_list):
            raise ValueError(f"values holds {len(values)} structures, the pool {len(atoms_list)}")
        reader = None
    else:
        reader = (
            pool_source
            if isinstance(pool_source, PoolReader)
            else open_pool(pool_source, allow_nonperiodic=allow_nonperiodic)
        )
        counts = reader.counts
    targets = _targets(len(counts), indices)
    plan = _plan(targets, counts, chunk, chunk_atoms) if len(targets) else []

    def source(a: int, b: int, keep: np.ndarray | None) -> ChunkRef | Batch:
        if reader is not None:
            return reader.ref(a, b)
        ids = np.arange(a, b) if keep is None else keep
        return Batch.from_atoms([atoms_list[i] for i in ids], ids)

    def stored(a: int, b: int, keep: np.ndarray | None) -> np.ndarray | None:
        if values is None:
            return None
        return np.concatenate([values[i] for i in (range(a, b) if keep is None else keep)])

    F = committee.acsf.n_features
    n = len(targets)
    pos_of = np.full(len(counts), -1, dtype=np.int64)
    pos_of[targets] = np.arange(n)
    nan = lambda: np.full(n, np.nan)  # noqa: E731
    res = StreamedScores(
        targets.copy(),
        np.zeros(n, dtype=np.int64),
        nan(),
        nan(),
        nan(),
        nan(),
        np.full((n, F), np.nan),
        np.zeros(n, dtype=bool),
    )

    def collect(frames: Batch, arrays: dict[str, np.ndarray]) -> None:
        if frames.bad and on_bad == "stop":
            frame, reason = min(frames.bad.items())
            raise BadFrameError(frame, reason, reader.path if reader is not None else "")
        p = pos_of[frames.frame_ids]
        res.n_atoms[p] = frames.counts
        res.ok[p] = True
        for name in ("energy_mean", "energy_std", "max_force_dev", "virial_dev", "features"):
            getattr(res, name)[p] = arrays[name]
        res.skipped.update({int(f): r for f, r in frames.bad.items()})
        if bar is not None:
            bar.update(frames.n_structures + len(frames.bad))

    bar = None
    if progress:
        bar = tqdm(total=n, desc="scoring pool", unit=" structures")
    try:
        if client is None:
            with _omp_threads(threads):
                for a, b, keep in plan:
                    task = (source(a, b, keep), keep, None, allow_nonperiodic, device, stored(a, b, keep))
                    collect(*_score_task(committee, *task))
        else:
            _score_dask(client, committee, plan, source, threads, allow_nonperiodic, collect, device, stored)
    finally:
        if bar is not None:
            bar.close()
    res.seconds = time.perf_counter() - t0
    return res


class _omp_threads:
    """Set the core's OpenMP threads for a block (restored after); no-op for None."""

    def __init__(self, n: int | None) -> None:
        self.n, self.old = n, None

    def __enter__(self) -> None:
        if self.n:
            self.old = get_num_threads()
            set_num_threads(self.n)

    def __exit__(self, *exc: Any) -> None:
        if self.old:
            set_num_threads(self.old)


def _score_dask(
    client: Client,
    committee: Committee,
    plan: list,
    source: Any,
    threads: int | None,
    allow_nonperiodic: bool,
    collect: Any,
    device: DeviceLike | None = None,
    stored: Any = None,
) -> None:
    """One task per chunk over a sliding window; the committee is scattered once to all workers."""
    if not plan:
        return
    committee_f = client.scatter(committee, broadcast=True, hash=False)
    token = uuid.uuid4().hex[:8]
    counter = iter(range(len(plan)))

    def submit(item: tuple[int, int, np.ndarray | None]) -> Any:
        a, b, keep = item
        return client.submit(
            _score_task,
            committee_f,
            source(a, b, keep),
            keep,
            threads,
            allow_nonperiodic,
            device,
            None if stored is None else stored(a, b, keep),
            key=f"alip-score-{token}-{next(counter)}",
            retries=1,
        )

    try:
        run_windowed(client, plan, submit, lambda result: collect(*result))
    finally:
        client.cancel(committee_f)


# ----------------------------------------------------------------------------- the scoring path
@dataclass
class PoolScores:
    """Scores (S,) and mean-pooled descriptors (S, F) of the scored structures, in input order."""

    scores: np.ndarray
    features: np.ndarray | None
    energy_std: np.ndarray | None = None  # σ_E/N (eV/atom), QBC only
    max_force_dev: np.ndarray | None = None  # max_i ε_F,i (eV/Å), QBC only
    virial_dev: np.ndarray | None = None  # ε_W (eV/atom), QBC only


def _chunks(sizes: np.ndarray, chunk_atoms: int) -> list[np.ndarray]:
    """Index chunks of at most ``chunk_atoms`` atoms (at least one structure), similar sizes together."""
    order = np.argsort(sizes, kind="stable")
    chunks, current, total = [], [], 0
    for i in order:
        if current and total + sizes[i] > chunk_atoms:
            chunks.append(np.array(current))
            current, total = [], 0
        current.append(i)
        total += sizes[i]
    if current:
        chunks.append(np.array(current))
    return chunks


def score_pool(
    committee: Committee,
    atoms_list: Sequence[Atoms],
    strategy: str,
    qbc_kind: str = "force",
    emc_forces: bool = True,
    emc_params: str = "all",
    weight_energy: float = 1.0,
    weight_forces: float = 0.1,
    chunk_atoms: int = 2048,
    seed: int = 0,
    progress: bool = False,
    client: Client | None = None,
    threads: int | None = None,
    values: Sequence[np.ndarray] | None = None,
) -> PoolScores:
    """Score every structure of the pool: the one scoring path of the loop.

    In this process the pool runs in chunks (bounded memory, tqdm progress bar) through the
    per-chunk scorers :func:`~alip.al.acquisition.qbc_chunk` and
    :func:`~alip.al.acquisition.emc_chunk`. With a ``distributed.Client`` QBC runs through
    :func:`score_pool_streamed` on the workers (the committee sent once per worker, ``threads``
    OpenMP threads per task); the scores are the same. ``random`` draws uniform scores from
    ``seed`` and computes no descriptors (``features`` is None). EMC's ``weight_*`` are the
    training loss weights. ``values``: each structure's stored descriptors (n_atoms, F), e.g.
    from the run's feature store; in this process they replace computing G (QBC, EMC, and
    the mean-pooled ``features``, which random scoring then returns too), on Dask too.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {STRATEGIES}")
    if chunk_atoms < 1:
        raise ValueError(f"chunk_atoms must be >= 1, got {chunk_atoms}")
    if qbc_kind not in QBC_KINDS:
        raise ValueError(f"unknown QBC score {qbc_kind!r}; choose from {QBC_KINDS}")
    atoms_list = list(atoms_list)
    n = len(atoms_list)
    if values is not None and len(values) != n:
        raise ValueError(f"values holds {len(values)} structures, the pool {n}")
    if client is not None and strategy == "qbc":
        r = score_pool_streamed(
            committee,
            atoms_list,
            client=client,
            chunk_atoms=chunk_atoms,
            on_bad="stop",
            threads=threads,
            progress=progress,
            values=values,
        )
        scores = qbc_from_parts(qbc_kind, r.energy_std, r.max_force_dev, r.virial_dev)
        return PoolScores(scores, r.features, r.energy_std, r.max_force_dev, r.virial_dev)
    if strategy == "random":
        pooled = None if values is None else np.stack([v.mean(0) for v in values]) if n else None
        return PoolScores(np.random.default_rng(seed).random(n), pooled)
    if n == 0:
        return PoolScores(np.zeros(0), np.zeros((0, committee.acsf.n_features)))
    sizes = np.array([len(a) for a in atoms_list])
    scores = np.zeros(n)
    features = np.zeros((n, committee.acsf.n_features))
    e_std, f_dev, w_dev = np.zeros(n), np.zeros(n), np.zeros(n)
    with (
        torch_threads(threads),
        tqdm(total=n, desc=f"scoring pool ({strategy})", unit="struct", disable=not progress) as bar,
    ):
        for idx in _chunks(sizes, chunk_atoms):
            chunk = [atoms_list[i] for i in idx]
            G = None if values is None else np.concatenate([values[i] for i in idx])
            if strategy == "qbc":
                pred, features[idx] = qbc_chunk(committee, chunk, G)
                e_std[idx] = pred.energy_std_per_atom()
                f_dev[idx] = pred.max_force_deviation()
                w_dev[idx] = pred.virial_deviation_per_atom()
            else:
                scores[idx], features[idx] = emc_chunk(
                    committee, chunk, weight_energy, weight_forces, emc_forces, emc_params, G
                )
            bar.update(len(idx))
    if strategy == "qbc":
        return PoolScores(qbc_from_parts(qbc_kind, e_std, f_dev, w_dev), features, e_std, f_dev, w_dev)
    return PoolScores(scores, features)
