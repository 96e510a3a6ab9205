"""Shared fixtures for the descriptor-core tests: structures and small ACSF specs.

Structures are deterministic (fixed seeds) and small so the brute-force reference in
reference_acsf.py and finite differences stay fast. Names say what each one exercises.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

# --------------------------------------------------------------------------------------
# Descriptor parameter sets (eta in 1/A^2, r_s in A)
# --------------------------------------------------------------------------------------
# Small but covering: G2 with r_s = 0 and r_s > 0, G4/G5 with lambda = +-1, zeta = 1, 2, 4
# and a non-integer zeta (1.5 with lambda = -1: smooth for all angles < 180 deg).
SMALL_G2 = [(0.5, 0.0), (1.0, 2.2), (0.2, 3.5)]
SMALL_G4 = [(0.01, 1.0, 1.0), (0.02, 2.0, -1.0), (0.005, 4.0, 1.0), (0.01, 1.5, -1.0)]
SMALL_G5 = [(0.01, 1.0, -1.0), (0.03, 2.0, 1.0)]


def make_acsf(species, cutoff, g2=SMALL_G2, g4=SMALL_G4, g5=SMALL_G5, **kw):
    """alip.ACSF with the given parameters (imported lazily so that collection works
    even while the compiled core is being rebuilt)."""
    import alip

    return alip.ACSF(species=list(species), cutoff=cutoff, g2=list(g2), g4=list(g4), g5=list(g5), **kw)


def make_reference(species, cutoff, g2=SMALL_G2, g4=SMALL_G4, g5=SMALL_G5):
    from reference_acsf import ReferenceACSF

    return ReferenceACSF(species, cutoff, g2, g4, g5)


def torch_reference_values(acsf, atoms):
    """(n_atoms, F) values of the pure-torch reference (alip.core.descriptors_torch) for ``atoms``."""
    import torch

    from alip.core.descriptors_torch import reference_acsf

    return reference_acsf(
        acsf,
        torch.tensor(atoms.positions, dtype=torch.float64),
        torch.tensor(atoms.cell[:], dtype=torch.float64),
        atoms.numbers,
        atoms.pbc,
    ).numpy()


# --------------------------------------------------------------------------------------
# Structures
# --------------------------------------------------------------------------------------
A_SI = 5.431


def si_primitive():
    """Diamond Si, 2-atom fcc primitive cell: every cell height (3.14 A) < cutoff."""
    return bulk("Si", "diamond", a=A_SI)


def si_primitive_rattled():
    """Primitive diamond cell with atoms displaced: non-zero forces, cutoff > cell."""
    a = si_primitive()
    a.rattle(0.08, seed=12)
    return a


def si_small_cell():
    """Two Si atoms in a 2.9-3.2 A triclinic cell: ~100 image neighbours at a 6.5 A cutoff,
    including images of the center itself."""
    return Atoms(
        "Si2",
        cell=[[3.0, 0.0, 0.0], [0.5, 2.9, 0.0], [0.3, -0.4, 3.2]],
        pbc=True,
        positions=[[0.3, 0.2, 0.1], [1.9, 1.45, 1.7]],
    )


def si_conventional():
    """Diamond Si, 8-atom cubic cell (5.431 A < 6 A cutoff)."""
    return bulk("Si", "diamond", a=A_SI, cubic=True)


def si_rattled(seed=0, amplitude=0.1):
    """Conventional Si cell, rattled and slightly sheared: no symmetry left."""
    a = si_conventional()
    a.set_cell(
        a.cell[:] @ (np.eye(3) + np.array([[0.01, 0.02, 0.0], [0.0, -0.015, 0.01], [0.0, 0.0, 0.02]])), scale_atoms=True
    )
    a.rattle(amplitude, seed=seed)
    return a


def si_triclinic(seed=1):
    """A small, strongly triclinic 3-atom Si cell (heights ~3 A, far below the cutoff)."""
    rng = np.random.default_rng(seed)
    cell = np.array([[3.6, 0.0, 0.0], [1.3, 3.4, 0.0], [-0.9, 1.2, 3.8]])
    while True:
        frac = rng.random((3, 3))
        a = Atoms("Si3", cell=cell, pbc=True, scaled_positions=frac)
        if _min_distance(a) > 1.9:
            return a


def si_tiny_cell():
    """One Si atom in a 2.6 A simple-cubic-ish triclinic cell: only self-images as neighbours."""
    return Atoms("Si", cell=[[2.6, 0.0, 0.0], [0.4, 2.5, 0.0], [0.2, -0.3, 2.7]], pbc=True, positions=[[0.3, 0.2, 0.1]])


def sic_zincblende():
    """Two species, periodic, rattled: SiC zincblende primitive cell."""
    a = bulk("SiC", "zincblende", a=4.36)
    a.rattle(0.04, seed=3)
    return a


def sio_triclinic(seed=4):
    """Three species (H, O, Si), triclinic, fully periodic, cutoff > cell."""
    rng = np.random.default_rng(seed)
    cell = np.array([[4.2, 0.0, 0.0], [0.8, 4.0, 0.0], [-0.6, 0.9, 4.4]])
    while True:
        a = Atoms("Si2O2H", cell=cell, pbc=True, scaled_positions=rng.random((5, 3)))
        if _min_distance(a) > 1.4:
            return a


def sioh_molecule():
    """Non-periodic, no cell, three species: a small silanol-like molecule."""
    return Atoms(
        "SiOH4",
        positions=[
            [0.00, 0.00, 0.00],
            [1.65, 0.05, -0.10],
            [2.10, 0.85, 0.20],
            [-0.55, 1.30, 0.35],
            [-0.50, -0.75, 1.20],
            [-0.45, -0.70, -1.25],
        ],
        pbc=False,
    )


def si_cluster():
    """Non-periodic Si8 cluster cut from the rattled crystal, inside a (ignored) cell."""
    a = si_rattled(seed=5)
    a.pbc = False
    return a


def si_slab():
    """Partially periodic slab: pbc = (T, T, F), vacuum along z."""
    a = bulk("Si", "diamond", a=A_SI, cubic=True)
    a.center(vacuum=4.0, axis=2)
    a.pbc = (True, True, False)
    a.rattle(0.05, seed=6)
    return a


def si_wire():
    """Partially periodic wire: pbc = (F, F, T), zero cell vectors on the open axes."""
    pos = np.array([[0.0, 0.0, 0.0], [1.4, 1.2, 0.9], [-0.2, 2.3, 1.8], [1.1, 0.3, 2.6]])
    return Atoms(
        "Si4", positions=pos, cell=[[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 3.7]], pbc=(False, False, True)
    )


def _min_distance(atoms):
    from ase.neighborlist import neighbor_list

    d = neighbor_list("d", atoms, 2.5)
    return d.min() if len(d) else np.inf


# name -> (factory, species, cutoff). The cutoff is chosen per structure so the
# reference stays fast; most are larger than at least one cell height.
STRUCTURES = {
    "si_primitive": (si_primitive, ["Si"], 6.0),
    "si_primitive_rattled": (si_primitive_rattled, ["Si"], 6.0),
    "si_small_cell": (si_small_cell, ["Si"], 6.5),
    "si_conventional": (si_conventional, ["Si"], 6.0),
    "si_rattled": (si_rattled, ["Si"], 5.0),
    "si_triclinic": (si_triclinic, ["Si"], 5.0),
    "si_tiny_cell": (si_tiny_cell, ["Si"], 6.5),
    "sic_zincblende": (sic_zincblende, ["C", "Si"], 5.0),
    "sio_triclinic": (sio_triclinic, ["H", "O", "Si"], 4.5),
    "sioh_molecule": (sioh_molecule, ["H", "O", "Si"], 4.0),
    "si_cluster": (si_cluster, ["Si"], 5.0),
    "si_slab": (si_slab, ["Si"], 4.5),
    "si_wire": (si_wire, ["Si"], 5.0),
}

# Structures used for finite differences: smaller subset, all kinds of periodicity.
# (No ideal crystal and no one-atom cell here: their position derivatives vanish.)
FD_STRUCTURES = [
    "si_primitive_rattled",
    "si_small_cell",
    "si_triclinic",
    "sic_zincblende",
    "sio_triclinic",
    "sioh_molecule",
    "si_slab",
    "si_wire",
]


@pytest.fixture(params=sorted(STRUCTURES))
def case(request):
    """(name, atoms, species, cutoff) for every structure in STRUCTURES."""
    factory, species, cutoff = STRUCTURES[request.param]
    return request.param, factory(), species, cutoff


@pytest.fixture(params=FD_STRUCTURES)
def fd_case(request):
    factory, species, cutoff = STRUCTURES[request.param]
    return request.param, factory(), species, cutoff


@pytest.fixture
def si_acsf():
    return make_acsf(["Si"], 5.0)
