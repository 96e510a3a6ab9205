"""Every bad input raises a ValueError whose message names the problem, through every
entry point (values, gradients, fused VJP, batch, neighbor list), and never crashes."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from conftest import make_acsf

NAN = r"(?i)nan|finite|inf"
CELL = r"(?i)volume|degenerate|singular|cell"
CUTOFF = r"(?i)cutoff"
SPECIES = r"(?i)species|element"
EMPTY = r"(?i)empty|no atoms|zero atoms|0 atoms"
OVERLAP = r"(?i)overlap|same position|coincid|distance|too close|duplicate"


def si2():
    return bulk("Si", "diamond", a=5.431)


def with_position(atoms, k, value):
    a = atoms.copy()
    a.positions[k] = value
    return a


def with_cell(atoms, cell, pbc=True):
    a = atoms.copy()
    a.set_cell(cell, scale_atoms=False)
    a.pbc = pbc
    return a


def _bad_cases():
    base = si2()
    c = base.cell[:]
    cases = {
        "nan_position": (with_position(base, 1, [np.nan, 0.0, 0.0]), NAN),
        "inf_position": (with_position(base, 0, [0.0, np.inf, 0.0]), NAN),
        "neg_inf_position": (with_position(base, 0, [0.0, 0.0, -np.inf]), NAN),
        "nan_cell": (with_cell(base, np.where(np.eye(3) == 1, np.nan, c)), NAN),
        "zero_cell_periodic": (with_cell(base, np.zeros((3, 3))), CELL),
        "flat_cell_periodic": (with_cell(base, [c[0], c[1], c[0] + c[1]]), CELL),
        "left_handed_cell": (with_cell(base, [c[1], c[0], c[2]]), CELL),
        "periodic_axis_without_vector": (with_cell(base, [c[0], c[1], [0, 0, 0]], pbc=(True, True, True)), CELL),
        "overlapping_atoms": (with_position(base, 1, base.positions[0]), OVERLAP),
        "overlapping_molecule": (Atoms("Si3", positions=[[0, 0, 0], [1.5, 0, 0], [0, 0, 0]]), OVERLAP),
        "overlap_through_image": (with_position(base, 1, base.positions[0] + c[0] - c[2]), OVERLAP),
        "empty": (Atoms(), EMPTY),
        "empty_periodic": (Atoms(cell=np.eye(3) * 5, pbc=True), EMPTY),
    }
    return cases


BAD = _bad_cases()


@pytest.mark.parametrize("name", sorted(BAD))
def test_compute_values_raises(name):
    atoms, pattern = BAD[name]
    acsf = make_acsf(["Si"], 5.0)
    with pytest.raises(ValueError, match=pattern):
        acsf.compute(atoms)


@pytest.mark.parametrize("name", sorted(BAD))
def test_compute_gradients_raises(name):
    atoms, pattern = BAD[name]
    acsf = make_acsf(["Si"], 5.0)
    with pytest.raises(ValueError, match=pattern):
        acsf.compute(atoms, gradients=True)


@pytest.mark.parametrize("name", sorted(BAD))
def test_forces_and_virial_raises(name):
    atoms, pattern = BAD[name]
    acsf = make_acsf(["Si"], 5.0)
    with pytest.raises(ValueError, match=pattern):
        acsf.forces_and_virial(atoms, np.ones((len(atoms), acsf.n_features)))


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_structure_inside_batch_raises(name):
    atoms, pattern = BAD[name]
    acsf = make_acsf(["Si"], 5.0)
    good = si2()
    with pytest.raises(ValueError, match=pattern):
        acsf.compute([good, atoms, good])
    with pytest.raises(ValueError, match=pattern):
        acsf.compute([good, good, atoms], gradients=True)


def test_unknown_species():
    acsf = make_acsf(["Si"], 5.0)
    sio = Atoms("SiO", positions=[[0, 0, 0], [1.6, 0, 0]])
    for call in (
        lambda: acsf.compute(sio),
        lambda: acsf.compute(sio, gradients=True),
        lambda: acsf.forces_and_virial(sio, np.ones((2, acsf.n_features))),
        lambda: acsf.compute([si2(), sio]),
    ):
        with pytest.raises(ValueError, match=SPECIES) as info:
            call()
        assert "O" in str(info.value) or "8" in str(info.value), f"message does not name the element: {info.value}"


@pytest.mark.parametrize("cutoff", [0.0, -1.0, np.nan, -np.inf])
def test_bad_cutoff_in_constructor(cutoff):
    with pytest.raises(ValueError, match=CUTOFF):
        make_acsf(["Si"], cutoff)


@pytest.mark.parametrize("cutoff", [0.0, -2.5, np.nan])
def test_bad_cutoff_in_neighbor_list(cutoff):
    import alip

    with pytest.raises(ValueError, match=CUTOFF):
        alip.neighbor_list(si2(), cutoff)


@pytest.mark.parametrize(
    "name",
    [
        "nan_position",
        "inf_position",
        "nan_cell",
        "zero_cell_periodic",
        "flat_cell_periodic",
        "periodic_axis_without_vector",
    ],
)
def test_neighbor_list_bad_geometry(name):
    import alip

    atoms, pattern = BAD[name]
    with pytest.raises(ValueError, match=pattern):
        alip.neighbor_list(atoms, 3.0)


def test_bad_species_in_constructor():
    with pytest.raises((ValueError, KeyError)):
        make_acsf(["Xx"], 5.0)
    with pytest.raises(ValueError):
        make_acsf([], 5.0)


def test_wrong_dE_dG_shape_raises():
    acsf = make_acsf(["Si"], 5.0)
    atoms = si2()
    for shape in [(len(atoms) + 1, acsf.n_features), (len(atoms), acsf.n_features - 1), (acsf.n_features,)]:
        with pytest.raises(ValueError, match=r"(?i)shape|dE_dG|size|dimension"):
            acsf.forces_and_virial(atoms, np.ones(shape))
    with pytest.raises(ValueError, match=r"(?i)nan|finite|inf"):
        acsf.forces_and_virial(atoms, np.full((len(atoms), acsf.n_features), np.nan))


def test_valid_edge_cases_do_not_raise():
    """What is not bad input must not be rejected: no cell without periodicity, a zero
    cell vector on an open axis, a lone atom, atoms farther apart than the cutoff."""
    import alip

    acsf = make_acsf(["Si"], 5.0)
    mol = Atoms("Si2", positions=[[0, 0, 0], [2.3, 0, 0]])
    assert np.all(np.isfinite(acsf.compute(mol)))
    wire = Atoms(
        "Si2",
        positions=[[0, 0, 0], [1.2, 1.3, 1.0]],
        cell=[[0, 0, 0], [0, 0, 0], [0, 0, 3.8]],
        pbc=(False, False, True),
    )
    assert np.all(np.isfinite(acsf.compute(wire, gradients=True).values))
    lone = Atoms("Si", positions=[[1.0, 2.0, 3.0]])
    np.testing.assert_array_equal(acsf.compute(lone), 0.0)
    far = Atoms("Si2", positions=[[0, 0, 0], [50, 0, 0]])
    np.testing.assert_array_equal(acsf.compute(far), 0.0)
    i, *_ = alip.neighbor_list(far, 5.0)
    assert len(i) == 0


def test_torch_bridge_bad_input():
    torch = pytest.importorskip("torch")  # torch is an optional extra of alip
    from alip.core.descriptors_torch import acsf_torch

    acsf = make_acsf(["Si"], 5.0)
    atoms = si2()
    pos = torch.tensor(atoms.positions)
    pos[0, 0] = float("nan")
    with pytest.raises(ValueError, match=NAN):
        acsf_torch(acsf, pos, torch.tensor(atoms.cell[:]), atoms.numbers, atoms.pbc)
    with pytest.raises(ValueError, match=CELL):
        acsf_torch(acsf, torch.tensor(atoms.positions), torch.zeros(3, 3), atoms.numbers, atoms.pbc)
