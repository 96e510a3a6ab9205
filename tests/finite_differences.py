"""Central finite differences of an energy function, the reference of the analytic forces."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from ase import Atoms


def fd_forces(energy: Callable[[Atoms], float], atoms: Atoms, h: float = 1e-4) -> np.ndarray:
    """-dE/dx of ``energy`` at ``atoms`` by central differences with step ``h`` (Å), (N, 3)."""
    forces = np.zeros((len(atoms), 3))
    for i in range(len(atoms)):
        for k in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[i, k] += h
            minus.positions[i, k] -= h
            forces[i, k] = -(energy(plus) - energy(minus)) / (2 * h)
    return forces


def fd_virial(energy: Callable[[Atoms], Any], atoms: Atoms, h: float = 1e-4) -> np.ndarray:
    """W = -dE/deps of ``energy`` by central differences, positions and cell deformed by I + eps:
    (3, 3), or (..., 3, 3) for an array-valued energy (e.g. one per committee member)."""
    columns = []
    for a in range(3):
        for b in range(3):
            energies = []
            for sign in (1.0, -1.0):
                eps = np.zeros((3, 3))
                eps[a, b] = sign * h
                strained = atoms.copy()
                strained.positions = atoms.positions @ (np.eye(3) + eps)
                strained.cell = atoms.cell[:] @ (np.eye(3) + eps)
                energies.append(np.asarray(energy(strained), dtype=np.float64))
            columns.append(-(energies[0] - energies[1]) / (2 * h))
    return np.moveaxis(np.stack(columns).reshape(3, 3, *columns[0].shape), (0, 1), (-2, -1))
