"""Neighbor lists from the compiled core, with ASE's conventions."""

from __future__ import annotations

import numpy as np
from ase import Atoms

from alip import _core


def neighbor_list(atoms: Atoms, cutoff: float) -> tuple[np.ndarray, ...]:
    """Full neighbor list of `atoms` within `cutoff` (Å): (i, j, S, D, d).

    Same content as ``ase.neighborlist.neighbor_list("ijSDd", atoms, cutoff)``:
    D = positions[j] + S @ cell - positions[i], d = |D|; sorted by i, then j.
    Periodic along any subset of axes, triclinic cells, cutoffs larger than the cell.
    """
    if not isinstance(atoms, Atoms):
        raise TypeError(f"expected ase.Atoms, got {type(atoms).__name__}")
    positions = np.ascontiguousarray(atoms.positions, dtype=np.float64)
    cell = np.ascontiguousarray(atoms.cell.array, dtype=np.float64)
    pbc = np.ascontiguousarray(atoms.pbc, dtype=np.uint8)
    return _core.neighbor_list(positions, cell, pbc, float(cutoff))
