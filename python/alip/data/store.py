"""The label store: one ASE SQLite database per run, the single source of truth.

Every structure of the pool is a row with key-value pairs

=================  ===========================================================
``pool_id``        unique int, the structure's name everywhere in alip
``family``         structure family (``info["family"]``, "unknown" if absent)
``status``         ``"pool"`` -> ``"queued"`` -> ``"labeled"`` | ``"failed"``
``iteration``      the active-learning iteration that selected it
``oracle``         oracle name; ``oracle_settings`` its settings as JSON
``wall_time``      seconds the oracle spent; ``queued_at``/``labeled_at`` Unix times
``error``          why the last attempt failed (failed rows); ``n_failures``
``failure``        failed rows: "structure" or "infrastructure" (Label.failure)
=================  ===========================================================

and, once labeled, the energy, forces and stress as the row's calculator
results.  The structure's original ``info`` is kept in the row's data.

Every write is one SQLite transaction, committed before the call returns, so a
process killed at any moment leaves each row either before or after a write,
never half-written.  Only one process should write (the labeling parent);
any number may read.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import ase.db
import numpy as np
from ase import Atoms
from ase.db.core import reserved_keys, str_represents, word

from alip.data.io import attach_label, read_extxyz, write_extxyz
from alip.data.oracles import Label

STATUSES: tuple[str, ...] = ("pool", "queued", "labeled", "failed")
#: kvp names the store owns; an incoming ``info`` entry of that name stays in data only.
_OWNED = frozenset(
    {
        "pool_id",
        "family",
        "status",
        "iteration",
        "oracle",
        "oracle_settings",
        "wall_time",
        "queued_at",
        "labeled_at",
        "error",
        "n_failures",
        "failure",
    }
)


def _as_int(value: Any, what: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be an int, got {value!r}")
    return int(value)


def _queryable(info: dict[str, Any]) -> dict[str, Any]:
    """Scalar info entries that can be ASE-db key-value pairs (for db queries)."""
    out = {}
    for key, value in info.items():
        if (
            key in _OWNED
            or key in reserved_keys
            or not isinstance(key, str)
            or not word.match(key)
            or key[:1].isupper()
        ):
            continue
        if isinstance(value, (bool, np.bool_)):
            out[key] = bool(value)
        elif isinstance(value, (int, float, np.integer, np.floating)) and np.isfinite(value):
            out[key] = value.item() if hasattr(value, "item") else value
        elif isinstance(value, str) and not _looks_numeric(value):
            out[key] = value
    return out


def _looks_numeric(text: str) -> bool:
    """ASE's database refuses text values that read as a bool, int or float."""
    return any(str_represents(text, t) for t in (bool, int, float))


def _text(value: Any, prefix: str) -> str:
    text = str(value)
    return f"{prefix}{text}" if _looks_numeric(text) else text


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


