"""Labelled training data as tensors: descriptors, labels and what forces need.

Two ways to get forces during training (``TrainConfig.forces``):

* ``"sparse"``: the core's sparse per-pair descriptor gradients are computed once per
  dataset and kept (3·F numbers per pair: 15 kB per atom of diamond Si with the default
  descriptor in float32); each step contracts them with dE/dG. Fastest on the CPU.
* ``"fused"``: only the geometry is kept; each step builds the batch's neighbor list and
  gets forces and virials from the fused vector–Jacobian product (its backward is the
  Jacobian–vector product), so no Jacobian is ever stored. The GPU default.

Both run on any device: tensors live on ``LabeledSet.values.device``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import PropertyNotImplementedError
from ase.stress import voigt_6_to_full_3x3_stress

from alip.core.batch import Batch, BatchTensors
from alip.core.batch import species_index as species_of
from alip.core.descriptors import ACSF
from alip.core.device import DeviceLike, Prepared, select_device
from alip.core.jacobian import padded_gradients
from alip.models.committee import Committee

FORCE_MODES = ("sparse", "fused")


def read_labels(atoms: Atoms) -> tuple[float, np.ndarray, np.ndarray | None]:
    """(energy, forces, stress or None) from the attached calculator or from info/arrays."""
    if atoms.calc is not None:
        energy = float(atoms.get_potential_energy())
        forces = np.asarray(atoms.get_forces(), dtype=np.float64)
        stress = None
        if atoms.pbc.all():
            try:
                stress = np.asarray(atoms.get_stress(voigt=False), dtype=np.float64)
            except (PropertyNotImplementedError, NotImplementedError):
                stress = None
        return energy, forces, stress
    try:
        energy = float(atoms.info["energy"])
        forces = np.asarray(atoms.arrays["forces"], dtype=np.float64)
    except KeyError as exc:
        raise ValueError(f"structure has no calculator and no {exc.args[0]!r} label") from None
    stress = atoms.info.get("stress")
    if stress is not None:
        stress = np.asarray(stress, dtype=np.float64)
        if stress.shape == (6,):
            stress = voigt_6_to_full_3x3_stress(stress)
    return energy, forces, stress


@dataclass
class LabeledSet:
    """Descriptors, labels and (sparse gradients or geometry) of a list of structures.

    Sparse mode fills ``grad_values/centers/neighbors`` (and ``strain_grad`` when a stress
    label exists), or, after :meth:`padded`, ``grad_padded/targets`` instead (a batch of it on
    the CPU shares them and adds ``grad_atoms``); fused mode fills ``geometry`` (an
    :class:`alip.core.batch.BatchTensors`) and ``acsf``.
    """

    values: torch.Tensor  # (N, F)
    species_index: torch.Tensor  # (N,)
    offsets: np.ndarray  # (S + 1,)
    row_offsets: np.ndarray | None  # (S + 1,) gradient-row offsets per structure (sparse)
    grad_values: torch.Tensor | None  # (R, 3, F) (sparse)
    grad_centers: torch.Tensor | None  # (R,) (sparse)
    grad_neighbors: torch.Tensor | None  # (R,) (sparse)
    strain_grad: torch.Tensor | None  # (N, 3, 3, F) when any structure has a stress label (sparse; see grad_atoms)
    energies: torch.Tensor  # (S,)
    forces: torch.Tensor  # (N, 3)
    virials: torch.Tensor  # (S, 3, 3), W = −σV (zeros where no stress)
    has_stress: torch.Tensor  # (S,) bool
    geometry: BatchTensors | None = None  # fused
    acsf: ACSF = None  # the ACSF spec (fused)
    grad_padded: torch.Tensor | None = None  # (N, M, 3, F) gradient rows padded per center (padded sparse)
    grad_targets: torch.Tensor | None = None  # (N, M) neighbor of each padded row, N: padding
    # (n,) row of each atom in grad_padded / grad_targets (and strain_grad) when those are a padded
    # parent set's, shared, not gathered (CPU batches: alip.core.jacobian.shared_padded_forces reads
    # them in place)
    grad_atoms: torch.Tensor | None = None

    @property
    def n_structures(self) -> int:
        return len(self.offsets) - 1

    @property
    def device(self) -> torch.device:
        return self.values.device

    @property
    def fused(self) -> bool:
        return self.geometry is not None

    def padded_ratio(self) -> float:
        """Rows of the padded layout over sparse rows (sparse mode)."""
        if self.grad_centers is None:
            raise ValueError("padded_ratio needs the sparse gradient rows")
        R = len(self.grad_centers)
        counts = torch.bincount(self.grad_centers, minlength=len(self.values))
        return float(len(self.values) * int(counts.max()) / R) if R else 1.0

    def padded(self) -> LabeledSet:
        """A copy whose gradient rows are stored padded per center atom (sparse rows
        dropped), so that each training step skips the padding and a batch reads its rows in
        place (CPU) or gathers them."""
        if self.fused or self.grad_padded is not None:
            return self
        padded, targets = padded_gradients(self.grad_values, self.grad_centers, self.grad_neighbors, len(self.values))
        kw = {f.name: getattr(self, f.name) for f in fields(self)}
        kw.update(row_offsets=None, grad_values=None, grad_centers=None, grad_neighbors=None)
        kw.update(grad_padded=padded, grad_targets=targets)
        return LabeledSet(**kw)

    def gathered(self) -> LabeledSet:
        """This batch with its own copy of its padded rows and strain rows (``grad_atoms``
        None), trimmed to its most rows of a center and its targets in its own numbering: the
        input of :func:`alip.core.jacobian.padded_forces` (the GPU's path, and the CPU's reference)."""
        if self.grad_atoms is None:
            return self
        atoms, N, n = self.grad_atoms, len(self.grad_padded), len(self.grad_atoms)
        targets = self.grad_targets.index_select(0, atoms)
        pad = targets == N
        M = int((~pad).sum(1).max()) if n else 0  # the batch's most rows of a center
        # a row's atom is in its center's structure, whose atoms are consecutive in both numberings
        local = targets[:, :M] - (atoms - torch.arange(n, device=atoms.device))[:, None]
        return replace(
            self,
            grad_padded=self.grad_padded[:, :M].index_select(0, atoms),
            grad_targets=local.masked_fill_(pad[:, :M], n),
            grad_atoms=None,
            strain_grad=None if self.strain_grad is None else self.strain_grad.index_select(0, atoms),
        )

    def n_atoms(self) -> torch.Tensor:
        return torch.from_numpy(np.diff(self.offsets)).to(device=self.device, dtype=self.values.dtype)

    def structure_index(self) -> torch.Tensor:
        """(N,) structure of each atom, on the data's device."""
        return torch.from_numpy(np.repeat(np.arange(self.n_structures), np.diff(self.offsets))).to(self.device)

    def to(self, device: DeviceLike | None = None, dtype: torch.dtype | None = None) -> LabeledSet:
        """A copy on ``device`` with floating tensors cast to ``dtype`` (geometry stays float64)."""

        def move(x: Any) -> Any:
            if not isinstance(x, torch.Tensor):
                return x
            cast = dtype if dtype is not None and x.is_floating_point() else None
            return x.to(device=device, dtype=cast)

        kw = {f.name: move(getattr(self, f.name)) for f in fields(self)}
        if self.geometry is not None and device is not None:
            kw["geometry"] = self.geometry.to(device)
        return LabeledSet(**kw)

    def chunks(self, size: int) -> list[tuple[slice, LabeledSet]]:
        """The structures in consecutive blocks of ``size`` as (slice, :meth:`batch`), built on the
        first call for a size and kept: full-batch passes (validation every epoch, L-BFGS) then
        gather each block once instead of every pass, for one more copy of the set's arrays (on
        the CPU without the padded Jacobian, which the blocks share)."""
        cache = self.__dict__.setdefault("_chunks", {})
        if size not in cache:
            S = self.n_structures
            cache[size] = [
                (slice(a, min(S, a + size)), self.batch(np.arange(a, min(S, a + size)))) for a in range(0, S, size)
            ]
        return cache[size]

    def batch(self, idx: np.ndarray) -> LabeledSet:
        """The sub-set of structures ``idx`` with local atom indices."""
        idx = np.asarray(idx, dtype=np.int64)
        dev = self.device
        o = self.offsets
        na = o[idx + 1] - o[idx]
        new_off = np.concatenate([[0], np.cumsum(na)])
        atom_idx = torch.from_numpy(np.repeat(o[idx] - new_off[:-1], na) + np.arange(new_off[-1])).to(dev)
        sidx = torch.from_numpy(idx).to(dev)
        take = lambda x, i: None if x is None else x.index_select(0, i)  # noqa: E731
        kw = dict(
            values=take(self.values, atom_idx),
            species_index=take(self.species_index, atom_idx),
            offsets=new_off,
            row_offsets=None,
            grad_values=None,
            grad_centers=None,
            grad_neighbors=None,
            # a padded set's batches share its strain rows as they share its Jacobian (grad_atoms)
            strain_grad=self.strain_grad if self.grad_padded is not None else take(self.strain_grad, atom_idx),
            energies=take(self.energies, sidx),
            forces=take(self.forces, atom_idx),
            virials=take(self.virials, sidx),
            has_stress=take(self.has_stress, sidx),
            acsf=self.acsf,
        )
        if self.grad_padded is not None:  # the rows shared; gathered where the compiled contraction is not
            rows = atom_idx if self.grad_atoms is None else self.grad_atoms.index_select(0, atom_idx)
            kw.update(grad_padded=self.grad_padded, grad_targets=self.grad_targets, grad_atoms=rows)
            shared = LabeledSet(**kw)
            return shared if self.grad_padded.device.type == "cpu" else shared.gathered()
        if self.fused:
            g = self.geometry
            kw["geometry"] = type(g)(
                positions=take(g.positions, atom_idx),
                species=take(g.species, atom_idx),
                offsets=torch.from_numpy(new_off).to(g.offsets.device),
                cells=take(g.cells, sidx),
                pbc=take(g.pbc, sidx),
            )
            return LabeledSet(**kw)
        ro = self.row_offsets
        nr = ro[idx + 1] - ro[idx]
        new_roff = np.concatenate([[0], np.cumsum(nr)])
        row_idx = torch.from_numpy(np.repeat(ro[idx] - new_roff[:-1], nr) + np.arange(new_roff[-1])).to(dev)
        shift = torch.from_numpy(np.repeat(o[idx] - new_off[:-1], nr)).to(dev)
        kw.update(
            row_offsets=new_roff,
            grad_values=take(self.grad_values, row_idx),
            grad_centers=take(self.grad_centers, row_idx) - shift,
            grad_neighbors=take(self.grad_neighbors, row_idx) - shift,
        )
        return LabeledSet(**kw)


