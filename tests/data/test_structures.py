"""Structure families: reproducibility, physical sanity, tags, CLI."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from ase.io import read

from alip.cli.generate import main as generate_main
from alip.data import structures as st


def brute_min_distance(atoms, shells=2):
    """Min interatomic distance over explicit periodic images (independent of matscipy)."""
    pos, cell = atoms.positions, atoms.cell.array
    rng = range(-shells, shells + 1)
    shifts = np.array([(i, j, k) for i in rng for j in rng for k in rng]) @ cell
    d = pos[None, :, None, :] + shifts[None, None, :, :] - pos[:, None, None, :]
    r = np.sqrt((d**2).sum(-1))
    r[r < 1e-9] = np.inf  # an atom with itself (zero shift)
    return r.min()


def coordination(atoms, cutoff, shells=2):
    pos, cell = atoms.positions, atoms.cell.array
    rng = range(-shells, shells + 1)
    shifts = np.array([(i, j, k) for i in rng for j in rng for k in rng]) @ cell
    d = np.linalg.norm(pos[None, :, None, :] + shifts[None, None] - pos[:, None, None, :], axis=-1)
    return ((d > 1e-9) & (d < cutoff)).sum(axis=(1, 2))


@pytest.fixture(scope="module")
def pool():
    return st.generate_si_pool(60, seed=7)


def same(a, b):
    return (
        len(a) == len(b)
        and np.array_equal(a.numbers, b.numbers)
        and np.array_equal(a.positions, b.positions)
        and np.array_equal(a.cell.array, b.cell.array)
        and a.info == b.info
    )


def test_pool_reproducible_with_seed(pool):
    again = st.generate_si_pool(60, seed=7)
    assert all(same(a, b) for a, b in zip(pool, again))
    other = st.generate_si_pool(60, seed=8)
    # the volume series is a deterministic grid; the three random families must change
    changed = [not same(a, b) for a, b in zip(pool, other) if a.info["family"] != "volume"]
    assert len(changed) == 45 and all(changed)


@pytest.mark.parametrize("func", [st.small_distortions, st.large_distortions, st.random_structures])
def test_each_structure_has_its_own_stream(func):
    # the k-th structure does not depend on how many are generated
    assert all(same(a, b) for a, b in zip(func(3, seed=11), func(6, seed=11)[:3]))


def test_tags_and_ids(pool):
    assert [a.info["pool_id"] for a in pool] == list(range(60))
    fams = [a.info["family"] for a in pool]
    assert {f: fams.count(f) for f in st.FAMILIES} == {f: 15 for f in st.FAMILIES}
    for a in pool:
        assert set(a.get_chemical_symbols()) == {"Si"}
        assert a.pbc.all()
        if a.info["family"] != "random":
            assert a.info["parent"] in st.POLYMORPHS
    shifted = st.generate_si_pool(8, seed=0, start_id=100)
    assert [a.info["pool_id"] for a in shifted] == list(range(100, 108))


def test_distance_floor_and_sizes(pool):
    floors = {"volume": 2.0, "small_distortion": 1.9, "large_distortion": 1.9, "random": 2.0}
    for a in pool:
        assert 8 <= len(a) <= 64
        d = brute_min_distance(a)
        assert d >= floors[a.info["family"]] - 1e-9
        assert abs(d - st.min_distance(a)) < 1e-9  # matscipy-based helper agrees


def test_volumes_in_range(pool):
    v0 = st.REFERENCE_VOLUME["diamond"]
    for a in pool:
        vpa = a.get_volume() / len(a)
        fam = a.info["family"]
        if fam == "volume":
            assert vpa == pytest.approx(v0 * a.info["scale"], rel=1e-12)
            assert 0.85 - 1e-12 <= a.info["scale"] <= 1.15 + 1e-12
        elif fam == "small_distortion":  # strain entries <= 3 % -> |det - 1| < ~10 %
            assert 0.9 * v0 < vpa < 1.1 * v0
        elif fam == "large_distortion":
            ref = st.REFERENCE_VOLUME[a.info["parent"]] * a.info["scale"]
            natoms0 = len(a) + a.info.get("n_vacancies", 0)
            assert 0.9 <= a.info["scale"] <= 1.1
            assert 0.7 * ref < a.get_volume() / natoms0 < 1.3 * ref
        else:
            assert 14.0 <= vpa <= 24.0
            assert vpa == pytest.approx(a.info["volume_per_atom"], rel=1e-9)


def test_volume_series_grid_and_endpoints():
    series = st.volume_series(7)
    scales = [a.info["scale"] for a in series]
    assert scales == pytest.approx(np.linspace(0.85, 1.15, 7), abs=1e-15)
    mid = series[3]  # V/V0 = 1: the experimental diamond lattice constant
    assert np.allclose(mid.cell.array, 5.431 * np.eye(3), atol=1e-12)
    assert brute_min_distance(mid) == pytest.approx(5.431 * np.sqrt(3) / 4, abs=1e-9)


@pytest.mark.parametrize(
    "name,cutoff,expected",
    [
        ("diamond", 2.6, 4),
        ("beta_tin", 3.0, 6),
        ("sc", 2.9, 6),
        ("bcc", 2.85, 8),
        ("bcc", 3.3, 14),
        ("fcc", 3.2, 12),
        ("hcp", 3.2, 12),
    ],
)
def test_polymorph_coordination(name, cutoff, expected):
    atoms = st.si_polymorph(name)
    assert 8 <= len(atoms) <= 16
    assert atoms.get_volume() / len(atoms) == pytest.approx(st.REFERENCE_VOLUME[name], rel=1e-12)
    assert np.all(coordination(atoms, cutoff) == expected)


def test_large_distortion_kinds():
    structs = st.large_distortions(30, seed=1)
    kinds = {a.info["kind"] for a in structs}
    assert kinds == set(st.LARGE_KINDS)
    for a in structs:
        if a.info["kind"] == "vacancy":
            assert 1 <= a.info["n_vacancies"] <= 2
        if a.info["kind"] == "snapshot":
            assert 300 <= a.info["temperature"] <= 2500
            assert a.info["displacement"] == pytest.approx(st.einstein_sigma(a.info["temperature"]))


def test_einstein_sigma_against_si_units():
    from scipy import constants as c

    T = 1000.0
    omega = c.k * 640.0 / c.hbar
    sigma = np.sqrt(c.k * T / (28.0855 * c.atomic_mass * omega**2)) * 1e10
    assert st.einstein_sigma(T) == pytest.approx(sigma, rel=1e-6)
    assert st.einstein_sigma(4 * T) == pytest.approx(2 * sigma, rel=1e-6)


def test_family_counts():
    assert st.family_counts(10) == {"volume": 3, "small_distortion": 3, "large_distortion": 2, "random": 2}
    assert st.family_counts(10, ("volume", "random"), (3, 1)) == {"volume": 8, "random": 2}
    assert sum(st.family_counts(997, fractions=(0.1, 0.2, 0.3, 0.4)).values()) == 997


@pytest.mark.parametrize(
    "call,exc",
    [
        (lambda: st.generate_si_pool(4, families=("volume", "crystal")), ValueError),
        (lambda: st.generate_si_pool(-1), ValueError),
        (lambda: st.generate_si_pool(4, seed=-3), ValueError),
        (lambda: st.generate_si_pool(4, fractions=(1, 1)), ValueError),
        (lambda: st.generate_si_pool(4, family_kwargs={"rand": {}}), ValueError),
        (lambda: st.volume_series(3, polymorphs=("wurtzite",)), ValueError),
        (lambda: st.volume_series(3, volume_range=(1.1, 0.9)), ValueError),
        (lambda: st.large_distortions(2, kinds=("melt",)), ValueError),
        (lambda: st.random_structures(1, n_atoms=(16, 16), volume_per_atom=(8, 8), min_dist=2.6), RuntimeError),
    ],
)
def test_bad_input(call, exc):
    with pytest.raises(exc):
        call()


def test_cli_generate_extxyz_and_db(tmp_path, capsys):
    out = tmp_path / "pool.extxyz"
    assert generate_main(["si", "--n", "12", "--seed", "3", "--out", str(out), "--no-progress"]) == 0
    assert "wrote 12 structures" in capsys.readouterr().out
    back = read(out, ":")
    ref = st.generate_si_pool(12, seed=3)
    assert [a.info["pool_id"] for a in back] == list(range(12))
    for a, b in zip(back, ref):
        assert a.info["family"] == b.info["family"]
        assert np.allclose(a.positions, b.positions, atol=1e-7)
    # refuses to overwrite, reports bad input with exit code 2
    assert generate_main(["si", "--n", "3", "--out", str(out), "--no-progress"]) == 2
    assert "exists" in capsys.readouterr().err
    assert generate_main(["si", "--n", "3", "--out", str(tmp_path / "p.txt")]) == 2
    db = tmp_path / "pool.db"
    assert (
        generate_main(
            [
                "si",
                "--n",
                "9",
                "--out",
                str(db),
                "--families",
                "volume,random",
                "--polymorphs",
                "diamond,fcc",
                "--no-progress",
            ]
        )
        == 0
    )
    from alip.data.store import LabelStore

    store = LabelStore(db)
    assert store.counts()["pool"] == 9
    assert {a.info["parent"] for a in store.structures(family="volume")} == {"diamond", "fcc"}


def test_cli_module_entry_point(tmp_path):
    out = tmp_path / "x.extxyz"
    proc = subprocess.run(
        [sys.executable, "-m", "alip.cli.generate", "si", "--n", "4", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(read(out, ":")) == 4
