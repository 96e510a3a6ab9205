"""Central finite differences of an energy function, the reference of the analytic forces."""

from __future__ import annotations

from collections.abc import Callable

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
