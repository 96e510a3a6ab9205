"""Equation of state: the fit against analytic Birch–Murnaghan data and SW's known values,
and a trained committee reproducing the SW E–V curve of diamond Si."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from ase.units import GPa

import alip
from alip.data.oracles import make_oracle
from alip.data.structures import generate_si_pool
from alip.models.calculator import Calculator
from alip.models.eos import compare_eos, ev_curve, fit_eos
from alip.models.training import TrainConfig, train_committee

SW_EPSILON = 2.1683  # eV; SW diamond Si has E0 = -2 epsilon per atom at a0 = 5.431 Å


def _birch_murnaghan(v, v0, e0, b0, bp):
    x = (v0 / v) ** (2.0 / 3.0) - 1.0
    return e0 + 9.0 * v0 * b0 / 16.0 * (x**3 * bp + x**2 * (6.0 - 4.0 * (v0 / v) ** (2.0 / 3.0)))


def test_fit_recovers_analytic_birch_murnaghan():
    v = np.linspace(17.0, 23.5, 13)
    e = _birch_murnaghan(v, 20.1, -4.25, 98.0 * GPa, 4.3)
    fit = fit_eos(v, e)
    assert fit["v0"] == pytest.approx(20.1, rel=1e-6)
    assert fit["e0"] == pytest.approx(-4.25, abs=1e-8)
    assert fit["B0"] == pytest.approx(98.0, rel=1e-5)
    assert fit["a0"] == pytest.approx((8 * 20.1) ** (1 / 3), rel=1e-6)


def test_fit_rejects_bad_input():
    v = np.linspace(18.0, 22.0, 7)
    with pytest.raises(ValueError):
        fit_eos(v[:4], v[:4])
    with pytest.raises(ValueError):
        fit_eos(v, np.where(v > 20, np.nan, v))
    with pytest.raises(ValueError, match="outside"):
        fit_eos(v, _birch_murnaghan(v, 25.0, -4.0, 90 * GPa, 4.0))  # minimum beyond the samples


def test_sw_oracle_eos_matches_known_values():
    calc = make_oracle("sw").make_calculator(bulk("Si"))
    v, e = ev_curve(calc, a0_guess=5.40, n=11, rel_range=0.04)
    fit = fit_eos(v, e)
    assert fit["a0"] == pytest.approx(5.431, abs=1e-3)
    assert fit["e0"] == pytest.approx(-2 * SW_EPSILON, abs=1e-4)

    def energy(a: float) -> float:
        atoms = bulk("Si", "diamond", a=a)
        atoms.calc = calc
        return atoms.get_potential_energy() / len(atoms)

    # bulk modulus from the curvature at a0, B = V d²E/dV² with V = a³/8 (independent of the fit)
    a0, h = 5.431, 1e-3 * 5.431
    ep, e0, em = energy(a0 + h), energy(a0), energy(a0 - h)
    d2E_da2 = (ep - 2 * e0 + em) / h**2
    b_local = d2E_da2 / (9 * a0 / 8) / GPa  # dE/da = 0 at a0, dV/da = 3a²/8
    assert b_local == pytest.approx(101.4, abs=0.3)
    assert fit["B0"] == pytest.approx(b_local, rel=0.01)


@pytest.mark.slow
def test_committee_reproduces_sw_eos():
    """300 SW-labelled structures (four families, <= 16 atoms), a committee of 3:
    a0 within 0.2 %, B0 within 5 %, energy RMSE along the curve within 3 meV/atom."""
    oracle = make_oracle("sw")
    pool = generate_si_pool(
        300,
        seed=0,
        family_kwargs={
            "small_distortion": {"max_atoms": 16},
            "large_distortion": {"max_atoms": 16},
            "random": {"n_atoms": (8, 16)},
        },
    )
    for atoms in pool:
        lab = oracle.label(atoms)
        atoms.calc = SinglePointCalculator(atoms, energy=lab.energy, forces=lab.forces, stress=lab.stress)
    cfg = TrainConfig(n_members=3, epochs=200, lbfgs_steps=100, energy_weighting=0.1, seed=0)
    committee = train_committee(pool, alip.ACSF.default_si(), cfg).committee
    r = compare_eos(Calculator(committee), oracle.make_calculator(pool[0]), a0_guess=5.431, n=11, rel_range=0.04)
    print(
        f"\nmodel  a0={r['model']['a0']:.4f} Å B0={r['model']['B0']:.1f} GPa E0={r['model']['e0']:.4f} eV\n"
        f"oracle a0={r['oracle']['a0']:.4f} Å B0={r['oracle']['B0']:.1f} GPa E0={r['oracle']['e0']:.4f} eV\n"
        f"RMSE {r['rmse_mev']:.2f} meV/atom"
    )
    assert r["a0_rel_err"] < 0.002
    assert r["B0_rel_err"] < 0.05
    assert r["rmse_mev"] < 3.0
    assert np.allclose(r["volumes"], ev_curve(oracle.make_calculator(pool[0]), 5.431, 11, 0.04)[0])
