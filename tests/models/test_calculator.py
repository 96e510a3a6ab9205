"""ASE calculator over a committee: mean and spread, consistency with Committee.predict,
clusters, a 4096-atom cell, file loading, and NVE energy conservation."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.singlepoint import SinglePointCalculator
from ase.md.velocitydistribution import Stationary, thermalize_momenta
from ase.md.verlet import VelocityVerlet

import alip
from alip.data.oracles import make_oracle
from alip.data.structures import generate_si_pool
from alip.models.calculator import Calculator
from alip.models.training import TrainConfig, train_committee

#: NVE bound: max |E_total(t) − E_total(0)| per atom over 300 steps of 1 fs, 64 atoms started
#: at 600 K from perfect diamond (measured 0.08 meV/atom; SW itself gives 0.10 meV/atom)
NVE_MAX_DEVIATION = 0.5e-3  # eV/atom


@pytest.fixture(scope="module")
def committee():
    """A small committee trained on 40 SW-labelled near-diamond structures (<= 16 atoms),
    enough for physical MD around diamond at a few hundred K."""
    oracle = make_oracle("sw")
    pool = generate_si_pool(
        40, seed=21, families=("volume", "small_distortion"), family_kwargs={"small_distortion": {"max_atoms": 16}}
    )
    for atoms in pool:
        lab = oracle.label(atoms)
        atoms.calc = SinglePointCalculator(atoms, energy=lab.energy, forces=lab.forces, stress=lab.stress)
    cfg = TrainConfig(n_members=3, hidden=(24, 24), epochs=60, batch_size=8, seed=0)
    return train_committee(pool, alip.ACSF.default_si(), cfg).committee


def _diamond(reps: int = 1, rattle: float = 0.05, seed: int = 0) -> Atoms:
    atoms = bulk("Si", "diamond", a=5.431, cubic=True).repeat(reps)
    if rattle:
        atoms.positions += rattle * np.random.default_rng(seed).standard_normal(atoms.positions.shape)
    return atoms


def test_mean_and_spread_results(committee):
    atoms = _diamond(2, rattle=0.1)
    atoms.calc = Calculator(committee)
    energy, forces, stress = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
    r = atoms.calc.results
    K, n = committee.n_members, len(atoms)
    assert r["committee_energies"].shape == (K,) and r["committee_forces"].shape == (K, n, 3)
    assert energy == pytest.approx(r["committee_energies"].mean(), rel=1e-14)
    np.testing.assert_allclose(forces, r["committee_forces"].mean(0), atol=1e-14)
    np.testing.assert_allclose(stress, r["committee_stress"].mean(0), atol=1e-15)
    np.testing.assert_allclose(r["energies"].sum(), energy, rtol=1e-12)
    assert r["energy_std_per_atom"] == pytest.approx(np.std(r["committee_energies"]) / n, rel=1e-12)
    dev = r["committee_forces"] - forces
    eps = np.sqrt(np.mean(np.sum(dev**2, axis=2), axis=0))
    np.testing.assert_allclose(r["force_deviation"], eps, rtol=1e-12)
    assert r["max_force_deviation"] == pytest.approx(eps.max())
    assert r["energy_std_per_atom"] > 0 and eps.max() > 0
    pred = committee.predict(atoms)
    np.testing.assert_allclose(pred.energies[:, 0], r["committee_energies"], rtol=1e-14)
    np.testing.assert_allclose(pred.force_deviation(), eps, rtol=1e-12)


def test_predict_over_a_list_matches_calculator(committee):
    cluster = Atoms("Si6", positions=_diamond(1, rattle=0.05).positions[:6], pbc=False)
    structures = [_diamond(1, seed=1), cluster, _diamond(2, seed=2), _diamond(1, rattle=0.2, seed=3)]
    pred = committee.predict(structures, chunk_size=3)
    calc = Calculator(committee)
    for s, atoms in enumerate(structures):
        atoms.calc = calc
        sl = slice(pred.offsets[s], pred.offsets[s + 1])
        assert pred.energies[:, s].mean() == pytest.approx(atoms.get_potential_energy(), rel=1e-13)
        np.testing.assert_allclose(pred.forces[:, sl].mean(0), atoms.get_forces(), atol=1e-12)
        assert pred.energy_std_per_atom()[s] == pytest.approx(calc.results["energy_std_per_atom"], rel=1e-10)
        assert pred.max_force_deviation()[s] == pytest.approx(calc.results["max_force_deviation"], rel=1e-10)


def test_cluster_has_forces_but_no_stress(committee):
    cluster = Atoms(
        "Si5",
        positions=[[0, 0, 0], [1.4, 1.4, 1.3], [-1.3, -1.4, 1.4], [1.4, -1.3, -1.4], [-1.4, 1.3, -1.3]],
        pbc=False,
    )
    cluster.calc = Calculator(committee)
    forces = cluster.get_forces()
    assert np.abs(forces).max() > 1e-3
    np.testing.assert_allclose(forces.sum(0), 0.0, atol=1e-10)  # translation invariance
    with pytest.raises(PropertyNotImplementedError):
        cluster.get_stress()


def test_4096_atom_cell(committee):
    """Fused force path on a large cell: extensive energy, Newton's third law, one FD force."""
    small, big = _diamond(1, rattle=0.0), _diamond(8, rattle=0.0)
    assert len(big) == 4096
    calc = Calculator(committee)
    e_small = calc.get_potential_energy(small) / len(small)
    assert calc.get_potential_energy(big) / len(big) == pytest.approx(e_small, rel=1e-12)
    rattled = _diamond(8, rattle=0.05, seed=7)
    forces = calc.get_forces(rattled)
    np.testing.assert_allclose(forces.sum(0), 0.0, atol=1e-8)
    h, i = 1e-4, 1234
    plus, minus = rattled.copy(), rattled.copy()
    plus.positions[i, 2] += h
    minus.positions[i, 2] -= h
    fd = -(calc.get_potential_energy(plus) - calc.get_potential_energy(minus)) / (2 * h)
    assert forces[i, 2] == pytest.approx(fd, abs=1e-5)


def test_calculator_loads_from_file(committee, tmp_path):
    path = tmp_path / "committee.pt"
    committee.save(path)
    atoms = _diamond(1, seed=4)
    a = Calculator(committee).get_potential_energy(atoms)
    assert Calculator(path).get_potential_energy(atoms) == a
    ge = atoms.copy()
    ge[0].symbol = "Ge"
    with pytest.raises(ValueError):
        Calculator(committee).get_potential_energy(ge)


def test_nve_md_conserves_energy(committee):
    atoms = _diamond(2, rattle=0.0)
    atoms.calc = Calculator(committee)
    thermalize_momenta(atoms, temperature_K=600, rng=np.random.default_rng(0))
    Stationary(atoms)
    dyn = VelocityVerlet(atoms, timestep=1.0 * units.fs)
    totals, temperatures = [], []
    for _ in range(300):
        dyn.run(1)
        totals.append(atoms.get_total_energy())
        temperatures.append(atoms.get_temperature())
    totals = np.array(totals)
    assert np.abs(totals - totals[0]).max() / len(atoms) < NVE_MAX_DEVIATION
    # physical: kinetic energy flows into the lattice, ~300 K after equipartition (SW: 274 K)
    assert 200 < np.mean(temperatures[100:]) < 400
