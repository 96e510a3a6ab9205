"""Packing ASE structures into the flat arrays the compiled core reads."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

StructureOrList = Union[Atoms, Sequence[Atoms]]


@dataclass
class PackedBatch:
    positions: np.ndarray  # (N, 3) float64
    species: np.ndarray    # (N,) int32 indices into the species list
    offsets: np.ndarray    # (n_structures + 1,) int64
    cells: np.ndarray      # (n_structures, 3, 3) float64
    pbc: np.ndarray        # (n_structures, 3) uint8

    @property
    def n_structures(self) -> int:
        return len(self.offsets) - 1

    def arrays(self) -> tuple:
        return self.positions, self.species, self.offsets, self.cells, self.pbc

    def contiguous(self) -> "PackedBatch":
        """The same batch with C-contiguous arrays of the dtypes the core reads."""
        c = np.ascontiguousarray
        return PackedBatch(c(self.positions, dtype=np.float64), c(self.species, dtype=np.int32),
                           c(self.offsets, dtype=np.int64), c(self.cells, dtype=np.float64),
                           c(self.pbc, dtype=np.uint8))


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


def pack(structures: Sequence[Atoms], species: Sequence[int]) -> PackedBatch:
    """Concatenates structures; raises ValueError for elements not in `species`."""
    lookup = np.full(max(max(species), 118) + 1, -1, dtype=np.int32)
    lookup[np.asarray(species)] = np.arange(len(species), dtype=np.int32)
    offsets = offsets_of(structures)
    numbers = np.concatenate([a.numbers for a in structures]) if offsets[-1] else np.zeros(0, int)
    for k, a in enumerate(structures):
        if len(a) == 0:
            raise ValueError(f"structure {k} has no atoms" if len(structures) > 1 else "structure has no atoms")
    if numbers.size and (numbers.min() < 0 or numbers.max() >= len(lookup)):
        raise ValueError(f"invalid atomic number in structures (valid: 0..{len(lookup) - 1})")
    index = lookup[numbers]
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
