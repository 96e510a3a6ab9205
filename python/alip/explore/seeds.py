"""Seed structures of an exploration: reading them, supercells, a default descriptor for
their elements, and the distorted copies that make the initial labeled set.

Seeds are any ASE-readable structures of any elements (``[explore] seeds =
"seeds.extxyz"``, a CIF, a POSCAR, ...).  :func:`default_acsf` gives the descriptor for
their elements: the default silicon set for pure Si (so Si runs are unchanged), and for
anything else the same shape — four centred G2, eight shifted G2 over the first to third
neighbour shells, η × ζ × λ G4 — with the shifted G2 centres placed from 0.8× the
shortest covalent bond among the elements out to the cutoff.  Multi-element blocks follow
the descriptor's layout (G2 per neighbour species, G4 per species pair), so a binary has
2 × 12 + 3 × 24 = 96 features per atom.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols, covalent_radii

__all__ = ["read_seeds", "make_supercell", "default_acsf", "seed_species", "initial_structures"]


def read_seeds(path: str | os.PathLike) -> list[Atoms]:
    """All structures of an ASE-readable file; clear errors for a missing, unreadable or
    empty file (any format ``ase.io.read`` knows, guessed from the name)."""
    from ase.io import read

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"seeds file not found: {path}")
    try:
        seeds = read(path, index=":")
    except Exception as exc:  # noqa: BLE001 - ASE raises many types for bad files
        if os.path.getsize(path) == 0:
            raise ValueError(f"seeds file {path} is empty: no structure to explore from") from None
        raise ValueError(f"cannot read seeds file {path}: {type(exc).__name__}: {exc}") from None
    seeds = [seeds] if isinstance(seeds, Atoms) else list(seeds)
    seeds = [a for a in seeds if len(a)]
    if not seeds:
        raise ValueError(f"seeds file {path} holds no structure with atoms")
    for i, a in enumerate(seeds):
        a.calc = None
        a.info.setdefault("explore_seed", i)
    return seeds


def make_supercell(atoms: Atoms, supercell: Sequence[int] | int) -> Atoms:
    """``atoms`` repeated ``supercell`` times (an int: along each periodic axis)."""
    reps = [int(supercell)] * 3 if np.isscalar(supercell) else [int(x) for x in supercell]
    if len(reps) != 3 or min(reps) < 1:
        raise ValueError(f"supercell must be an int >= 1 or three of them, got {supercell!r}")
    reps = [r if p else 1 for r, p in zip(reps, atoms.pbc)]
    out = atoms.repeat(reps)
    out.info = dict(atoms.info)
    return out


def seed_species(seeds: Sequence[Atoms]) -> list[int]:
    """Sorted atomic numbers present in the seeds."""
    return sorted({int(z) for a in seeds for z in a.numbers})


def default_acsf(species: Sequence[int | str], cutoff: float = 5.5) -> Any:
    """The documented default descriptor for ``species`` (module docstring)."""
    from alip.core.descriptors import ACSF

    numbers = sorted({int(z) if not isinstance(z, str) else chemical_symbols.index(z) for z in species})
    if not numbers:
        raise ValueError("no species for the descriptor")
    if numbers == [14] and cutoff == 5.5:
        return ACSF.default_si()
    shortest = 2 * min(float(covalent_radii[z]) for z in numbers)
    g2 = [(eta, 0.0) for eta in (0.0, 0.04, 0.14, 0.32)]
    g2 += [(4.0, float(rs)) for rs in np.linspace(0.8 * shortest, cutoff - 0.5, 8).round(3)]
    g4 = [(eta, zeta, lam) for eta in (0.0, 0.01, 0.03, 0.08) for zeta in (1.0, 2.0, 4.0) for lam in (1.0, -1.0)]
    return ACSF(species=numbers, cutoff=cutoff, g2=g2, g4=g4, cutoff_function="cosine")


def initial_structures(
    seeds: Sequence[Atoms],
    n: int,
    seed: int = 0,
    supercell: Sequence[int] | int = 1,
    max_strain: float = 0.03,
    rattle: float = 0.05,
) -> list[Atoms]:
    """``n`` distorted copies of the seeds (round robin) for the first labels: a random
    symmetric strain up to ``max_strain`` and Gaussian displacements of std ``rattle`` Å,
    each from its own stream ``(seed, index)``; tagged ``info["family"] = "seed_distortion"``."""
    seeds = list(seeds)
    if not seeds:
        raise ValueError("no seed structures")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    out = []
    for i in range(n):
        k = i % len(seeds)
        rng = np.random.default_rng([int(seed), 0x5EED, i])
        a = make_supercell(seeds[k], supercell)
        if a.pbc.all():
            e = rng.uniform(-max_strain, max_strain, (3, 3))
            a.set_cell(a.cell.array @ (np.eye(3) + 0.5 * (e + e.T)), scale_atoms=True)
        a.positions = a.positions + rng.normal(0.0, rattle, a.positions.shape)
        a.info.update({"family": "seed_distortion", "explore_seed": int(seeds[k].info.get("explore_seed", k))})
        out.append(a)
    return out