def featurize(
    committee_or_acsf: Committee | ACSF,
    atoms_list: Sequence[Atoms],
    species_index: np.ndarray | None = None,
    dtype: torch.dtype = torch.float64,
    forces: str = "sparse",
    device: DeviceLike = "cpu",
) -> LabeledSet:
    """Descriptors and labels of ``atoms_list`` on ``device``: with sparse gradients (one core
    call, on the CPU) or, ``forces="fused"``, with the geometry (values computed on ``device``)."""
    if forces not in FORCE_MODES:
        raise ValueError(f"forces must be one of {FORCE_MODES}, got {forces!r}")
    acsf = committee_or_acsf.acsf if isinstance(committee_or_acsf, Committee) else committee_or_acsf
    atoms_list = list(atoms_list)
    if not atoms_list:
        raise ValueError("no structures to featurize")
    labels = [read_labels(a) for a in atoms_list]
    numbers = np.concatenate([a.numbers for a in atoms_list])
    if species_index is None:
        species_index = species_of(acsf.species, numbers).astype(np.int64)
        if (species_index < 0).any():
            unknown = sorted(set(numbers[species_index < 0].tolist()))
            raise ValueError(f"elements {unknown} are not in the descriptor species {list(acsf.species)}")
    has_stress = np.array([s is not None for _, _, s in labels])
    virials = np.zeros((len(atoms_list), 3, 3))
    for s, (a, (_, _, stress)) in enumerate(zip(atoms_list, labels)):
        if stress is not None:
            virials[s] = -stress * a.get_volume()
    t = lambda x: torch.as_tensor(np.asarray(x), dtype=dtype)  # noqa: E731
    common = dict(
        species_index=torch.as_tensor(species_index, dtype=torch.int64),
        energies=t([e for e, _, _ in labels]),
        forces=t(np.concatenate([f for _, f, _ in labels])),
        virials=t(virials),
        has_stress=torch.as_tensor(has_stress),
    )
    if forces == "fused":
        dev = select_device(device=device)
        geometry = Batch.from_atoms(atoms_list).to(dev, acsf.species)
        values = Prepared(acsf, geometry, dev).values(torch.float64).to(dtype)
        offsets = np.concatenate([[0], np.cumsum([len(a) for a in atoms_list])]).astype(np.int64)
        return LabeledSet(
            values=values,
            offsets=offsets,
            row_offsets=None,
            grad_values=None,
            grad_centers=None,
            grad_neighbors=None,
            strain_grad=None,
            geometry=geometry,
            acsf=acsf,
            **common,
        ).to(dev)
    d = acsf.compute(atoms_list, gradients=True)
    offsets = np.asarray(d.offsets, dtype=np.int64)
    centers = np.asarray(d.grad_centers, dtype=np.int64)
    if np.any(np.diff(centers) < 0):
        raise ValueError("gradient rows are not grouped by center")
    return LabeledSet(
        values=t(d.values),
        offsets=offsets,
        row_offsets=np.searchsorted(centers, offsets).astype(np.int64),
        grad_values=t(d.grad_values),
        grad_centers=torch.as_tensor(centers),
        grad_neighbors=torch.as_tensor(np.asarray(d.grad_neighbors, dtype=np.int64)),
        strain_grad=t(d.strain_grad) if has_stress.any() else None,
        **common,
    ).to(device)
