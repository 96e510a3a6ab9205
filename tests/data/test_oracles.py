"""Oracles: matscipy potentials vs finite differences and published values, stored labels,
user code, failures and timeouts, GPAW when installed."""

from __future__ import annotations

import importlib.util
import pickle
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import Calculator, all_changes
from ase.units import GPa
from finite_differences import fd_forces
from scipy.optimize import minimize_scalar

from alip.data import structures as st
from alip.data.io import attach_label, write_extxyz
from alip.data.oracles import GPAWOracle, Label, ManybodyOracle, StoredLabelOracle, UserOracle, kpoint_grid, make_oracle

HAVE_GPAW = importlib.util.find_spec("gpaw") is not None
# the user-code oracles below import this module by name ("test_oracles:toy_factory")
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))


# ----------------------------------------------------------------------------- helper calculators
class ToyCalc(Calculator):
    """Energy/forces from a pair term; misbehaves on request (for failure tests)."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, mode="ok", delay=0.0, offset=0.0, **kw):
        super().__init__(**kw)
        self.mode, self.delay, self.offset = mode, delay, offset

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        if self.delay:
            time.sleep(self.delay)
        if self.mode == "raise":
            raise RuntimeError("SCF did not converge (toy)")
        n = len(self.atoms)
        e = float(np.sum(self.atoms.positions**2)) + self.offset
        f = -2 * self.atoms.positions
        if self.mode == "nan":
            e = float("nan")
        self.results = {"energy": e, "forces": f if self.mode != "inf" else np.full((n, 3), np.inf)}


def toy_factory(mode="ok", delay=0.0):
    return ToyCalc(mode=mode, delay=delay)


def toy_factory_with_atoms(atoms, scale=1.0):
    return ToyCalc(offset=scale * len(atoms))  # the label shows what the factory received


# ----------------------------------------------------------------------------- matscipy potentials
def oracle_fd_forces(oracle, atoms, h=1e-4):
    return fd_forces(lambda a: oracle.label(a).energy, atoms, h)


def fd_stress(oracle, atoms, h=1e-5):
    """sigma_ij = (1/V) dE/d(eps_ij) for a symmetric strain, Voigt order."""
    out = []
    for i, j in [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]:
        ep = []
        for s in (h, -h):
            eps = np.zeros((3, 3))
            eps[i, j] += s / 2
            eps[j, i] += s / 2
            if i == j:
                eps[i, i] = s
            a = atoms.copy()
            a.set_cell(a.cell.array @ (np.eye(3) + eps), scale_atoms=True)
            ep.append(oracle.label(a).energy)
        out.append((ep[0] - ep[1]) / (2 * h) / atoms.get_volume())
    return np.array(out)


@pytest.mark.parametrize("potential", ["sw", "kumagai", "tersoff"])
def test_forces_and_stress_match_finite_differences(potential):
    oracle = make_oracle(potential)
    # a distorted 8-atom diamond cell and a compressed random-ish one
    atoms = st.small_distortions(1, seed=4, max_atoms=8, displacement=0.1)[0]
    label = oracle.label(atoms)
    assert label.ok and label.error is None and label.wall_time > 0
    assert label.forces.shape == (8, 3) and label.stress.shape == (6,)
    assert np.abs(label.forces).max() > 0.1  # a non-trivial check
    assert np.allclose(label.forces, oracle_fd_forces(oracle, atoms), atol=2e-6)
    assert np.allclose(label.stress, fd_stress(oracle, atoms), atol=2e-7)


def test_fast_neighbourhood_agrees_with_stock_matscipy():
    from matscipy.calculators.manybody import Manybody
    from matscipy.calculators.manybody.explicit_forms import StillingerWeber
    from matscipy.calculators.manybody.explicit_forms.stillinger_weber import Stillinger_Weber_PRB_31_5262_Si

    ref = Manybody(**StillingerWeber(Stillinger_Weber_PRB_31_5262_Si))
    oracle = ManybodyOracle("sw")
    for atoms in st.large_distortions(3, seed=2) + st.volume_series(2, volume_range=(0.85, 0.9)):
        a = atoms.copy()
        a.calc = ref
        lab = oracle.label(atoms)
        assert lab.energy == pytest.approx(a.get_potential_energy(), abs=1e-10)
        assert np.allclose(lab.forces, a.get_forces(), atol=1e-10)
        assert np.allclose(lab.stress, a.get_stress(), atol=1e-12)


def eos(oracle, a_guess):
    def e(a):
        return oracle.label(bulk("Si", "diamond", a=a, cubic=True)).energy / 8

    a0 = minimize_scalar(e, bracket=(a_guess - 0.1, a_guess, a_guess + 0.1), tol=1e-12).x
    h = 1e-3  # bulk modulus B = V d2E/dV2 per atom, volume steps of 0.1 %
    v0 = a0**3 / 8
    es = [e(a0 * (1 + x) ** (1 / 3)) for x in (-h, 0.0, h)]
    return a0, e(a0), v0 * (es[0] - 2 * es[1] + es[2]) / (v0 * h) ** 2 / GPa


@pytest.mark.parametrize(
    "potential,a0,ecoh,bulk_gpa",
    [
        # Stillinger & Weber, PRB 31, 5262 (1985): a0 = 5.431 A, -2 eps = -4.3366 eV/atom,
        # C11 = 151.4, C12 = 76.4 GPa -> B = 101.4 GPa
        ("sw", 5.431, -4.3366, 101.4),
        # Kumagai et al., Comp. Mat. Sci. 39, 457 (2007): 5.429 A, -4.630 eV, C11 166.4, C12 65.3 GPa
        ("kumagai", 5.429, -4.630, 99.0),
        # Tersoff, PRB 38, 9902 (1988) / PRB 39, 5566 (1989): 5.432 A, -4.63 eV, B = 98 GPa
        ("tersoff", 5.432, -4.63, 98.0),
    ],
)
def test_diamond_si_published_values(potential, a0, ecoh, bulk_gpa):
    oracle = make_oracle(potential)
    a_min, e_min, b = eos(oracle, a0)
    assert a_min == pytest.approx(a0, abs=1.5e-3)
    assert e_min == pytest.approx(ecoh, abs=1.5e-3)
    assert b == pytest.approx(bulk_gpa, abs=1.0)
    lab = oracle.label(bulk("Si", "diamond", a=a_min, cubic=True))
    assert np.abs(lab.forces).max() < 1e-10  # symmetry
    assert np.abs(lab.stress).max() < 1e-6  # minimum of E(V): zero pressure


def test_sw_known_energy_at_experimental_lattice_constant():
    lab = make_oracle("sw").label(bulk("Si", "diamond", a=5.431, cubic=True))
    assert lab.energy / 8 == pytest.approx(-2 * 2.1683, abs=2e-6)


def test_non_periodic_structure_has_no_stress():
    dimer = Atoms("Si2", positions=[(0, 0, 0), (0, 0, 2.4)])
    lab = make_oracle("sw").label(dimer)
    assert lab.ok and lab.stress is None
    assert lab.forces[0, 2] == pytest.approx(-lab.forces[1, 2])


def test_oracle_pickles_after_use_and_gives_same_label():
    oracle = make_oracle("tersoff")
    atoms = st.random_structures(1, seed=5)[0]
    first = oracle.label(atoms)
    clone = pickle.loads(pickle.dumps(oracle))
    second = clone.label(atoms)
    assert second.energy == first.energy and np.array_equal(second.forces, first.forces)


# ----------------------------------------------------------------------------- factory and user code
def test_make_oracle_specs_round_trip():
    for spec, potential in [
        ("sw", "sw"),
        ("SW", "sw"),
        ("stillinger-weber", "sw"),
        ("kumagai", "kumagai"),
        ({"type": "manybody", "potential": "tersoff"}, "tersoff"),
        ({"type": "sw"}, "sw"),
    ]:
        oracle = make_oracle(spec)
        assert isinstance(oracle, ManybodyOracle) and oracle.name == potential
        again = make_oracle(oracle.spec())
        assert again.settings == oracle.settings
    assert "Stillinger" in make_oracle("sw").settings["reference"]
    for bad in ["lj", "", {"type": "vasp"}, 3]:
        with pytest.raises((ValueError, TypeError)):
            make_oracle(bad)


def test_gpaw_spec_without_gpaw_is_a_clear_error():
    if HAVE_GPAW:
        assert isinstance(make_oracle("gpaw"), GPAWOracle)
    else:
        with pytest.raises(ImportError, match="README"):
            make_oracle("gpaw")
    oracle = GPAWOracle(ecut=350, check_import=False)
    assert oracle.settings["ecut"] == 350 and oracle.spec()["type"] == "gpaw"


def test_user_oracle_module_factory():
    oracle = make_oracle("test_oracles:toy_factory")
    assert isinstance(oracle, UserOracle)
    atoms = Atoms("Si2", positions=[(0.1, 0, 0), (0, 0, 2.3)], cell=[6, 6, 6], pbc=True)
    lab = oracle.label(atoms)
    assert lab.energy == pytest.approx(np.sum(atoms.positions**2))
    assert np.allclose(lab.forces, -2 * atoms.positions)
    assert lab.stress is None  # ToyCalc does not implement stress
    with_atoms = UserOracle("test_oracles:toy_factory_with_atoms", kwargs={"scale": 2.0})
    lab = with_atoms.label(atoms)
    assert lab.energy == pytest.approx(np.sum(atoms.positions**2) + 2.0 * 2)  # got kwargs and atoms
    assert make_oracle(with_atoms.spec()).settings == with_atoms.settings


@pytest.mark.parametrize(
    "spec,exc",
    [
        ("no_such_module_xyz:f", ImportError),
        ("math:no_such_function", AttributeError),
        ("math:pi", TypeError),
        ("math:", ValueError),
    ],
)
def test_user_oracle_bad_spec(spec, exc):
    with pytest.raises(exc):
        UserOracle(spec)


# ----------------------------------------------------------------------------- failures
@pytest.mark.parametrize(
    "mode,message", [("raise", "SCF did not converge"), ("nan", "non-finite energy"), ("inf", "non-finite forces")]
)
def test_failures_become_failed_labels(mode, message):
    oracle = UserOracle("test_oracles:toy_factory", kwargs={"mode": mode})
    lab = oracle.label(bulk("Si", "diamond", a=5.431))
    assert lab.status == "failed" and not lab.ok
    assert message in lab.error
    assert lab.energy is None and lab.forces is None


def test_bad_positions_and_bad_arguments():
    atoms = bulk("Si", "diamond", a=5.431)
    atoms.positions[0, 0] = np.nan
    lab = make_oracle("sw").label(atoms)
    assert not lab.ok and "non-finite positions" in lab.error
    with pytest.raises(TypeError):
        make_oracle("sw").label("Si8")
    with pytest.raises(ValueError):
        make_oracle("sw").label(bulk("Si"), timeout=0)
    with pytest.raises(ValueError):
        Label("done")


def test_timeout_interrupts_in_main_thread():
    oracle = UserOracle("test_oracles:toy_factory", kwargs={"delay": 5.0})
    t0 = time.perf_counter()
    lab = oracle.label(bulk("Si"), timeout=0.3)
    assert time.perf_counter() - t0 < 2.0
    assert not lab.ok and "timeout" in lab.error


def test_timeout_outside_main_thread_discards_late_result():
    oracle = UserOracle("test_oracles:toy_factory", kwargs={"delay": 0.4})
    out = {}
    thread = threading.Thread(target=lambda: out.setdefault("lab", oracle.label(bulk("Si"), 0.1)))
    thread.start()
    thread.join()
    assert not out["lab"].ok and "timeout" in out["lab"].error
    assert out["lab"].wall_time >= 0.4


# ----------------------------------------------------------------------------- stored labels
def labeled_dataset(n=5, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for atoms in st.generate_si_pool(n, seed=seed):
        out.append(attach_label(atoms, rng.normal() * 10, rng.normal(size=(len(atoms), 3)), rng.normal(size=6)))
    return out


def test_stored_oracle_extxyz_returns_exactly_what_is_stored(tmp_path):
    from ase.io import read

    path = tmp_path / "data.extxyz"
    write_extxyz(path, labeled_dataset())
    stored = read(path, ":")  # what the file holds (extxyz rounds to its printed digits)
    oracle = make_oracle(f"stored:{path}")
    assert isinstance(oracle, StoredLabelOracle) and len(oracle) == 5
    for a in stored:
        query = a.copy()
        query.calc = None
        lab = oracle.label(query)
        assert lab.ok
        assert lab.energy == a.get_potential_energy()
        assert np.array_equal(lab.forces, a.get_forces())
        assert np.array_equal(lab.stress, a.get_stress())


def test_stored_oracle_database_matching(tmp_path):
    import ase.db

    data = labeled_dataset(4, seed=3)
    path = tmp_path / "data.db"
    with ase.db.connect(str(path)) as db:
        for a in data:
            db.write(a)
    oracle = StoredLabelOracle(path)
    for a in data:
        q = a.copy()
        q.calc = None
        q.positions[0] += q.cell.array[1]  # same structure, atom wrapped to another image
        lab = oracle.label(q)
        assert lab.energy == a.get_potential_energy()  # float64 in SQLite: bit-exact
        assert np.array_equal(lab.forces, a.get_forces())
        assert np.array_equal(lab.stress, a.get_stress())
        q.positions[1, 0] += 1e-3  # a different structure
        miss = oracle.label(q)
        assert not miss.ok and "no stored label" in miss.error
    assert pickle.loads(pickle.dumps(oracle)).label(data[0]).energy == data[0].get_potential_energy()


def test_stored_oracle_custom_keys_and_errors(tmp_path):
    atoms = bulk("Si", "diamond", a=5.43)
    atoms.info["REF_energy"] = -10.5
    atoms.arrays["REF_forces"] = np.arange(6.0).reshape(2, 3)
    path = tmp_path / "ref.extxyz"
    write_extxyz(path, [atoms])
    oracle = StoredLabelOracle(path, energy_key="REF_energy", forces_key="REF_forces")
    lab = oracle.label(bulk("Si", "diamond", a=5.43))
    assert lab.energy == -10.5 and np.array_equal(lab.forces, np.arange(6.0).reshape(2, 3))
    assert lab.stress is None
    with pytest.raises(ValueError, match="no labeled structure"):
        StoredLabelOracle(path)  # no energy/forces under the default names
    with pytest.raises(FileNotFoundError):
        StoredLabelOracle(tmp_path / "missing.extxyz")


# ----------------------------------------------------------------------------- GPAW
def test_kpoint_grid_by_density():
    cubic = bulk("Si", "diamond", a=5.431, cubic=True)
    assert kpoint_grid(cubic, 3.0) == (4, 4, 4)  # ceil(2 pi 3 / 5.431) = ceil(3.47)
    assert kpoint_grid(cubic.repeat((2, 1, 1)), 3.0) == (2, 4, 4)
    slab = cubic.copy()
    slab.pbc = (True, True, False)
    assert kpoint_grid(slab, 3.0) == (4, 4, 1)
    with pytest.raises(ValueError):
        kpoint_grid(cubic, 0)


@pytest.mark.skipif(not HAVE_GPAW, reason="GPAW is an optional extra (see README)")
def test_gpaw_oracle_forces_match_finite_differences():
    oracle = GPAWOracle(ecut=150, kpt_density=1.0, smearing=0.1)  # cheap: 3x3x3 k-points
    atoms = bulk("Si", "diamond", a=5.43)
    atoms.positions[1] += (0.05, -0.03, 0.02)
    lab = oracle.label(atoms)
    assert lab.ok, lab.error
    assert lab.stress.shape == (6,) and np.all(np.isfinite(lab.stress))
    h = 0.01
    ep = []
    for s in (h, -h):
        a = atoms.copy()
        a.positions[1, 0] += s
        ep.append(oracle.label(a).energy)
    assert abs(lab.forces[1, 0]) > 0.1
    assert lab.forces[1, 0] == pytest.approx(-(ep[0] - ep[1]) / (2 * h), abs=0.01)
    assert np.allclose(lab.forces.sum(axis=0), 0.0, atol=0.01)
