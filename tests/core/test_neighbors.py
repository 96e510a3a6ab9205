"""alip.neighbor_list against ASE's neighbor_list and the brute-force reference, over
systems x cutoffs, including cutoffs much larger than the cell and partial periodicity."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.neighborlist import neighbor_list as ase_neighbor_list
from conftest import STRUCTURES
from reference_acsf import reference_neighbor_list, unpack


def _canonical(i, j, S, D, d):
    """Sort by (i, j, S) so that lists with the same content compare equal."""
    S = np.asarray(S).reshape(-1, 3)
    o = np.lexsort((S[:, 2], S[:, 1], S[:, 0], j, i))
    return i[o], j[o], S[o], np.asarray(D).reshape(-1, 3)[o], d[o]


def assert_same_list(got, expected, where):
    gi, gj, gS, gD, gd = _canonical(*got)
    ei, ej, eS, eD, ed = _canonical(*expected)
    assert len(gi) == len(ei), f"{where}: {len(gi)} pairs, expected {len(ei)}"
    np.testing.assert_array_equal(gi, ei, err_msg=where)
    np.testing.assert_array_equal(gj, ej, err_msg=where)
    np.testing.assert_array_equal(gS, eS, err_msg=where)
    np.testing.assert_allclose(gD, eD, rtol=0, atol=1e-12, err_msg=where)
    np.testing.assert_allclose(gd, ed, rtol=0, atol=1e-12, err_msg=where)


def alip_nl(atoms, cutoff):
    import alip

    return alip.neighbor_list(atoms, cutoff)


def _systems():
    out = {name: f() for name, (f, _s, _c) in STRUCTURES.items()}
    big = bulk("Si", "diamond", a=5.431, cubic=True).repeat((2, 2, 2))
    big.rattle(0.1, seed=8)
    out["si_64_rattled"] = big
    flat = Atoms(
        "Si2",
        cell=[[6.0, 0, 0], [5.7, 1.2, 0], [0.3, 0.2, 4.0]],
        pbc=True,
        scaled_positions=[[0.1, 0.2, 0.3], [0.6, 0.5, 0.8]],
    )
    out["very_skewed"] = flat
    mixed = bulk("Si", "diamond", a=5.431, cubic=True)
    mixed.pbc = (True, False, True)
    mixed.rattle(0.05, seed=9)
    out["pbc_TFT"] = mixed
    far = bulk("Si", "diamond", a=5.431)
    far.positions += np.array([3, -2, 7]) @ far.cell[:] + 0.3  # far outside the home cell
    out["unwrapped"] = far
    return out


SYSTEMS = _systems()
CUTOFFS = [1.0, 2.5, 4.0, 7.5, 11.0]


@pytest.mark.parametrize("cutoff", CUTOFFS)
@pytest.mark.parametrize("name", sorted(SYSTEMS))
def test_matches_ase(name, cutoff):
    atoms = SYSTEMS[name]
    got = alip_nl(atoms, cutoff)
    exp = ase_neighbor_list("ijSDd", atoms, cutoff)
    assert_same_list(got, exp, f"{name} cutoff {cutoff}")


@pytest.mark.parametrize("name", ["si_primitive", "si_tiny_cell", "si_wire", "si_slab", "sio_triclinic", "very_skewed"])
def test_matches_bruteforce_reference(name):
    atoms = SYSTEMS[name]
    pos, cell, pbc, _ = unpack(atoms)
    for cutoff in (3.0, 8.0):
        assert_same_list(alip_nl(atoms, cutoff), reference_neighbor_list(pos, cell, pbc, cutoff), f"{name} {cutoff}")


@pytest.mark.parametrize("name", ["si_primitive", "si_64_rattled", "sio_triclinic", "si_wire", "pbc_TFT", "unwrapped"])
def test_format_sorting_and_geometry(name):
    """dtypes/shapes per contract; sorted by i then j; D = x_j + S h - x_i; d = |D|;
    every pair appears in both directions (j, i, -S)."""
    atoms = SYSTEMS[name]
    i, j, S, D, d = alip_nl(atoms, 6.0)
    n = len(i)
    assert i.dtype == np.int64 and j.dtype == np.int64 and S.dtype == np.int64
    assert D.dtype == np.float64 and d.dtype == np.float64
    assert i.shape == (n,) and j.shape == (n,) and S.shape == (n, 3) and D.shape == (n, 3) and d.shape == (n,)
    key = i * len(atoms) + j
    assert np.all(np.diff(key) >= 0), "not sorted by i, then j"
    pos, cell = atoms.positions, atoms.cell[:]
    np.testing.assert_allclose(D, pos[j] + S @ cell - pos[i], atol=1e-12)
    np.testing.assert_allclose(d, np.linalg.norm(D, axis=1), atol=1e-12)
    assert np.all(d < 6.0) and np.all(d > 0)
    assert np.all(S[:, ~atoms.pbc] == 0), "shift along a non-periodic axis"
    fwd = set(zip(i.tolist(), j.tolist(), map(tuple, S.tolist())))
    bwd = set(zip(j.tolist(), i.tolist(), map(tuple, (-S).tolist())))
    assert fwd == bwd


def test_counts_diamond_shells():
    """Ideal diamond: 4 first neighbours at a*sqrt(3)/4, 12 second at a/sqrt(2)."""
    a = 5.431
    atoms = bulk("Si", "diamond", a=a)
    i, _j, _S, _D, d = alip_nl(atoms, a * 0.5)
    assert np.bincount(i).tolist() == [4, 4]
    np.testing.assert_allclose(d, a * np.sqrt(3) / 4, rtol=1e-12)
    i, _j, _S, _D, d = alip_nl(atoms, a * 0.8)
    assert np.bincount(i).tolist() == [16, 16]
    assert np.sum(np.isclose(d, a / np.sqrt(2))) == 24


def test_no_neighbors():
    atoms = Atoms("Si2", positions=[[0, 0, 0], [5, 0, 0]])
    i, j, S, D, d = alip_nl(atoms, 2.0)
    assert len(i) == 0 and S.shape == (0, 3) and D.shape == (0, 3) and len(d) == 0


def test_single_atom_self_images():
    """One atom in a small cell: every neighbour is an image of itself."""
    atoms = Atoms("Si", cell=np.diag([2.0, 2.5, 3.0]), pbc=True, positions=[[0.5, 0.5, 0.5]])
    got = alip_nl(atoms, 4.1)
    assert np.all(got[0] == 0) and np.all(got[1] == 0)
    assert_same_list(got, ase_neighbor_list("ijSDd", atoms, 4.1), "self images")
