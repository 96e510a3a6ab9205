"""ASE calculator over a trained committee: mean prediction plus committee spread.

Descriptor values are computed once per call; dE_k/dG of all K members comes from
one backward pass; the forces and virials of all members come from one fused
vector–Jacobian product (:meth:`alip.Committee.predict_batch`), so no descriptor
Jacobian is stored and large cells (thousands of atoms) stay within a few MB per
member. ``Calculator(committee, device="cuda")`` runs descriptors, networks and forces
on the GPU.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator as _ASECalculator
from ase.calculators.calculator import all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from alip.core.device import DeviceLike, select_device
from alip.models.committee import Committee


class Calculator(_ASECalculator):
    """Committee-mean energy, forces and stress; the spread goes to ``results``.

    Extra ``results`` keys: ``energy_std_per_atom`` (std over members, ddof=0, of the
    energy divided by the atom count, eV/atom), ``force_deviation`` (N,) per-atom
    ε_F,i = sqrt(⟨|F_ik − ⟨F_i⟩|²⟩_k) in eV/Å, ``max_force_deviation``,
    ``committee_energies`` (K,), ``committee_forces`` (K, N, 3) and, for periodic
    cells, ``committee_stress`` (K, 6).  Stress is only available when all three
    directions are periodic.
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]

    def __init__(self, committee: Committee | str | os.PathLike, device: DeviceLike = "cpu", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.committee = committee if isinstance(committee, Committee) else Committee.load(committee)
        if str(device) != "cpu":
            device = select_device(device=device)  # raises now if there is no usable GPU
        self.device = device

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: list[str] | tuple[str, ...] = ("energy",),
        system_changes: list[str] = all_changes,
    ) -> None:
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        c = self.committee
        n = len(atoms)
        pred, _ = c.predict_batch([atoms], device=self.device)
        E, forces, virials = pred.energies[:, 0], pred.forces, pred.virials[:, 0]
        mean_f = forces.mean(axis=0)
        eps_f = pred.force_deviation()
        self.results = {
            "energy": float(E.mean()),
            "free_energy": float(E.mean()),
            "energies": pred.atomic_energies.mean(axis=0),
            "forces": mean_f,
            "energy_std_per_atom": float(E.std() / n),
            "force_deviation": eps_f,
            "max_force_deviation": float(eps_f.max()),
            "committee_energies": E,
            "committee_forces": forces,
        }
        if atoms.pbc.all():
            stress = np.array([full_3x3_to_voigt_6_stress(-w / atoms.get_volume()) for w in virials])
            self.results["stress"] = stress.mean(axis=0)
            self.results["committee_stress"] = stress
