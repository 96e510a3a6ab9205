"""The on-disk feature store written by :func:`alip.data.featurize.featurize_pool`.

A directory of NumPy ``.npy`` files, one per chunk, chosen over Zarr and HDF5 by
measurement (bench/pool.py ``--stores``): it writes fastest, needs no dependency,
lets Dask workers write their chunks concurrently without locks (chunks hold whole
structures, so their row counts differ, which a single Zarr array's regular chunk
grid cannot match without two workers sharing a Zarr chunk), survives SIGKILL
(every file is written under a temporary name and renamed; an HDF5 file open for
writing may be left corrupt) and Dask reads it natively:
``dask.array.from_npy_stack(OUT/values)``.

Layout (``OUT/``)::

    meta.json         format, version, descriptor spec, feature labels, dtype,
                      chunking, source file fingerprint, frame count
    chunks.npy        (n_chunks + 1,) frame boundaries of the chunks
    values/K.npy      (atoms of chunk K, n_features) descriptor values
    numbers/K.npy     (atoms of chunk K,) uint8 atomic numbers (the species)
    parts/K.json      chunk K's atom count per frame and skipped frames; written
                      last, so chunk K is done iff this file exists
    values/info       dtype and chunk sizes for dask.array.from_npy_stack
    offsets.npy       (n_frames + 1,) atom offsets; a skipped frame has 0 atoms
    skipped.json      {frame: reason} of the skipped frames
    complete.json     totals; present iff every chunk is done

Structure ``i`` of a store is always frame ``i`` of the pool: a skipped frame keeps
its place with zero atoms and its reason in ``skipped.json``, never a silent gap.
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from alip.core.batch import Batch
from alip.core.descriptors import ACSF
from alip.files import TMP_MARK, atomic_write

if TYPE_CHECKING:  # pragma: no cover
    import dask.array

__all__ = ["FeatureStore", "FORMAT", "FORMAT_VERSION"]

FORMAT = "alip-features"
FORMAT_VERSION = 1


# ----------------------------------------------------------------------------- writing
def save_npy(path: str, arr: np.ndarray) -> None:
    atomic_write(path, lambda f: np.save(f, arr, allow_pickle=False), durable=False)


def save_json(path: str, obj: Any) -> None:
    atomic_write(path, lambda f: f.write(json.dumps(obj, indent=1, sort_keys=True).encode()), durable=False)


def load_json(path: str) -> Any:
    with open(path) as f:
        return json.load(f)


def chunk_paths(out: str, k: int) -> tuple[str, str, str]:
    """(values, numbers, part) file of chunk ``k``."""
    return (
        os.path.join(out, "values", f"{k}.npy"),
        os.path.join(out, "numbers", f"{k}.npy"),
        os.path.join(out, "parts", f"{k}.json"),
    )


def write_chunk(out: str, k: int, start: int, stop: int, frames: Batch, values: np.ndarray, dtype: str) -> None:
    """Write chunk ``k`` (frames ``start:stop``): values, numbers, then the part file (the commit)."""
    counts = np.zeros(stop - start, dtype=np.int64)
    counts[frames.frame_ids - start] = frames.counts
    vpath, npath, ppath = chunk_paths(out, k)
    save_npy(vpath, np.ascontiguousarray(values, dtype=dtype))
    save_npy(npath, frames.numbers.astype(np.uint8))
    save_json(
        ppath,
        {
            "chunk": k,
            "start": start,
            "stop": stop,
            "n_atoms": int(counts.sum()),
            "counts": counts.tolist(),
            "skipped": {str(f): frames.bad[f] for f in sorted(frames.bad)},
        },
    )


def init_store(out: str, meta: dict, bounds: np.ndarray) -> None:
    """Create the directories and write meta.json and chunks.npy."""
    for sub in ("values", "numbers", "parts"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    save_json(os.path.join(out, "meta.json"), meta)
    save_npy(os.path.join(out, "chunks.npy"), np.asarray(bounds, dtype=np.int64))


def _npy_rows(path: str) -> int:
    fmt = np.lib.format
    with open(path, "rb") as f:  # the header only, no data read
        version = fmt.read_magic(f)
        shape, _, _ = (fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0)(f)
    return int(shape[0])


def done_chunks(out: str, n_chunks: int) -> set[int]:
    """Chunks whose three files are all there and agree (part file present, row counts match).
    Leftover temporary files of an interrupted run are removed."""
    for sub in ("values", "numbers", "parts"):
        d = os.path.join(out, sub)
        for name in os.listdir(d):
            if TMP_MARK in name:
                os.remove(os.path.join(d, name))
    done = set()
    for k in range(n_chunks):
        vpath, npath, ppath = chunk_paths(out, k)
        if not os.path.exists(ppath):
            continue
        n = int(load_json(ppath)["n_atoms"])
        if os.path.exists(vpath) and os.path.exists(npath) and _npy_rows(vpath) == n == _npy_rows(npath):
            done.add(k)
    return done


def finalize(out: str) -> dict:
    """Once every chunk is done: offsets, skipped frames, the Dask info file, complete.json."""
    meta = load_json(os.path.join(out, "meta.json"))
    bounds = np.load(os.path.join(out, "chunks.npy"))
    counts = np.zeros(meta["n_frames"], dtype=np.int64)
    skipped: dict[str, str] = {}
    rows = []
    for k in range(len(bounds) - 1):
        part = load_json(chunk_paths(out, k)[2])
        counts[part["start"] : part["stop"]] = part["counts"]
        skipped.update(part["skipped"])
        rows.append(int(part["n_atoms"]))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    save_npy(os.path.join(out, "offsets.npy"), offsets)
    save_json(os.path.join(out, "skipped.json"), dict(sorted(skipped.items(), key=lambda kv: int(kv[0]))))
    info = {"chunks": (tuple(rows), (int(meta["n_features"]),)), "dtype": np.dtype(meta["dtype"]), "axis": 0}
    atomic_write(os.path.join(out, "values", "info"), lambda f: pickle.dump(info, f, protocol=4), durable=False)
    totals = {
        "n_frames": int(meta["n_frames"]),
        "n_featurized": int(meta["n_frames"]) - len(skipped),
        "n_skipped": len(skipped),
        "n_atoms": int(offsets[-1]),
        "n_chunks": len(rows),
    }
    save_json(os.path.join(out, "complete.json"), totals)
    return totals


def is_store(path: str) -> bool:
    meta = os.path.join(path, "meta.json")
    if not os.path.isfile(meta):
        return False
    try:
        return load_json(meta).get("format") == FORMAT
    except (OSError, ValueError):
        return False


# ----------------------------------------------------------------------------- reading
class FeatureStore:
    """Read a complete feature store: spec, offsets, species, values by chunk or structure.

    With ``acsf`` given, a store computed with another descriptor spec raises
    ValueError, so features of different specs can never be mixed.
    """

    def __init__(self, path: str | os.PathLike, acsf: ACSF = None) -> None:
        self.path = os.fspath(path)
        if not is_store(self.path):
            raise ValueError(f"{self.path} is not an alip feature store (no meta.json of format {FORMAT!r})")
        self.meta: dict = load_json(os.path.join(self.path, "meta.json"))
        if self.meta.get("format_version", 0) > FORMAT_VERSION:
            raise ValueError(
                f"{self.path}: feature store version {self.meta['format_version']} is newer than "
                f"this alip reads ({FORMAT_VERSION})"
            )
        complete = os.path.join(self.path, "complete.json")
        if not os.path.exists(complete):
            raise ValueError(f"{self.path} is incomplete (interrupted run): continue it with resume=True")
        self.totals: dict = load_json(complete)
        if acsf is not None:
            self.check_spec(acsf)
        self.bounds: np.ndarray = np.load(os.path.join(self.path, "chunks.npy"))
        self.offsets: np.ndarray = np.load(os.path.join(self.path, "offsets.npy"))
        raw = load_json(os.path.join(self.path, "skipped.json"))
        self.skipped: dict[int, str] = {int(k): raw[k] for k in sorted(raw, key=int)}
        self._chunk_atoms = self.offsets[self.bounds]

    # ---- description
    @property
    def spec(self) -> dict:
        return dict(self.meta["spec"])

    @property
    def acsf(self) -> ACSF:
        return ACSF.from_dict(self.spec)

    def check_spec(self, acsf: ACSF) -> None:
        """Raise ValueError when ``acsf`` (an ACSF or its dict) is not the store's spec."""
        want = acsf if isinstance(acsf, dict) else acsf.to_dict()
        want = json.loads(json.dumps(want))
        if want != self.meta["spec"]:
            diff = sorted(k for k in set(want) | set(self.meta["spec"]) if want.get(k) != self.meta["spec"].get(k))
            raise ValueError(f"{self.path} was computed with another descriptor spec (differs in {diff})")

    @property
    def feature_labels(self) -> list[str]:
        return list(self.meta["feature_labels"])

    @property
    def n_features(self) -> int:
        return int(self.meta["n_features"])

    @property
    def n_structures(self) -> int:
        """Frames of the pool (skipped ones included, with 0 atoms)."""
        return len(self.offsets) - 1

    @property
    def n_atoms(self) -> int:
        return int(self.offsets[-1])

    @property
    def n_chunks(self) -> int:
        return len(self.bounds) - 1

    @property
    def ok(self) -> np.ndarray:
        """(n_structures,) bool: featurized (not skipped)."""
        mask = np.ones(self.n_structures, dtype=bool)
        mask[list(self.skipped)] = False
        return mask

    @property
    def n_atoms_per_structure(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return self.n_structures

    def __repr__(self) -> str:
        return (
            f"FeatureStore({self.path!r}, structures={self.n_structures}, skipped={len(self.skipped)}, "
            f"atoms={self.n_atoms}, features={self.n_features}, chunks={self.n_chunks})"
        )

    # ---- values
    def chunk_values(self, k: int) -> np.ndarray:
        """(atoms of chunk k, F) values, memory-mapped read-only."""
        return np.load(chunk_paths(self.path, k)[0], mmap_mode="r")

    def chunk_numbers(self, k: int) -> np.ndarray:
        return np.load(chunk_paths(self.path, k)[1])

    def iter_chunks(self) -> Iterator[tuple[int, int, np.ndarray]]:
        """(first frame, stop frame, values) of each chunk, in order."""
        for k in range(self.n_chunks):
            yield int(self.bounds[k]), int(self.bounds[k + 1]), self.chunk_values(k)

    def _atoms(self, a: int, b: int, get: Callable[[int], np.ndarray]) -> np.ndarray:
        ks = range(
            max(int(np.searchsorted(self._chunk_atoms, a, side="right")) - 1, 0),
            int(np.searchsorted(self._chunk_atoms, b, side="left")),
        )
        parts = []
        for k in ks:
            lo = self._chunk_atoms[k]
            parts.append(np.asarray(get(k)[max(a - lo, 0) : b - lo]))
        return np.concatenate(parts) if parts else np.asarray(get(0)[0:0])

    def values(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Values (atoms, F) of structures ``start:stop``, concatenated (loads them into memory)."""
        stop = self.n_structures if stop is None else stop
        return self._atoms(int(self.offsets[start]), int(self.offsets[stop]), self.chunk_values)

    def numbers(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Atomic numbers (atoms,) of structures ``start:stop``."""
        stop = self.n_structures if stop is None else stop
        return self._atoms(int(self.offsets[start]), int(self.offsets[stop]), self.chunk_numbers)

    def structure(self, i: int) -> np.ndarray:
        """Values (n_atoms_i, F) of structure ``i`` (empty for a skipped frame)."""
        return self.values(i, i + 1)

    def mean_pooled(self) -> np.ndarray:
        """(n_structures, F) per-structure mean of the atomic descriptors; NaN rows for skipped frames."""
        out = np.full((self.n_structures, self.n_features), np.nan)
        for a, b, vals in self.iter_chunks():
            counts = np.diff(self.offsets[a : b + 1])
            has = counts > 0
            if has.any():
                starts = (self.offsets[a:b] - self.offsets[a])[has]
                out[a:b][has] = np.add.reduceat(np.asarray(vals, dtype=np.float64), starts, axis=0) / counts[has, None]
        return out

    def to_dask(self) -> dask.array.Array:
        """The values as a dask array (n_atoms, F), one block per chunk (``da.from_npy_stack``)."""
        import dask.array as da

        return da.from_npy_stack(os.path.join(self.path, "values"))