class LabelStore:
    """Pool, queue and labels of one run in an ASE SQLite database at ``path``."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        if not self.path.endswith(".db"):
            raise ValueError(f"label store path must end in '.db' (SQLite), got {self.path!r}")
        parent = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(parent):
            raise FileNotFoundError(f"directory of the label store does not exist: {parent}")
        # No ASE lock file: SQLite's own locking makes each write atomic, while a
        # writer killed inside a write would leave ASE's "<path>.lock" behind and
        # block every later write forever.
        self.db = ase.db.connect(self.path, type="db", append=True, use_lock_file=False)
        self._rowid: dict[int, int] = {}
        self._refresh_ids()

    # ------------------------------------------------------------------ internals
    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        """One SQLite transaction: committed on exit, rolled back on error."""
        with self.db:
            yield self.db

    def _refresh_ids(self) -> None:
        self._rowid = {int(row.pool_id): row.id for row in self.db.select("pool_id")}

    def _row_id(self, pool_id: int) -> int:
        pool_id = _as_int(pool_id, "pool_id")
        if pool_id not in self._rowid:
            self._refresh_ids()  # another process may have added rows
        try:
            return self._rowid[pool_id]
        except KeyError:
            raise KeyError(f"pool_id {pool_id} is not in the label store {self.path}") from None

    def _atoms(self, row: Any) -> Atoms:
        atoms = row.toatoms()
        info = dict(row.data.get("info", {})) if row.get("data") else {}
        info["pool_id"] = int(row.pool_id)
        info.setdefault("family", row.family)
        info["status"] = row.status
        for key in ("iteration", "oracle"):
            if key in row.key_value_pairs:
                info[key] = row.key_value_pairs[key]
        atoms.info = info
        if row.status != "labeled":
            atoms.calc = None
        return atoms

    # ------------------------------------------------------------------ writing
    def _insert(
        self, atoms_list: Sequence[Atoms], labeled: bool, oracle: str, oracle_settings: dict[str, Any] | None
    ) -> list[int]:
        atoms_list = list(atoms_list)
        next_id = max(self._rowid, default=-1) + 1
        ids: list[int] = []
        for i, atoms in enumerate(atoms_list):
            if not isinstance(atoms, Atoms):
                raise TypeError(f"item {i} is {type(atoms).__name__}, not ase.Atoms")
            if "pool_id" in atoms.info:
                pid = _as_int(atoms.info["pool_id"], f"info['pool_id'] of item {i}")
            else:
                pid = next_id
                next_id += 1
            if pid < 0:
                raise ValueError(f"pool_id must be >= 0, got {pid}")
            ids.append(pid)
            next_id = max(next_id, pid + 1)
        dup = sorted({p for p in ids if ids.count(p) > 1} | (set(ids) & set(self._rowid)))
        if dup:
            raise ValueError(f"pool_ids already present or repeated: {dup[:10]}")
        now = time.time()
        rows: list[tuple[int, int]] = []
        with self._transaction() as db:
            for pid, atoms in zip(ids, atoms_list):
                info = _jsonable({k: v for k, v in atoms.info.items() if k not in _OWNED - {"family"}})
                kvp = _queryable(info)
                kvp.update(pool_id=pid, family=_text(atoms.info.get("family", "unknown"), "family-"))
                if labeled:
                    res = atoms.calc.results if atoms.calc is not None else {}
                    if res.get("energy") is None or res.get("forces") is None:
                        raise ValueError(f"structure with pool_id {pid} carries no energy and forces")
                    row_atoms = attach_label(atoms, res["energy"], res["forces"], res.get("stress"))
                    kvp.update(
                        status="labeled",
                        oracle=_text(oracle, "oracle-"),
                        labeled_at=now,
                        wall_time=0.0,
                        oracle_settings=json.dumps(_jsonable(oracle_settings or {}), sort_keys=True),
                    )
                else:
                    row_atoms = atoms.copy()
                    row_atoms.calc = None
                    kvp.update(status="pool")
                rows.append((pid, db.write(row_atoms, data={"info": info}, **kvp)))
        self._rowid.update(rows)
        return ids

    def add_pool(self, atoms_list: Sequence[Atoms]) -> list[int]:
        """Add unlabeled structures (status "pool") in one transaction; returns their pool ids.

        ``info["pool_id"]`` is kept when present (must be new), otherwise the
        next free id is assigned.  Attached calculators are dropped.
        """
        return self._insert(atoms_list, False, "", None)

    def add_labeled(
        self, atoms_list: Sequence[Atoms], oracle: str = "imported", oracle_settings: dict[str, Any] | None = None
    ) -> list[int]:
        """Add structures that already carry labels (calculator results) as "labeled"."""
        return self._insert(atoms_list, True, oracle, oracle_settings)

    def mark_queued(self, pool_ids: Iterable[int], iteration: int) -> None:
        """Mark structures selected in ``iteration`` as "queued" (one transaction).

        Raises ValueError for a structure that is already labeled, so no label is
        ever computed twice.  Failed structures may be queued again.
        """
        iteration = _as_int(iteration, "iteration")
        ids = [_as_int(p, "pool_id") for p in pool_ids]
        rowids = [self._row_id(p) for p in ids]
        now = time.time()
        with self._transaction() as db:
            for pid, rid in zip(ids, rowids):
                status = db.get(id=rid).status
                if status == "labeled":
                    raise ValueError(f"pool_id {pid} is already labeled; it will not be queued again")
                db.update(rid, status="queued", iteration=iteration, queued_at=now)

    def record(
        self, pool_id: int, label: Label, oracle: Any = None, iteration: int | None = None, overwrite: bool = False
    ) -> None:
        """Store one label (labeled or failed) in a single committed transaction.

        ``oracle`` (an :class:`~alip.data.oracles.Oracle` or a name) is recorded with
        its settings.  Recording over an existing label raises ValueError unless
        ``overwrite``.
        """
        if not isinstance(label, Label):
            raise TypeError(f"record() needs a Label, got {type(label).__name__}")
        rid = self._row_id(pool_id)
        kvp: dict[str, Any] = {"wall_time": float(label.wall_time)}
        if oracle is not None:
            name = oracle if isinstance(oracle, str) else getattr(oracle, "name", type(oracle).__name__)
            settings = {} if isinstance(oracle, str) else getattr(oracle, "settings", {})
            kvp.update(
                oracle=_text(name, "oracle-"),
                oracle_settings=json.dumps(_jsonable(settings), sort_keys=True, default=str),
            )
        if iteration is not None:
            kvp["iteration"] = _as_int(iteration, "iteration")
        with self._transaction() as db:
            row = db.get(id=rid)
            if row.status == "labeled" and not overwrite:
                raise ValueError(f"pool_id {pool_id} is already labeled; pass overwrite=True to replace")
            if label.ok:
                atoms = attach_label(row.toatoms(), label.energy, label.forces, label.stress)
                kvp.update(status="labeled", labeled_at=time.time())
                db.update(rid, atoms=atoms, delete_keys=["error", "failure"], **kvp)
            else:
                kvp.update(
                    status="failed",
                    error=_text(str(label.error)[:4000] or "unknown error", "error: "),
                    failure=label.failure or "structure",
                    n_failures=int(row.key_value_pairs.get("n_failures", 0)) + 1,
                )
                db.update(rid, **kvp)

    def requeue(self, pool_ids: Iterable[int] | None = None) -> list[int]:
        """Put queued (default: all) or failed structures back to "pool"; labeled ones are kept."""
        ids = self.ids("queued") if pool_ids is None else [_as_int(p, "pool_id") for p in pool_ids]
        done = []
        with self._transaction() as db:
            for pid in ids:
                rid = self._row_id(pid)
                if db.get(id=rid).status in ("queued", "failed"):
                    db.update(rid, status="pool", delete_keys=["iteration", "queued_at"])
                    done.append(pid)
        return done

    # ------------------------------------------------------------------ metadata
    @property
    def meta(self) -> dict[str, Any]:
        """Run-level metadata (a JSON-like dict stored in the database)."""
        return dict(self.db.metadata)

    def update_meta(self, **entries: Any) -> None:
        """Merge ``entries`` into the run metadata."""
        meta = self.meta
        meta.update(_jsonable(entries))
        self.db.metadata = meta

    # ------------------------------------------------------------------ reading
    def __len__(self) -> int:
        return self.db.count()

    def __contains__(self, pool_id: object) -> bool:
        try:
            self._row_id(pool_id)  # type: ignore[arg-type]
        except (KeyError, TypeError):
            return False
        return True

    def _select(self, status: str | None = None, iteration: int | None = None, family: str | None = None) -> list[Any]:
        if status is not None and status not in STATUSES:
            raise ValueError(f"unknown status {status!r}; choose from {STATUSES}")
        query: dict[str, Any] = {}
        if status is not None:
            query["status"] = status
        if iteration is not None:
            query["iteration"] = _as_int(iteration, "iteration")
        if family is not None:
            query["family"] = str(family)
        rows = list(self.db.select("pool_id", **query))
        return sorted(rows, key=lambda r: r.pool_id)

    def ids(self, status: str | None = None, iteration: int | None = None, family: str | None = None) -> list[int]:
        """Sorted pool ids, optionally filtered by status, iteration and family."""
        return [int(r.pool_id) for r in self._select(status, iteration, family)]

    def status(self, pool_id: int) -> str:
        """Status of one structure."""
        return self.db.get(id=self._row_id(pool_id)).status

    def counts(self) -> dict[str, int]:
        """Number of structures per status."""
        return {s: self.db.count(status=s) for s in STATUSES}

    def get(self, pool_id: int) -> Atoms:
        """The structure (with its label attached when labeled)."""
        return self._atoms(self.db.get(id=self._row_id(pool_id)))

    def get_label(self, pool_id: int) -> Label | None:
        """The stored Label (labeled or failed), or None when not yet attempted."""
        row = self.db.get(id=self._row_id(pool_id))
        wall = float(row.key_value_pairs.get("wall_time", 0.0))
        if row.status == "labeled":
            return Label(
                "labeled",
                float(row.energy),
                np.array(row.forces),
                None if row.get("stress") is None else np.array(row.stress),
                wall,
            )
        if row.status == "failed":
            return Label.failed(row.error, wall, row.key_value_pairs.get("failure", "structure"))
        return None

    def label_times(self) -> tuple[np.ndarray, np.ndarray]:
        """(n_atoms, seconds) of every labeled structure with a recorded oracle time > 0
        (imported labels have none), sorted by pool id: what labels have cost so far."""
        n, t = [], []
        for row in self._select("labeled"):
            wall = float(row.key_value_pairs.get("wall_time", 0.0))
            if wall > 0 and np.isfinite(wall):
                n.append(int(row.natoms))
                t.append(wall)
        return np.array(n, dtype=np.int64), np.array(t, dtype=float)

    def failed_ids(self, failure: str | None = None) -> list[int]:
        """Sorted ids of failed structures, optionally of one failure kind ("structure" rows
        written before kinds were recorded count as "structure")."""
        rows = self._select("failed")
        return [
            int(r.pool_id) for r in rows if failure is None or r.key_value_pairs.get("failure", "structure") == failure
        ]

    def structures(
        self, status: str | None = None, iteration: int | None = None, family: str | None = None
    ) -> list[Atoms]:
        """Structures sorted by pool id, optionally filtered."""
        return [self._atoms(r) for r in self._select(status, iteration, family)]

    def pool(self) -> list[Atoms]:
        """Structures never selected (status "pool")."""
        return self.structures("pool")

    def queued(self) -> list[Atoms]:
        """Selected but not yet labeled: what a resumed run must still label."""
        return self.structures("queued")

    def labeled(self) -> list[Atoms]:
        """Labeled structures with energy, forces (and stress) attached."""
        return self.structures("labeled")

    def failed(self) -> list[Atoms]:
        """Structures whose last labeling attempt failed (``info`` lacks the error; see get_label)."""
        return self.structures("failed")

    # ------------------------------------------------------------------ extxyz
    def to_extxyz(self, path: str | os.PathLike, status: str | None = "labeled") -> int:
        """Write structures of ``status`` (all if None) to extxyz; returns how many."""
        atoms = self.structures(status)
        write_extxyz(path, atoms)
        return len(atoms)

    def import_extxyz(self, path: str | os.PathLike, oracle: str = "imported") -> list[int]:
        """Add every structure of an extxyz file: labeled ones as "labeled", others as "pool"."""
        atoms = read_extxyz(path)

        def has_label(a: Atoms) -> bool:
            res = a.calc.results if a.calc is not None else {}
            return res.get("energy") is not None and res.get("forces") is not None

        with_label = [a for a in atoms if has_label(a)]
        without = [a for a in atoms if not has_label(a)]
        ids = self.add_labeled(with_label, oracle=oracle) if with_label else []
        return ids + (self.add_pool(without) if without else [])

    @classmethod
    def from_extxyz(cls, extxyz: str | os.PathLike, path: str | os.PathLike, oracle: str = "imported") -> LabelStore:
        """A new store at ``path`` holding the structures of ``extxyz``."""
        if os.path.exists(path):
            raise FileExistsError(f"label store {path} already exists")
        store = cls(path)
        store.import_extxyz(extxyz, oracle=oracle)
        return store
