"""The LAMMPS model file (alip.models.lammps): export, read back, evaluate in numpy against the
committee; bad files rejected with a clear message; `alip export lammps`. No LAMMPS needed."""

from __future__ import annotations

import re

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator

import alip
from alip.cli import main
from alip.data.oracles import make_oracle
from alip.data.structures import generate_si_pool
from alip.models.lammps import export_committee, read_model
from alip.models.training import TrainConfig, train_committee


@pytest.fixture(scope="module")
def committee():
    """A tiny, barely trained committee (parity tests need weights, not accuracy)."""
    oracle = make_oracle("sw")
    pool = generate_si_pool(
        12, seed=3, families=("volume", "small_distortion"), family_kwargs={"small_distortion": {"max_atoms": 16}}
    )
    for atoms in pool:
        lab = oracle.label(atoms)
        atoms.calc = SinglePointCalculator(atoms, energy=lab.energy, forces=lab.forces, stress=lab.stress)
    cfg = TrainConfig(n_members=3, hidden=(16, 12), epochs=3, batch_size=4, seed=0)
    return train_committee(pool, alip.ACSF.default_si(), cfg).committee


def _rattled(seed: int = 1):
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat(2)
    atoms.rattle(0.1, seed=seed)
    return atoms


@pytest.mark.parametrize("activation", ["tanh", "silu", "softplus", "celu"])
def test_model_file_reproduces_committee(committee, tmp_path, activation):
    c = committee
    if activation != c.network.activation:  # same weights, another activation: each C++ branch has a twin here
        c = alip.Committee(
            c.acsf, type(c.network)(**{**c.network.architecture(), "activation": activation}), c.metadata
        )
        c.network.load_state_dict(committee.network.state_dict())
    path = export_committee(c, tmp_path / "model.alip")
    model = read_model(path)
    assert model.acsf == c.acsf and model.n_members == c.n_members and model.symbols == ["Si"]
    atoms = _rattled()
    G = c.acsf.compute(atoms)
    E, e_atom, dE_dG = c.evaluate(G, atoms.numbers, np.array([0, len(atoms)]))
    e_file, g_file = model.evaluate(G, np.zeros(len(atoms), dtype=int))
    np.testing.assert_allclose(e_file, e_atom, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(g_file, dE_dG, rtol=1e-12, atol=1e-12 * np.abs(dE_dG).max())
    # forces from the file's dE/dG equal the committee's prediction
    pred = c.predict(atoms)
    forces, _ = c.acsf.forces_and_virial(atoms, g_file)
    np.testing.assert_allclose(forces, pred.forces, rtol=0, atol=1e-12 * np.abs(pred.forces).max())


def test_shifted_angular_functions_write_version_2(committee, tmp_path):
    a = committee.acsf
    g4 = [(eta, zeta, lam, 2.35 * (k % 2)) for k, (eta, zeta, lam, *_) in enumerate(a.g4.tolist())]
    acsf = alip.ACSF(species=a.species, cutoff=a.cutoff, g2=a.g2, g4=g4, g5=a.g5, cutoff_function=a.cutoff_function)
    twin = alip.Committee(acsf, committee.network, committee.metadata)
    path = export_committee(twin, tmp_path / "model.alip")
    assert path.read_text().startswith("alip-lammps-model 2")
    assert export_committee(committee, tmp_path / "plain.alip").read_text().startswith("alip-lammps-model 1")
    model = read_model(path)
    assert model.acsf == acsf
    atoms = _rattled()
    G = acsf.compute(atoms)
    _, e_atom, _ = twin.evaluate(G, atoms.numbers, np.array([0, len(atoms)]))
    e_file, _ = model.evaluate(G, np.zeros(len(atoms), dtype=int))
    np.testing.assert_allclose(e_file, e_atom, rtol=1e-12, atol=1e-12)


def two_window_twin(committee):
    """The committee's weights on a descriptor whose G4 rows become G5 rows, some on two radial
    windows (format version 3): same feature count, so the same network evaluates it."""
    a = committee.acsf
    windows = [(2.35, 3.85), (0.0, 2.35), (2.35, 2.35), (0.0, 0.0)]
    g5 = [(eta + 0.5, zeta, lam, *windows[k % 4]) for k, (eta, zeta, lam, *_) in enumerate(a.g4.tolist())]
    acsf = alip.ACSF(species=a.species, cutoff=a.cutoff, g2=a.g2, g5=g5, cutoff_function=a.cutoff_function)
    return alip.Committee(acsf, committee.network, committee.metadata)


def test_two_window_angular_functions_write_version_3(committee, tmp_path):
    twin = two_window_twin(committee)
    path = export_committee(twin, tmp_path / "model.alip")
    text = path.read_text()
    assert text.startswith("alip-lammps-model 3")
    lines = text.splitlines()
    g5 = lines.index(f"g5 {len(twin.acsf.g5)}")
    assert [float(x) for x in lines[g5 + 1].split()] == twin.acsf.g5[0].tolist()  # eta zeta lambda rs rs2
    assert lines[lines.index("g4 0") + 1] == "g5 24"
    model = read_model(path)
    assert model.acsf == twin.acsf
    np.testing.assert_array_equal(model.acsf.g5, twin.acsf.g5)
    atoms = _rattled()
    G = twin.acsf.compute(atoms)
    _, e_atom, _ = twin.evaluate(G, atoms.numbers, np.array([0, len(atoms)]))
    e_file, _ = model.evaluate(G, np.zeros(len(atoms), dtype=int))
    np.testing.assert_allclose(e_file, e_atom, rtol=1e-12, atol=1e-12)
    # G4 lines of version 3 carry rs2 too; one with two windows is refused by the descriptor
    g4 = [(0.5, 1.0, 1.0, 2.35, 2.35), (0.5, 1.0, -1.0)]
    acsf = alip.ACSF(species=[14], cutoff=5.5, g2=twin.acsf.g2, g4=g4, g5=twin.acsf.g5[:-2])
    with_g4 = export_committee(alip.Committee(acsf, committee.network, committee.metadata), tmp_path / "g4.alip")
    text = with_g4.read_text()
    assert "\ng4 2\n0.5 1 1 2.3500000000000001 2.3500000000000001\n0.5 1 -1 0 0\n" in text
    assert read_model(with_g4).acsf == acsf
    bad = tmp_path / "bad.alip"
    bad.write_text(text.replace("0.5 1 1 2.3500000000000001 2.3500000000000001", "0.5 1 1 2.35 3.85", 1))
    with pytest.raises(ValueError, match="G5 only"):
        read_model(bad)


def test_model_file_rejects_bad_input(committee, tmp_path):
    path = export_committee(committee, tmp_path / "model.alip")
    text = path.read_text()
    bad = tmp_path / "bad.alip"
    for content, message in [
        ("hello 1\n", "not an alip LAMMPS model file"),
        (re.sub(r"^alip-lammps-model \d+", "alip-lammps-model 99", text, count=1), "version 99 is not supported"),
        (text.replace("units metal", "units real", 1), "only metal"),
        (text[: len(text) // 2], "file ends"),
        (text.replace(f"activation {committee.network.activation}", "activation relu6", 1), "unknown activation"),
    ]:
        bad.write_text(content)
        with pytest.raises(ValueError, match=message):
            read_model(bad)


def test_cli_export(committee, tmp_path, capsys):
    committee.save(tmp_path / "committee.pt")
    out = tmp_path / "model.alip"
    assert main(["export", "lammps", str(tmp_path / "committee.pt"), "-o", str(out)]) == 0
    assert read_model(out).n_members == committee.n_members
    assert main(["export", "lammps", str(tmp_path / "committee.pt"), "-o", str(out)]) == 2  # exists
    assert "exists" in capsys.readouterr().err
    assert main(["export", "lammps", str(tmp_path / "missing.pt"), "-o", str(tmp_path / "x.alip")]) == 2


def test_plugin_path_from_environment(tmp_path, monkeypatch):
    from alip.models.lammps import plugin_path

    lib = tmp_path / "libalip_lammps.so"
    monkeypatch.setenv("ALIP_LAMMPS_PLUGIN", str(lib))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        plugin_path()
    lib.write_bytes(b"")
    assert plugin_path() == lib
