"""Uncertainty-biased dynamics (alip.explore.biased): the bias forces and stress are the
exact derivatives of the bias energy; a biased trajectory reaches a larger committee
spread than the unbiased one from the same seed; bad values are refused."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.calculator import Calculator, all_changes
from explore_fixtures import tiny_committee

from alip.config import Config, ConfigError
from alip.explore.biased import BiasedCalculator, bias_terms
from alip.explore.trajectories import TrajectoryTask, run_trajectory


class QuadraticCommittee(Calculator):
    """Stillinger–Weber plus member k's term c_k Σ_i |r_i − r0_i|² (c = −c, 0, +c): the mean is
    SW, the energy spread grows with the squared displacement from ``reference`` and the
    force deviation is 2 std(c) |r_i − r0_i|, so a known function of the geometry."""

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, reference: np.ndarray, c: float = 1.0) -> None:
        super().__init__()
        from alip.data.oracles import make_oracle

        self.reference, self.c = np.array(reference), np.array([-c, 0.0, c])
        self.sw = make_oracle("sw").make_calculator(None)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        work = self.atoms.copy()
        work.calc = self.sw
        e, f = work.get_potential_energy(), work.get_forces()
        d = self.atoms.positions - self.reference
        E = e + self.c * float((d**2).sum())
        F = f[None] - 2.0 * self.c[:, None, None] * d[None]
        dev = np.sqrt(((F - F.mean(0)) ** 2).sum(-1).mean(0))
        self.results = {
            "energy": float(E.mean()),
            "free_energy": float(E.mean()),
            "forces": F.mean(0),
            "committee_energies": E,
            "committee_forces": F,
            "force_deviation": dev,
            "max_force_deviation": float(dev.max()),
            "energy_std_per_atom": float(E.std() / len(self.atoms)),
        }


def si8(rattle: float = 0.0, seed: int = 0):
    atoms = bulk("Si", "diamond", a=5.431, cubic=True)
    if rattle:
        atoms.rattle(rattle, seed=seed)
    return atoms


@pytest.fixture(scope="module")
def committee_path(tmp_path_factory):
    return tiny_committee(tmp_path_factory.mktemp("committee") / "c.pt")


def _bias_energy(calc, atoms) -> float:
    a = atoms.copy()
    a.calc = calc
    a.get_potential_energy()
    return calc.results["bias_energy"]


@pytest.mark.parametrize("width", [0.02, 0.2])
def test_bias_forces_are_minus_the_gradient_of_the_bias_energy(committee_path, width):
    from alip.models.calculator import Calculator as CommitteeCalculator

    atoms = si8(rattle=0.15, seed=3)
    calc = BiasedCalculator(CommitteeCalculator(committee_path), strength=1.5, width=width)
    atoms.calc = calc
    atoms.get_forces()
    f_bias, e_bias = calc.results["bias_forces"].copy(), calc.results["bias_energy"]
    assert e_bias < 0 and np.abs(f_bias).max() > 1e-3  # the bias is not trivially zero here
    # the dynamics get the committee mean plus the bias
    np.testing.assert_allclose(atoms.get_forces(), calc.results["unbiased_forces"] + f_bias)
    h = 1e-5
    for i, a in [(0, 0), (3, 1), (5, 2), (7, 0)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[i, a] += h
        minus.positions[i, a] -= h
        fd = -(_bias_energy(calc, plus) - _bias_energy(calc, minus)) / (2 * h)
        assert fd == pytest.approx(f_bias[i, a], rel=1e-5, abs=1e-8)


def test_bias_stress_is_the_strain_derivative_of_the_bias_energy(committee_path):
    from alip.models.calculator import Calculator as CommitteeCalculator

    atoms = si8(rattle=0.1, seed=5)
    calc = BiasedCalculator(CommitteeCalculator(committee_path), strength=1.5, width=0.05)
    atoms.calc = calc
    atoms.get_stress()
    s_bias = calc.results["bias_stress"]
    assert np.abs(s_bias).max() > 1e-6
    np.testing.assert_allclose(atoms.get_stress(), calc.results["stress"])
    h, volume = 1e-6, atoms.get_volume()
    for voigt, (i, j) in enumerate([(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]):
        e = []
        for sign in (1, -1):
            eps = np.zeros((3, 3))
            eps[i, j] = eps[j, i] = sign * h / (1 if i == j else 2)
            strained = atoms.copy()
            strained.set_cell(atoms.cell[:] @ (np.eye(3) + eps), scale_atoms=True)
            e.append(_bias_energy(calc, strained))
        assert (e[0] - e[1]) / (2 * h) / volume == pytest.approx(s_bias[voigt], rel=1e-4, abs=1e-9)


def test_bias_terms_on_a_hand_made_committee():
    # two members: E = ±1 eV, forces ±f: σ_E² = 1, gradient of σ_E² = −2/K Σ dE_k (F_k − F̄) = −2 f
    f = np.array([[0.3, -0.2, 0.1], [0.0, 0.5, -0.4]])
    A, B, N = 2.0, 0.5, 2
    e_bias, f_bias, _ = bias_terms(np.array([1.0, -1.0]), np.stack([f, -f]), A, B)
    x = 1.0 / (N * B**2)
    assert e_bias == pytest.approx(A * (np.exp(-x) - 1))
    # F_bias = −dE_bias/dr = A e^{−x} / (N B²) · ∇σ² = A e^{−x} / (N B²) · (−2 f)
    np.testing.assert_allclose(f_bias, A * np.exp(-x) / (N * B**2) * (-2 * f))
    # members that agree: no bias
    e0, f0, _ = bias_terms(np.array([1.0, 1.0]), np.stack([f, f]), A, B)
    assert e0 == 0 and not f0.any()


@functools.cache
def _runs(ensemble: str):
    ref = si8().positions
    task = TrajectoryTask(
        si8(),
        committee=functools.partial(QuadraticCommittee, ref, 1.0),
        ensemble=ensemble,
        temperature=300.0,
        steps=300,
        every=10,
        seed=7,
        timestep=1.0,
        bias_strength=2.0,
        bias_width=0.05,
        trajectory_id=ensemble,
    )
    return run_trajectory(task)


def test_biased_dynamics_reach_a_larger_committee_spread_than_unbiased():
    plain, biased = _runs("nvt"), _runs("nvt_biased")
    assert plain.stop_reason == biased.stop_reason == "completed"
    eps_plain, eps_biased = plain.max_force_deviations, biased.max_force_deviations
    # the same thermostat noise (same seed); the bias drives the atoms away from where the members agree
    assert eps_biased.max() > 2.0 * eps_plain.max(), (eps_plain.max(), eps_biased.max())
    assert np.median(eps_biased[len(eps_biased) // 2 :]) > 2.0 * np.median(eps_plain[len(eps_plain) // 2 :])
    # the frames carry the unbiased committee deviation (2 std(c) max_i |r_i − r0_i|) and the bias energy
    ref = si8().positions
    c_std = np.std([-1.0, 0.0, 1.0])
    for f in biased.frames[::5]:
        expected = 2 * c_std * np.linalg.norm(f.positions - ref, axis=1).max()
        assert f.info["max_force_dev"] == pytest.approx(expected, rel=1e-9)
        assert f.info["explore_ensemble"] == "nvt_biased" and f.info["bias_energy"] <= 0
    assert all(f.info["bias_energy"] == 0.0 for f in plain.frames)


def test_bad_bias_values_are_refused_with_a_message():
    with pytest.raises(ValueError, match="bias strength A must be a finite energy >= 0 eV"):
        TrajectoryTask(si8(), committee="c.pt", ensemble="nvt_biased", bias_strength=-1.0)
    with pytest.raises(ValueError, match="bias width B must be a finite energy > 0 eV"):
        TrajectoryTask(si8(), committee="c.pt", ensemble="nvt_biased", bias_strength=1.0, bias_width=0.0)
    with pytest.raises(ValueError, match="nvt_biased needs bias_strength > 0"):
        TrajectoryTask(si8(), committee="c.pt", ensemble="nvt_biased", bias_strength=0.0)
    with pytest.raises(ValueError, match="bias width B"):
        BiasedCalculator(QuadraticCommittee(si8().positions), strength=1.0, width=-0.1)
    with pytest.raises(ConfigError, match=r"explore.bias_strength \(A\) must be >= 0"):
        Config.from_dict({"explore": {"bias_strength": -0.5}})
    with pytest.raises(ConfigError, match=r"explore.bias_width \(B\) must be > 0"):
        Config.from_dict({"explore": {"bias_width": 0.0}})
    with pytest.raises(ConfigError, match="nvt_biased but explore.bias_strength is 0"):
        Config.from_dict({"explore": {"ensembles": ["nvt_biased"], "bias_strength": 0.0}})
    # a calculator without member predictions cannot be biased
    from alip.data.oracles import make_oracle

    atoms = si8()
    atoms.calc = BiasedCalculator(make_oracle("sw").make_calculator(None), 1.0, 0.1)
    with pytest.raises(ValueError, match="lack 'committee_energies'"):
        atoms.get_forces()
