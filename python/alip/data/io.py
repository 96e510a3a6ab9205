"""Reading and writing structures and labels (extxyz, ASE databases).

Labels travel as ASE ``SinglePointCalculator`` results (``energy``, ``forces``,
``stress``), which is how extxyz and ASE databases store them; a dataset whose
labels sit under other names (e.g. ``REF_energy``) is read with the ``*_key``
arguments of :func:`read_labeled`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import ase.db
import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

_DB_SUFFIXES = (".db",)


def is_database(path: str | os.PathLike) -> bool:
    """True for an ASE SQLite database path (``*.db``)."""
    return str(path).lower().endswith(_DB_SUFFIXES)


def attach_label(atoms: Atoms, energy: float, forces: np.ndarray, stress: np.ndarray | None = None) -> Atoms:
    """A copy of ``atoms`` carrying the label as a SinglePointCalculator."""
    out = atoms.copy()
    results = {"energy": float(energy), "forces": np.array(forces, dtype=float)}
    if stress is not None:
        results["stress"] = np.array(stress, dtype=float)
    out.calc = SinglePointCalculator(out, **results)
    return out


def write_extxyz(path: str | os.PathLike, atoms_list: Sequence[Atoms], append: bool = False) -> None:
    """Write structures (with their info and any attached labels) to extended XYZ."""
    atoms_list = list(atoms_list)
    for i, a in enumerate(atoms_list):
        if not isinstance(a, Atoms):
            raise TypeError(f"item {i} is {type(a).__name__}, not ase.Atoms")
    write(str(path), atoms_list, format="extxyz", append=append)


def read_extxyz(path: str | os.PathLike, index: str = ":") -> list[Atoms]:
    """Read all structures from an extended XYZ file."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    out = read(str(path), index=index, format="extxyz")
    return out if isinstance(out, list) else [out]


@dataclass
class LabeledStructure:
    """One structure of a dataset with its stored label (stress may be None)."""

    atoms: Atoms
    energy: float
    forces: np.ndarray
    stress: np.ndarray | None


def voigt6(stress: object) -> np.ndarray | None:
    """Stress as Voigt (xx, yy, zz, yz, xz, xy) from (6,), (9,) or (3, 3); None stays None."""
    if stress is None:
        return None
    s = np.asarray(stress, dtype=float)
    if s.shape == (9,):
        s = s.reshape(3, 3)
    if s.shape == (3, 3):
        s = s[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
    if s.shape != (6,):
        raise ValueError(f"stress has shape {s.shape}; expected (6,), (9,) or (3, 3)")
    return s


def _from_atoms(
    a: Atoms, energy_key: str | None, forces_key: str | None, stress_key: str | None
) -> LabeledStructure | None:
    results = dict(a.calc.results) if a.calc is not None else {}
    energy = a.info.get(energy_key) if energy_key else results.get("energy")
    forces = a.arrays.get(forces_key) if forces_key else results.get("forces")
    stress = a.info.get(stress_key) if stress_key else results.get("stress")
    if energy is None or forces is None:
        return None
    bare = a.copy()
    bare.calc = None
    return LabeledStructure(bare, float(energy), np.array(forces, dtype=float), voigt6(stress))


def read_labeled(
    path: str | os.PathLike, energy_key: str | None = None, forces_key: str | None = None, stress_key: str | None = None
) -> list[LabeledStructure]:
    """Every labeled structure in an extxyz file (or any ASE-readable file) or ASE database.

    Structures without both an energy and forces are left out.  With the
    ``*_key`` arguments the label is read from ``info[energy_key]``,
    ``arrays[forces_key]`` and ``info[stress_key]`` instead of the calculator.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such dataset: {path}")
    out: list[LabeledStructure] = []
    if is_database(path):
        with ase.db.connect(str(path), type="db", use_lock_file=False) as db:
            for row in db.select():
                a = row.toatoms()
                a.info.update(row.key_value_pairs)
                item = _from_atoms(a, energy_key, forces_key, stress_key)
                if item is not None:
                    out.append(item)
        return out

    for a in read(str(path), index=":"):
        item = _from_atoms(a, energy_key, forces_key, stress_key)
        if item is not None:
            out.append(item)
    return out


_INDEX_CACHE: dict[tuple, dict[tuple, list]] = {}


def labeled_index(path: str, keys: tuple[str | None, str | None, str | None] = (None, None, None)) -> dict[tuple, list]:
    """Labels of a dataset grouped by (numbers bytes, pbc) for lookup by geometry.

    Each entry is ``(cell, positions, energy, forces, stress)``.  Cached per
    process and file version (path, mtime, size), so workers read a file once.
    """
    st = os.stat(path)
    cache_key = (path, st.st_mtime_ns, st.st_size, tuple(keys))
    if cache_key not in _INDEX_CACHE:
        index: dict[tuple, list] = {}
        for item in read_labeled(path, *keys):
            a = item.atoms
            group = (a.numbers.tobytes(), tuple(bool(p) for p in a.pbc))
            index.setdefault(group, []).append(
                (a.cell.array.copy(), a.positions.copy(), item.energy, item.forces, item.stress)
            )
        _INDEX_CACHE.clear()  # keep one dataset per process
        _INDEX_CACHE[cache_key] = index
    return _INDEX_CACHE[cache_key]
