"""The structure batch of alip: :class:`Batch`, concatenated structures as flat NumPy
arrays (what the pool readers return and the compiled core reads), and its device view
:class:`BatchTensors` (the same arrays as torch tensors on a device, from :meth:`Batch.to`).

>>> batch = Batch.from_atoms(structures)                  # or a pool reader's chunk
>>> arrays = batch.core_arrays(acsf.species)              # the compiled core's arguments
>>> tensors = batch.to("cuda", acsf.species)              # for alip.core.device

A batch holds atomic numbers; the species indices the core and the networks read are
computed against an element list (the descriptor's) by :func:`species_index`, the one
element -> index map. This module does not import torch (featurization runs without it).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["Batch", "BatchTensors", "CoreArrays", "StructureOrList", "as_list", "offsets_of", "species_index"]

StructureOrList = Atoms | Sequence[Atoms]
CoreArrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
"""(positions (N, 3) float64, species indices (N,) int32, offsets (S + 1,) int64,
cells (S, 3, 3) float64, pbc (S, 3) uint8), C-contiguous: the compiled core's arguments."""


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


@dataclass
class Batch:
    """Concatenated structures as flat arrays; structures that cannot be used (a pool's
    unreadable or rejected frames) are not in the arrays but listed in ``bad``."""

    frame_ids: np.ndarray  # (S,) int64 index of each structure in its source (a pool; 0..S-1 by default)
    counts: np.ndarray  # (S,) int64 atoms per structure
    positions: np.ndarray  # (N, 3) float64
    numbers: np.ndarray  # (N,) int64 atomic numbers
    cells: np.ndarray  # (S, 3, 3) float64, row vectors
    pbc: np.ndarray  # (S, 3) bool
    bad: dict[int, str] = field(default_factory=dict)  # frame id -> why it is not in the arrays

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

    def select(self, keep: np.ndarray) -> Batch:
        """The structures where the boolean mask ``keep`` (S,) is true; ``bad`` is kept."""
        keep = np.asarray(keep, dtype=bool)
        atom_keep = np.repeat(keep, self.counts)
        return Batch(
            self.frame_ids[keep],
            self.counts[keep],
            self.positions[atom_keep],
            self.numbers[atom_keep],
            self.cells[keep],
            self.pbc[keep],
            dict(self.bad),
        )

    def to_atoms(self) -> list[Atoms]:
        """One ``ase.Atoms`` per structure (slow for many; for tests and small pools)."""
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
    def from_atoms(cls, structures: StructureOrList, frame_ids: Sequence[int] | None = None) -> Batch:
        """Concatenate structures (in order; one Atoms or a list); ``frame_ids`` default to 0..S-1."""
        atoms_list = [structures] if isinstance(structures, Atoms) else list(structures)
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

    def species_indices(self, species: Sequence[int]) -> np.ndarray:
        """(N,) int32 index of each atom's element in ``species``; ValueError naming the
        structure and atom when an element is not in it, or when a structure has no atoms."""
        if self.n_structures == 0:
            raise ValueError("no structures given (empty list)")
        for k in np.flatnonzero(self.counts == 0)[:1]:
            raise ValueError(f"structure {k} has no atoms" if self.n_structures > 1 else "structure has no atoms")
        numbers = np.asarray(self.numbers, dtype=np.int64)
        n_z = max(max(species), 118) + 1
        if numbers.size and (numbers.min() < 0 or numbers.max() >= n_z):
            raise ValueError(f"invalid atomic number in structures (valid: 0..{n_z - 1})")
        index = species_index(species, numbers)
        if (index < 0).any():
            offsets = self.offsets
            bad = int(np.flatnonzero(index < 0)[0])
            k = int(np.searchsorted(offsets, bad, side="right") - 1)
            z = int(numbers[bad])
            names = ", ".join(chemical_symbols[s] for s in species)
            raise ValueError(
                f"element {chemical_symbols[z]} (Z={z}) of atom {bad - offsets[k]} in structure {k} "
                f"is not among the descriptor species [{names}]"
            )
        return index

    def core_arrays(self, species: Sequence[int], index: np.ndarray | None = None) -> CoreArrays:
        """The arrays the compiled core reads, with species indices into ``species``
        (``index``: already computed ones; otherwise :meth:`species_indices` checks them)."""
        index = self.species_indices(species) if index is None else index
        c = np.ascontiguousarray
        return (
            c(self.positions, dtype=np.float64),
            c(index, dtype=np.int32),
            self.offsets,
            c(self.cells, dtype=np.float64),
            c(self.pbc, dtype=np.uint8),
        )

    def to(self, device: str | torch.device, species: Sequence[int], index: np.ndarray | None = None) -> BatchTensors:
        """The batch as torch tensors on ``device`` (on the CPU they share the arrays), with
        species indices into ``species`` (``index`` as in :meth:`core_arrays`)."""
        import torch  # lazily: this module is on the torch-free featurization path

        positions, index, offsets, cells, pbc = self.core_arrays(species, index)
        dev = torch.device(device)
        return BatchTensors(
            positions=torch.from_numpy(positions).to(dev),
            species=torch.from_numpy(index).to(dev),
            offsets=torch.from_numpy(offsets).to(dev),
            cells=torch.from_numpy(cells).to(dev),
            pbc=torch.from_numpy(pbc.astype(bool)).to(dev),
        )


@dataclass
class BatchTensors:
    """A :class:`Batch` on a torch device (made by :meth:`Batch.to`), in the layout of the
    compiled core and its CUDA kernels: positions (N, 3) float64, species (N,) int32
    indices into the descriptor's element list, offsets (S + 1,) int64, cells (S, 3, 3)
    float64, pbc (S, 3) bool."""

    positions: torch.Tensor
    species: torch.Tensor
    offsets: torch.Tensor
    cells: torch.Tensor
    pbc: torch.Tensor

    def __iter__(self) -> Iterator[torch.Tensor]:
        return iter((self.positions, self.species, self.offsets, self.cells, self.pbc))

    @property
    def n_atoms(self) -> int:
        return int(self.positions.shape[0])

    @property
    def n_structures(self) -> int:
        return int(self.offsets.shape[0]) - 1

    @property
    def device(self) -> torch.device:
        return self.positions.device

    def to(self, device: str | torch.device, non_blocking: bool = False) -> BatchTensors:
        return BatchTensors(*(t.to(device, non_blocking=non_blocking) for t in self))

    def structure_index(self) -> torch.Tensor:
        """(N,) structure of each atom (on the batch's device)."""
        import torch

        counts = self.offsets[1:] - self.offsets[:-1]
        return torch.repeat_interleave(torch.arange(self.n_structures, device=self.device), counts)

    def check(self) -> None:
        """Shape checks shared by the CPU and GPU paths (values are checked by the core)."""
        n, s = self.n_atoms, self.n_structures
        shapes = {
            "positions": (tuple(self.positions.shape), (n, 3)),
            "species": (tuple(self.species.shape), (n,)),
            "cells": (tuple(self.cells.shape), (s, 3, 3)),
            "pbc": (tuple(self.pbc.shape), (s, 3)),
        }
        if self.offsets.ndim != 1 or s < 1:
            raise ValueError("offsets must be a 1-D tensor with at least two entries")
        for name, (got, want) in shapes.items():
            if got != want:
                raise ValueError(f"{name} must have shape {want}, got {got}")
