"""Energy–volume curve of diamond Si and its Birch–Murnaghan fit (ASE EquationOfState)."""

from __future__ import annotations

from typing import Any

import numpy as np
from ase.build import bulk
from ase.calculators.calculator import BaseCalculator
from ase.eos import EquationOfState
from ase.units import GPa

#: atoms in the conventional cubic cell of diamond (a0 = (8 v0)^(1/3))
DIAMOND_ATOMS_PER_CUBIC_CELL = 8


def fit_eos(
    volumes: np.ndarray,
    energies: np.ndarray,
    eos: str = "birchmurnaghan",
    atoms_per_cubic_cell: int = DIAMOND_ATOMS_PER_CUBIC_CELL,
) -> dict[str, float]:
    """Fit E(V) per atom; returns v0 (Å³/atom), e0 (eV/atom), B0 (GPa) and the cubic a0 (Å)."""
    volumes = np.asarray(volumes, dtype=np.float64)
    energies = np.asarray(energies, dtype=np.float64)
    if volumes.shape != energies.shape or volumes.ndim != 1 or len(volumes) < 5:
        raise ValueError("need at least 5 (volume, energy) pairs of equal length")
    if not (np.all(np.isfinite(volumes)) and np.all(np.isfinite(energies))) or (volumes <= 0).any():
        raise ValueError("volumes must be positive and finite, energies finite")
    v0, e0, B = EquationOfState(volumes, energies, eos=eos).fit(warn=False)
    if not (volumes.min() <= v0 <= volumes.max()):
        raise ValueError(
            f"fitted minimum v0={v0:.3f} lies outside the sampled volumes [{volumes.min():.3f}, {volumes.max():.3f}]"
        )
    return {
        "v0": float(v0),
        "e0": float(e0),
        "B0": float(B / GPa),
        "a0": float((atoms_per_cubic_cell * v0) ** (1.0 / 3.0)),
    }


def ev_curve(
    calculator: BaseCalculator, a0_guess: float = 5.431, n: int = 11, rel_range: float = 0.04, symbol: str = "Si"
) -> tuple[np.ndarray, np.ndarray]:
    """Volumes (Å³/atom) and energies (eV/atom) of diamond with a in a0_guess·[1 − r, 1 + r].

    ``calculator`` is any ASE calculator (a trained committee's or an oracle); the
    2-atom primitive cell is used.
    """
    if n < 5 or not 0 < rel_range < 0.5:
        raise ValueError("need n >= 5 points and 0 < rel_range < 0.5")
    volumes, energies = [], []
    for a in a0_guess * np.linspace(1 - rel_range, 1 + rel_range, n):
        atoms = bulk(symbol, "diamond", a=float(a))
        atoms.calc = calculator
        energies.append(atoms.get_potential_energy() / len(atoms))
        volumes.append(atoms.get_volume() / len(atoms))
    return np.array(volumes), np.array(energies)


def compare_eos(
    model: BaseCalculator, oracle: BaseCalculator, a0_guess: float = 5.431, n: int = 11, rel_range: float = 0.04
) -> dict[str, Any]:
    """E–V of model and oracle over the same volumes: both fits, relative errors, energy RMSE.

    Returns ``model``/``oracle`` fit dicts, ``volumes``, ``e_model``/``e_oracle`` (eV/atom),
    ``rmse_mev`` (meV/atom along the curve), ``a0_rel_err``, ``B0_rel_err`` and ``e0_err_mev``.
    """
    v, e_model = ev_curve(model, a0_guess, n, rel_range)
    v_o, e_oracle = ev_curve(oracle, a0_guess, n, rel_range)
    fm, fo = fit_eos(v, e_model), fit_eos(v_o, e_oracle)
    return {
        "model": fm,
        "oracle": fo,
        "volumes": v,
        "e_model": e_model,
        "e_oracle": e_oracle,
        "rmse_mev": float(1e3 * np.sqrt(np.mean((e_model - e_oracle) ** 2))),
        "a0_rel_err": abs(fm["a0"] - fo["a0"]) / fo["a0"],
        "B0_rel_err": abs(fm["B0"] - fo["B0"]) / fo["B0"],
        "e0_err_mev": 1e3 * abs(fm["e0"] - fo["e0"]),
    }
