"""Structure batches as flat arrays: :class:`Frames` (pool frames by atomic number, as read
from a pool) and :class:`PackedBatch` (species indices, the layout the compiled core reads)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

StructureOrList = Atoms | Sequence[Atoms]


@dataclass
class PackedBatch:
    positions: np.ndarray  # (N, 3) float64
    species: np.ndarray  # (N,) int32 indices into the species list
    offsets: np.ndarray  # (n_structures + 1,) int64
    cells: np.ndarray  # (n_structures, 3, 3) float64
    pbc: np.ndarray  # (n_structures, 3) uint8

    @property
    def n_structures(self) -> int:
        return len(self.offsets) - 1

    def arrays(self) -> tuple:
        return self.positions, self.species, self.offsets, self.cells, self.pbc

    def contiguous(self) -> PackedBatch:
        """The same batch with C-contiguous arrays of the dtypes the core reads."""
        c = np.ascontiguousarray
        return PackedBatch(
            c(self.positions, dtype=np.float64),
            c(self.species, dtype=np.int32),
            c(self.offsets, dtype=np.int64),
            c(self.cells, dtype=np.float64),
            c(self.pbc, dtype=np.uint8),
        )


def as_list(structures: StructureOrList) -> tuple[list[Atoms], bool]:
    """Returns (list of Atoms, whether a single Atoms was given)."""
    if isinstance(structures, Atoms):
        return [structures], True
    out = list(structures)
    for k, a in enumerate(out):
        if not isinstance(a, Atoms):
            raise TypeError(f"structure {k} is a {type(a).__name__}, expected ase.Atoms")
    if not out:
        raise ValueError("no structures given (empty list)")
    return out, False


def offsets_of(structures: Sequence[Atoms]) -> np.ndarray:
    """(n_structures + 1,) int64 atom offsets of concatenated structures."""
    return np.concatenate([[0], np.cumsum([len(a) for a in structures])]).astype(np.int64)


def species_index(species: Sequence[int], numbers: np.ndarray) -> np.ndarray:
    """The element → species-index map of alip: (N,) int32 index of each atomic number in
    ``species`` (the descriptor's or committee's element list), -1 for any other number."""
    numbers = np.asarray(numbers, dtype=np.int64)
    lookup = np.full(max(max(species), 118) + 1, -1, dtype=np.int32)
    lookup[np.asarray(species)] = np.arange(len(species), dtype=np.int32)
    inside = (numbers >= 0) & (numbers < len(lookup))
    return np.where(inside, lookup[np.clip(numbers, 0, len(lookup) - 1)], -1).astype(np.int32)


def pack(structures: Sequence[Atoms], species: Sequence[int]) -> PackedBatch:
    """Concatenates structures; raises ValueError for elements not in `species`."""
    offsets = offsets_of(structures)
    numbers = np.concatenate([a.numbers for a in structures]) if offsets[-1] else np.zeros(0, int)
    for k, a in enumerate(structures):
        if len(a) == 0:
            raise ValueError(f"structure {k} has no atoms" if len(structures) > 1 else "structure has no atoms")
    n_z = max(max(species), 118) + 1
    if numbers.size and (numbers.min() < 0 or numbers.max() >= n_z):
        raise ValueError(f"invalid atomic number in structures (valid: 0..{n_z - 1})")
    index = species_index(species, numbers)
    if (index < 0).any():
        bad = int(np.flatnonzero(index < 0)[0])
        k = int(np.searchsorted(offsets, bad, side="right") - 1)
        z = int(numbers[bad])
        names = ", ".join(chemical_symbols[s] for s in species)
        raise ValueError(
            f"element {chemical_symbols[z]} (Z={z}) of atom {bad - offsets[k]} in structure {k} "
            f"is not among the descriptor species [{names}]"
        )
    positions = np.ascontiguousarray(np.concatenate([a.positions for a in structures]), dtype=np.float64)
    cells = np.ascontiguousarray(np.stack([a.cell.array for a in structures]), dtype=np.float64)
    pbc = np.ascontiguousarray(np.stack([a.pbc for a in structures]), dtype=np.uint8)
    return PackedBatch(positions, index.astype(np.int32), offsets, cells, pbc)


@dataclass
class Frames:
    """A range of pool frames as flat arrays; unusable frames are listed in ``bad`` instead."""

    frame_ids: np.ndarray  # (S,) int64 index of each frame in the pool
    counts: np.ndarray  # (S,) int64 atoms per frame
    positions: np.ndarray  # (N, 3) float64
    numbers: np.ndarray  # (N,) int64 atomic numbers
    cells: np.ndarray  # (S, 3, 3) float64, row vectors
    pbc: np.ndarray  # (S, 3) bool
    bad: dict[int, str] = field(default_factory=dict)

    @property
    def n_structures(self) -> int:
        return len(self.counts)

    @property
    def n_atoms(self) -> int:
        return int(self.counts.sum())

    @property
    def offsets(self) -> np.ndarray:
        """(S + 1,) int64 atom offsets."""
        return np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)

    def select(self, keep: np.ndarray) -> Frames:
        """The frames where the boolean mask ``keep`` (S,) is true; ``bad`` is kept."""
        keep = np.asarray(keep, dtype=bool)
        atom_keep = np.repeat(keep, self.counts)
        return Frames(
            self.frame_ids[keep],
            self.counts[keep],
            self.positions[atom_keep],
            self.numbers[atom_keep],
            self.cells[keep],
            self.pbc[keep],
            dict(self.bad),
        )

    def to_atoms(self) -> list[Atoms]:
        """One ``ase.Atoms`` per frame (slow for many frames; for tests and small pools)."""
        off = self.offsets
        return [
            Atoms(
                numbers=self.numbers[off[k] : off[k + 1]],
                positions=self.positions[off[k] : off[k + 1]],
                cell=self.cells[k],
                pbc=self.pbc[k],
            )
            for k in range(self.n_structures)
        ]

    @classmethod
    def from_atoms(cls, atoms_list: Sequence[Atoms], frame_ids: Sequence[int] | None = None) -> Frames:
        """Pack structures (in order) into one Frames; ``frame_ids`` default to 0..S-1."""
        atoms_list = list(atoms_list)
        for k, a in enumerate(atoms_list):
            if not isinstance(a, Atoms):
                raise TypeError(f"structure {k} is a {type(a).__name__}, expected ase.Atoms")
        ids = np.arange(len(atoms_list)) if frame_ids is None else np.asarray(frame_ids, dtype=np.int64)
        if len(ids) != len(atoms_list):
            raise ValueError(f"{len(ids)} frame ids for {len(atoms_list)} structures")
        counts = np.array([len(a) for a in atoms_list], dtype=np.int64)
        cat = lambda xs, shape: np.concatenate(xs) if xs else np.zeros(shape)
        return cls(
            ids.astype(np.int64),
            counts,
            cat([a.positions for a in atoms_list], (0, 3)).astype(np.float64),
            cat([a.numbers for a in atoms_list], (0,)).astype(np.int64),
            np.array([a.cell.array for a in atoms_list], dtype=np.float64).reshape(-1, 3, 3),
            np.array([a.pbc for a in atoms_list], dtype=bool).reshape(-1, 3),
        )
