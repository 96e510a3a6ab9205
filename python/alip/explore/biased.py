"""Uncertainty-biased dynamics: an ASE calculator that pulls trajectories toward high
committee variance ("pure exploration"; uncertainty-driven dynamics, Kulichenko et al.,
Nat. Comput. Sci. 3, 230 (2023)).

The bias energy of a structure of N atoms with committee energies E_k (k = 1..K) is

    E_bias = A [exp(−σ_E² / (N B²)) − 1],     σ_E² = (1/K) Σ_k (E_k − Ē)²

(ddof 0, the committee's own spread): zero where the members agree, down to −A where
they disagree by much more than B √N.  Its forces and stress are exact, from the
members' forces and stresses alone (no extra pass through the networks):

    ∇_r σ_E² = −(2/K) Σ_k (E_k − Ē)(F_k − F̄)
    F_bias   = −∇_r E_bias = −(2A / (K N B²)) e Σ_k (E_k − Ē)(F_k − F̄),   e = exp(−σ_E²/(N B²))
    σ_bias   = (1/V) ∂E_bias/∂ε = −(2A / (K N B²)) e Σ_k (E_k − Ē)(σ_k − σ̄)

so the biased force points toward larger σ_E.  The dynamics use Ē + E_bias and
F̄ + F_bias; everything else in ``results`` is the inner committee's, unbiased:
``max_force_deviation`` (what the trust window judges), ``energy_std_per_atom``, and
``unbiased_energy`` / ``unbiased_forces`` (the committee mean), with ``bias_energy`` and
``bias_forces`` apart.  A in eV (the deepest the bias can go), B in eV (σ_E² / N is
compared with B²; the bias force is largest around σ_E ≈ B √N).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator as _ASECalculator
from ase.calculators.calculator import all_changes

__all__ = ["BiasedCalculator", "check_bias", "bias_terms"]


def check_bias(strength: float, width: float) -> tuple[float, float]:
    """(A, B) as floats, or ValueError naming the bad one (A >= 0 eV, B > 0 eV, both finite)."""
    strength, width = float(strength), float(width)
    if not (math.isfinite(strength) and strength >= 0):
        raise ValueError(f"bias strength A must be a finite energy >= 0 eV, got {strength!r}")
    if not (math.isfinite(width) and width > 0):
        raise ValueError(f"bias width B must be a finite energy > 0 eV, got {width!r}")
    return strength, width


def bias_terms(
    energies: np.ndarray, forces: np.ndarray, strength: float, width: float, stresses: np.ndarray | None = None
) -> tuple[float, np.ndarray, np.ndarray | None]:
    """(E_bias, F_bias (N, 3), σ_bias (6,) or None) from the members' energies (K,), forces
    (K, N, 3) and, optionally, stresses (K, 6) (see the module docstring)."""
    strength, width = check_bias(strength, width)
    E = np.asarray(energies, dtype=float)
    F = np.asarray(forces, dtype=float)
    if E.ndim != 1 or F.ndim != 3 or F.shape[0] != len(E) or F.shape[2] != 3:
        raise ValueError(f"need energies (K,) and forces (K, N, 3), got {E.shape} and {F.shape}")
    K, N = F.shape[0], F.shape[1]
    dE = E - E.mean()
    var = float(np.mean(dE**2))
    e = math.exp(-var / (N * width**2))
    coef = -2.0 * strength * e / (K * N * width**2)
    f_bias = coef * np.einsum("k,kna->na", dE, F - F.mean(axis=0))
    s_bias = None
    if stresses is not None:
        S = np.asarray(stresses, dtype=float)
        s_bias = coef * np.einsum("k,kv->v", dE, S - S.mean(axis=0))
    return strength * (e - 1.0), f_bias, s_bias


class BiasedCalculator(_ASECalculator):
    """The committee calculator ``inner`` plus the uncertainty bias (module docstring).

    ``inner``: any ASE calculator whose ``results`` hold ``committee_energies`` (K,) and
    ``committee_forces`` (K, N, 3) (and ``committee_stress`` (K, 6) for stress), as
    :class:`alip.models.calculator.Calculator` does.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, inner: Any, strength: float, width: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.strength, self.width = check_bias(strength, width)
        self.inner = inner

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: list[str] | tuple[str, ...] = ("energy",),
        system_changes: list[str] = all_changes,
    ) -> None:
        super().calculate(atoms, properties, system_changes)
        work = self.atoms.copy()
        work.calc = self.inner
        energy = work.get_potential_energy()
        forces = work.get_forces(apply_constraint=False)  # the caller's atoms apply their constraints
        inner = dict(self.inner.results)
        for key in ("committee_energies", "committee_forces"):
            if key not in inner:
                raise ValueError(f"biased dynamics need a committee calculator: its results lack {key!r}")
        stresses = inner.get("committee_stress")
        if "stress" in properties and (stresses is None or "stress" not in inner):
            raise ValueError("biased stress needs committee_stress from the inner calculator (3-D periodic cells)")
        e_bias, f_bias, s_bias = bias_terms(
            inner["committee_energies"], inner["committee_forces"], self.strength, self.width, stresses
        )
        self.results = {
            **inner,
            "energy": float(energy) + e_bias,
            "free_energy": float(energy) + e_bias,
            "forces": forces + f_bias,
            "unbiased_energy": float(energy),
            "unbiased_forces": forces,
            "bias_energy": e_bias,
            "bias_forces": f_bias,
        }
        self.results.pop("energies", None)  # per-atom energies: no per-atom split of the bias
        self.results.pop("stress", None)
        if s_bias is not None and "stress" in inner:
            self.results["stress"] = np.asarray(inner["stress"]) + s_bias
            self.results["bias_stress"] = s_bias
