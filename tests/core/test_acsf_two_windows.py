"""Two-window G5: a G5 row (eta, zeta, lambda, rs, rs2) whose legs sit on two radial windows,
1/2 [g(r_ij; rs) g(r_ik; rs2) + g(r_ij; rs2) g(r_ik; rs)] with g(r; c) = exp(-eta (r - c)^2).

Two-window rows mixed with one-window (shifted) and centred ones, G4 rows sharing their etas,
on every kernel path: power-of-two zetas (the fused SIMD ladder), other integer zetas
(products of rungs), a non-integer zeta (the chunked loops). Values against the brute-force
reference (reference_acsf.py) and the torch reference; position and strain gradients and the
fused VJP (one and several right-hand sides) against central finite differences; every SIMD
variant of this machine against the torch reference's autograd derivatives (a subprocess per
ALIP_KERNEL). Each check is also made on the two-window columns alone, so that an error there
is not hidden by the larger one-window columns. rs2 = rs is the one-window function, (rs, rs2)
the same as (rs2, rs); a G4 row with two windows is refused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from conftest import STRUCTURES, make_acsf, make_reference, torch_reference_values
from finite_differences import fd_forces, fd_virial
from test_acsf_gradients import H, assert_fd_close, dense_jacobian, energy_weights, fd_positions, fd_strain

import alip

TESTS = Path(__file__).resolve().parents[1]

# Windows on the first and second neighbor shells of diamond Si (2.35, 3.84 A) and between;
# a two-window row with a centred leg (rs = 0); the same (eta, rs) leg in a one-window row and
# in a two-window row; a row given as (rs2, rs) next to one given as (rs, rs2); G4 rows with
# the etas of G5 rows (the core groups the radial factors of G4 and G5 together).
POW2_G4 = [(0.7, 1.0, 1.0, 2.4), (0.02, 2.0, -1.0)]
POW2_G5 = [
    (0.7, 1.0, -1.0, 2.4, 3.6),
    (2.0, 4.0, 1.0, 2.35, 3.84),
    (0.7, 1.0, 1.0, 2.4),
    (0.5, 8.0, 1.0, 0.0, 2.5),
    (0.7, 2.0, 1.0, 3.6, 2.4),
    (0.03, 2.0, -1.0),
]
PRODUCTS_G4 = [(0.7, 3.0, 1.0, 2.4), (0.02, 1.0, -1.0)]
PRODUCTS_G5 = [
    (0.7, 3.0, 1.0, 2.4, 3.6),
    (1.0, 5.0, -1.0, 3.0, 2.0),
    (0.7, 1.0, 1.0, 2.4),
    (0.3, 6.0, 1.0, 0.0, 1.5),
    (0.03, 2.0, -1.0),
]
NONINTEGER_G4 = [(0.7, 1.5, -1.0, 2.4), (0.02, 2.0, 1.0)]
NONINTEGER_G5 = [
    (0.7, 1.5, -1.0, 2.4, 3.6),
    (1.0, 2.0, 1.0, 3.0),
    (0.5, 2.5, -1.0, 0.0, 3.0),
    (2.0, 4.0, 1.0, 3.84, 2.35),
    (0.02, 1.0, 1.0),
]
FAMILIES = {
    "pow2": (POW2_G4, POW2_G5),
    "products": (PRODUCTS_G4, PRODUCTS_G5),
    "noninteger": (NONINTEGER_G4, NONINTEGER_G5),
}
FD_STRUCTURES = ["si_primitive_rattled", "si_triclinic", "sic_zincblende", "sio_triclinic", "si_wire"]


def family_acsf(species, cutoff, family, **kw):
    g4, g5 = FAMILIES[family]
    return make_acsf(species, cutoff, g4=g4, g5=g5, **kw)


def two_window_columns(acsf):
    """Feature columns of the two-window G5 rows (every species pair)."""
    ns, n2, n4, n5 = len(acsf.species), len(acsf.g2), len(acsf.g4), len(acsf.g5)
    rows = np.flatnonzero(acsf.g5[:, 4] != acsf.g5[:, 3])
    assert len(rows), "no two-window row: the test would be vacuous"
    pairs = ns * (ns + 1) // 2
    return np.array([ns * n2 + p * (n4 + n5) + n4 + j for p in range(pairs) for j in rows])


def assert_rel(actual, expected, rtol, what):
    scale = np.abs(expected).max()
    assert scale > 1e-8, f"{what}: reference identically ~0"
    err = np.abs(actual - expected).max() / scale
    assert err < rtol, f"{what}: max |diff| / max |ref| = {err:.3e}"


def assert_rel_cols(actual, expected, rtol, what, cols):
    """assert_rel on the whole array and on the two-window columns (last axis) alone."""
    assert_rel(actual, expected, rtol, what)
    assert_rel(actual[..., cols], expected[..., cols], rtol, f"{what}, two-window columns")


def assert_fd_close_cols(analytic, fd, what, cols):
    assert_fd_close(analytic, fd, what)
    assert_fd_close(analytic[..., cols], fd[..., cols], f"{what}, two-window columns")


def weights(atoms, acsf, cols):
    """Two right-hand sides dE/dG (2, N, F): random on every column, random on the two-window columns only."""
    w = energy_weights(atoms, acsf.n_features)
    only = np.zeros_like(w)
    only[:, cols] = energy_weights(atoms, acsf.n_features, seed=5)[:, cols]
    return np.stack([w, only])


# ------------------------------------------------------------------------- values
@pytest.mark.parametrize("name", sorted(STRUCTURES))
def test_values_match_brute_force_reference(name):
    factory, species, cutoff = STRUCTURES[name]
    atoms = factory()
    for family, (g4, g5) in FAMILIES.items():
        acsf = family_acsf(species, cutoff, family)
        got = acsf.compute(atoms)
        want = make_reference(species, cutoff, g4=g4, g5=g5).compute(atoms)
        assert_rel_cols(got, want, 1e-10, f"{name} {family} values", two_window_columns(acsf))


@pytest.mark.parametrize("name", ["si_triclinic", "sic_zincblende", "sio_triclinic", "sioh_molecule", "si_slab"])
def test_values_match_torch_reference(name):
    pytest.importorskip("torch")
    factory, species, cutoff = STRUCTURES[name]
    atoms = factory()
    for family in FAMILIES:
        for cutoff_function in ("cosine", "polynomial"):
            acsf = family_acsf(species, cutoff, family, cutoff_function=cutoff_function)
            what = f"{name} {family} {cutoff_function} torch reference"
            assert_rel_cols(
                torch_reference_values(acsf, atoms), acsf.compute(atoms), 1e-10, what, two_window_columns(acsf)
            )


def test_torch_reference_matches_brute_force_reference():
    """The two oracles agree with each other (both are used on their own below)."""
    pytest.importorskip("torch")
    factory, species, cutoff = STRUCTURES["sio_triclinic"]
    atoms = factory()
    for family, (g4, g5) in FAMILIES.items():
        acsf = family_acsf(species, cutoff, family)
        want = make_reference(species, cutoff, g4=g4, g5=g5).compute(atoms)
        assert_rel_cols(
            torch_reference_values(acsf, atoms), want, 1e-12, f"{family} torch vs brute force", two_window_columns(acsf)
        )


# ------------------------------------------------------------------------- derivatives
@pytest.mark.parametrize("name", FD_STRUCTURES)
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_gradients_and_fused_vjp_vs_finite_differences(name, family):
    factory, species, cutoff = STRUCTURES[name]
    atoms = factory()
    acsf = family_acsf(species, cutoff, family)
    cols = two_window_columns(acsf)
    d = acsf.compute(atoms, gradients=True)
    assert_fd_close_cols(dense_jacobian(d, len(atoms)), fd_positions(acsf, atoms), f"{name} position gradients", cols)
    assert_fd_close_cols(d.strain_grad, fd_strain(acsf, atoms), f"{name} strain gradients", cols)
    # fused VJP (no Jacobian stored), two right-hand sides at once, against finite differences
    # of the same contractions
    W = weights(atoms, acsf, cols)
    forces, virials = acsf.forces_and_virial(atoms, W)
    assert forces.shape == (2, len(atoms), 3) and virials.shape == (2, 3, 3)

    def energies(a):
        return (acsf.compute(a)[None] * W).sum(axis=(1, 2))

    for k, what in enumerate(("all columns", "two-window columns")):
        f_fd = fd_forces(lambda a, k=k: float(energies(a)[k]), atoms, H)
        assert_fd_close(forces[k], f_fd, f"{name} fused forces, dE/dG on {what}")
    v_fd = fd_virial(energies, atoms, H)
    for k, what in enumerate(("all columns", "two-window columns")):
        assert_fd_close(virials[k], v_fd[k], f"{name} fused virial, dE/dG on {what}")
    # one right-hand side gives the first of the stacked ones
    f1, v1 = acsf.forces_and_virial(atoms, W[0])
    assert_rel(f1, forces[0], 1e-13, f"{name} single vs stacked forces")
    assert_rel(v1, virials[0], 1e-13, f"{name} single vs stacked virial")


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_fused_vjp_with_stacked_right_hand_sides_equals_sparse_contraction(family):
    factory, species, cutoff = STRUCTURES["sio_triclinic"]
    atoms = factory()
    acsf = family_acsf(species, cutoff, family)
    cols = two_window_columns(acsf)
    d = acsf.compute(atoms, gradients=True)
    W = np.concatenate([weights(atoms, acsf, cols), energy_weights(atoms, acsf.n_features, seed=9)[None]])
    forces, virials = acsf.forces_and_virial(atoms, W)
    for k in range(len(W)):
        f = np.zeros((len(atoms), 3))
        np.add.at(f, d.grad_neighbors, -np.einsum("raf,rf->ra", d.grad_values, W[k][d.grad_centers]))
        v = -np.einsum("iabf,if->ab", d.strain_grad, W[k])
        assert_rel(forces[k], f, 1e-11, f"{family} stacked forces {k}")
        assert_rel(virials[k], v, 1e-11, f"{family} stacked virial {k}")


def test_polynomial_cutoff_gradients_vs_fd():
    factory, species, cutoff = STRUCTURES["sic_zincblende"]
    atoms = factory()
    acsf = family_acsf(species, cutoff, "products", cutoff_function="polynomial")
    cols = two_window_columns(acsf)
    d = acsf.compute(atoms, gradients=True)
    assert_fd_close_cols(dense_jacobian(d, len(atoms)), fd_positions(acsf, atoms), "polynomial positions", cols)
    assert_fd_close_cols(d.strain_grad, fd_strain(acsf, atoms), "polynomial strain", cols)


# ------------------------------------------------------------------------- identities
def _all_arrays(acsf, atoms, w):
    d = acsf.compute(atoms, gradients=True)
    forces, virial = acsf.forces_and_virial(atoms, w)
    return {
        "values": acsf.compute(atoms),
        "grad_values": d.grad_values,
        "strain_grad": d.strain_grad,
        "forces": forces,
        "virial": virial,
    }


def test_equal_windows_are_the_one_window_function():
    factory, species, cutoff = STRUCTURES["sio_triclinic"]
    atoms = factory()
    one_acsf = make_acsf(species, cutoff, g4=[], g5=[(0.7, 2.0, 1.0, 2.4), (0.5, 1.0, -1.0)])
    w = energy_weights(atoms, one_acsf.n_features)
    one = _all_arrays(one_acsf, atoms, w)
    same = _all_arrays(
        make_acsf(species, cutoff, g4=[], g5=[(0.7, 2.0, 1.0, 2.4, 2.4), (0.5, 1.0, -1.0, 0.0, 0.0)]), atoms, w
    )
    for key in one:
        np.testing.assert_array_equal(same[key], one[key], err_msg=key)
    # a one-window row in a table with two-window rows (the kernels' two-window form) is the same
    # function as in a table without them
    mixed_acsf = make_acsf(
        species, cutoff, g4=[], g5=[(0.7, 2.0, 1.0, 2.4), (0.5, 1.0, -1.0), (0.7, 2.0, 1.0, 2.4, 3.6)]
    )
    wm = np.zeros((len(atoms), mixed_acsf.n_features))
    keep = [k for k in range(mixed_acsf.n_features) if k not in set(two_window_columns(mixed_acsf))]
    wm[:, keep] = w
    mixed = _all_arrays(mixed_acsf, atoms, wm)
    for key in one:
        got = mixed[key][..., keep] if key in ("values", "grad_values", "strain_grad") else mixed[key]
        assert_rel(got, one[key], 1e-13, f"one-window rows next to two-window rows: {key}")


def test_nearly_equal_windows_approach_the_one_window_function():
    """rs2 = rs + 1e-9: the two-window form (which the kernels may write with the half gap
    (rs - rs2) / 2) stays within O(gap) of the one-window function, values and derivatives."""
    factory, species, cutoff = STRUCTURES["sic_zincblende"]
    atoms = factory()
    for zeta in (1.0, 3.0, 1.5):
        one_acsf = make_acsf(species, cutoff, g2=[(1.0, 2.0)], g4=[], g5=[(1.5, zeta, -1.0, 2.4)])
        w = energy_weights(atoms, one_acsf.n_features)
        one = _all_arrays(one_acsf, atoms, w)
        near = make_acsf(species, cutoff, g2=[(1.0, 2.0)], g4=[], g5=[(1.5, zeta, -1.0, 2.4, 2.4 + 1e-9)])
        got = _all_arrays(near, atoms, w)
        for key in one:
            assert_rel(got[key], one[key], 1e-7, f"zeta {zeta} gap 1e-9: {key}")


def test_window_order_is_irrelevant():
    factory, species, cutoff = STRUCTURES["sio_triclinic"]
    atoms = factory()
    for zeta in (2.0, 3.0, 1.5):
        rows = [(0.7, zeta, -1.0, 2.4, 3.6), (0.5, 1.0, 1.0, 0.0, 2.5)]
        swapped = [(e, z, lam, rs2, rs) for e, z, lam, rs, rs2 in rows]
        a = make_acsf(species, cutoff, g4=[(0.7, 1.0, 1.0, 2.4)], g5=rows)
        b = make_acsf(species, cutoff, g4=[(0.7, 1.0, 1.0, 2.4)], g5=swapped)
        assert a != b  # the rows are kept as given (to_dict) ...
        w = energy_weights(atoms, a.n_features)
        x, y = _all_arrays(a, atoms, w), _all_arrays(b, atoms, w)
        for key in x:  # ... but the core computes one function
            np.testing.assert_array_equal(y[key], x[key], err_msg=f"zeta {zeta}: {key}")
        ref = make_reference(species, cutoff, g4=[(0.7, 1.0, 1.0, 2.4)], g5=swapped).compute(atoms)
        assert_rel(x["values"], ref, 1e-10, f"zeta {zeta}: (rs2, rs) reference")


def test_two_windows_differ_from_either_one_window():
    """Non-vacuous: the second window changes the function (diamond Si, first and second shell)."""
    factory, species, cutoff = STRUCTURES["si_rattled"]
    atoms = factory()
    g5 = [(2.0, 1.0, 1.0, 2.35, 3.84), (2.0, 1.0, 1.0, 2.35), (2.0, 1.0, 1.0, 3.84)]
    v = make_acsf(species, cutoff, g2=[], g4=[], g5=g5).compute(atoms)
    assert (v[:, 0] > 0).all()
    assert (np.abs(v[:, 0] - v[:, 1]) > 0.1 * v[:, 0]).all() and (np.abs(v[:, 0] - v[:, 2]) > 0.1 * v[:, 0]).all()


# ------------------------------------------------------------------------- the spec
def test_g4_with_two_windows_is_refused():
    with pytest.raises(ValueError, match=r"g4 row 1: two windows \(rs2 != rs\) are defined for G5 only"):
        make_acsf(["Si"], 5.0, g4=[(0.5, 1.0, 1.0), (0.5, 2.0, 1.0, 2.0, 3.0)], g5=[])
    # five columns with rs2 = rs are one window: accepted, the same as four
    atoms = STRUCTURES["si_triclinic"][0]()
    a = make_acsf(["Si"], 5.0, g4=[(0.5, 2.0, 1.0, 2.0, 2.0)], g5=[])
    b = make_acsf(["Si"], 5.0, g4=[(0.5, 2.0, 1.0, 2.0)], g5=[])
    assert a == b
    np.testing.assert_array_equal(a.compute(atoms), b.compute(atoms))


@pytest.mark.parametrize(
    "g5, match",
    [
        ([(0.5, 2.0, 1.0, 2.0, -1.0)], "rs2 must be >= 0"),
        ([(0.5, 2.0, 1.0, -1.0, 2.0)], "rs must be >= 0"),
        ([(0.5, 2.0, 1.0, 2.0, float("nan"))], "finite"),
        ([(0.5, 2.0, 1.0, 2.0, float("inf"))], "finite"),
        ([(0.5, 2.0, 1.0, 2.0, 3.0, 4.0)], "3- to 5-tuples"),
    ],
)
def test_bad_second_window_is_refused_with_the_reason(g5, match):
    with pytest.raises(ValueError, match=match):
        make_acsf(["Si"], 5.0, g5=g5)


def test_spec_rows_serialisation_and_labels():
    g5 = [(0.5, 2.0, -1.0, 2.35, 3.84), (0.1, 1.0, 1.0), (0.5, 8.0, 1.0, 0.0, 2.5), (0.7, 1.0, 1.0, 2.4)]
    acsf = make_acsf(["Si", "O"], 5.0, g2=[(1.0, 2.0)], g4=[(0.1, 1.0, 1.0)], g5=g5)
    assert acsf.g4.shape == (1, 5) and acsf.g5.shape == (4, 5)
    np.testing.assert_array_equal(acsf.g5[:, 4], [3.84, 0.0, 2.5, 2.4])  # rs2 = rs for one window
    d = json.loads(json.dumps(acsf.to_dict()))
    assert d["g4"] == [[0.1, 1.0, 1.0]]  # no shift: the 3-column rows of earlier files
    assert d["g5"] == [[0.5, 2.0, -1.0, 2.35, 3.84], [0.1, 1.0, 1.0, 0.0, 0.0], [0.5, 8.0, 1.0, 0.0, 2.5],
                       [0.7, 1.0, 1.0, 2.4, 2.4]]  # fmt: skip
    back = alip.ACSF.from_dict(d)
    assert back == acsf and back.n_features == acsf.n_features
    np.testing.assert_array_equal(back.g5, acsf.g5)
    one_window = make_acsf(["Si"], 5.0, g4=[], g5=[(0.7, 1.0, 1.0, 2.4, 2.4), (0.1, 1.0, 1.0)])
    assert one_window.to_dict()["g5"] == [[0.7, 1.0, 1.0, 2.4], [0.1, 1.0, 1.0, 0.0]]  # four columns suffice
    labels = acsf.feature_labels()
    assert len(labels) == acsf.n_features
    assert labels[-4:] == [
        "G5[Si-Si](eta=0.5,zeta=2,lambda=-1,rs=2.35,rs2=3.84)",
        "G5[Si-Si](eta=0.1,zeta=1,lambda=+1)",
        "G5[Si-Si](eta=0.5,zeta=8,lambda=+1,rs=0,rs2=2.5)",
        "G5[Si-Si](eta=0.7,zeta=1,lambda=+1,rs=2.4)",
    ]
    assert [i for i, lab in enumerate(labels) if "rs2=" in lab] == two_window_columns(acsf).tolist()


def test_committee_and_descriptor_file_round_trip(tmp_path):
    """A committee with two-window rows saves and loads; a JSON ACSF table with five-column G5
    rows is a run's descriptor (descriptor.file) and `alip train --spec`'s."""
    pytest.importorskip("torch")
    from alip.al.loop import make_acsf as run_acsf
    from alip.config import Config
    from alip.models.committee import Committee
    from alip.models.networks import CommitteeNetwork

    acsf = family_acsf(["Si"], 5.0, "pow2")
    net = CommitteeNetwork(acsf.n_features, acsf.species, n_members=2, hidden=(4,))
    Committee(acsf, net).save(tmp_path / "c.pt")
    loaded = Committee.load(tmp_path / "c.pt", acsf=acsf)
    assert loaded.acsf == acsf
    atoms = STRUCTURES["si_triclinic"][0]()
    np.testing.assert_array_equal(loaded.acsf.compute(atoms), acsf.compute(atoms))
    spec = tmp_path / "acsf.json"
    spec.write_text(json.dumps(acsf.to_dict()))
    assert any(len(row) == 5 for row in json.loads(spec.read_text())["g5"])
    assert run_acsf(Config.from_dict({"descriptor": {"file": str(spec)}})) == acsf


# ------------------------------------------------------------------------- SIMD variants
# Each variant (ALIP_KERNEL, chosen once at import: a subprocess each) computes every array;
# the parent compares them with the torch reference's autograd derivatives (exact, no FD).
VARIANT_SCRIPT = r"""
import sys
import numpy as np
sys.path[:0] = [sys.argv[2], sys.argv[3]]
import alip
from test_acsf_two_windows import SMALL, variant_cases

out = {"variant": np.array(alip.build_info()["kernel_variant"])}
for name, atoms, acsf, W in variant_cases():
    n = len(atoms)
    d = acsf.compute(atoms, gradients=True)
    out[name + "/values"] = acsf.compute(atoms)
    out[name + "/forces"], out[name + "/virials"] = acsf.forces_and_virial(atoms, W)
    # the sparse and strain gradients contracted with the same right-hand sides
    sparse = np.zeros((len(W), n, 3))
    for k, w in enumerate(W):
        np.add.at(sparse[k], d.grad_neighbors, -np.einsum("raf,rf->ra", d.grad_values, w[d.grad_centers]))
    out[name + "/sparse_forces"] = sparse
    out[name + "/strain_virials"] = -np.einsum("iabf,kif->kab", d.strain_grad, W)
    if n <= SMALL:
        out[name + "/jacobian"] = np.zeros((n, n, 3, acsf.n_features))
        np.add.at(out[name + "/jacobian"], (d.grad_centers, d.grad_neighbors), d.grad_values)
        out[name + "/strain_grad"] = d.strain_grad
np.savez(sys.argv[1], **out)
"""


def _si64():
    atoms = bulk("Si", "diamond", a=5.431, cubic=True).repeat(2)  # several chunks of pairs per center
    atoms.set_cell(atoms.cell[:] @ np.array([[1.0, 0.0, 0.0], [0.2, 1.0, 0.0], [-0.1, 0.15, 1.0]]), scale_atoms=True)
    atoms.rattle(0.08, seed=7)
    return atoms


def variant_cases():
    """(name, atoms, acsf, dE/dG (2, N, F)) of the variant comparison."""
    cases = []
    for family in sorted(FAMILIES):
        for name in ("si_triclinic", "sio_triclinic", "si_slab"):
            factory, species, cutoff = STRUCTURES[name]
            cases.append((f"{name}_{family}", factory(), family_acsf(species, cutoff, family)))
        cases.append((f"si64_{family}", _si64(), family_acsf(["Si"], 5.5, family)))
    return [(name, atoms, acsf, weights(atoms, acsf, two_window_columns(acsf))) for name, atoms, acsf in cases]


SMALL = 8  # atoms: full Jacobians compared up to this size (contractions only above)


def _torch_oracle(atoms, acsf, W):
    """Values, forces (2, N, 3) and virials (2, 3, 3) of the torch reference by autograd; for
    small structures also the position Jacobian (N, N, 3, F) and strain Jacobian (N, 3, 3, F)."""
    import torch

    from alip.core.descriptors_torch import reference_acsf

    pos = torch.tensor(atoms.positions, dtype=torch.float64)
    cell = torch.tensor(atoms.cell[:], dtype=torch.float64)

    def values(p, eps):
        m = torch.eye(3, dtype=torch.float64) + eps
        return reference_acsf(acsf, p @ m, cell @ m, atoms.numbers, atoms.pbc)

    eps = torch.zeros((3, 3), dtype=torch.float64, requires_grad=True)
    p = pos.clone().requires_grad_(True)
    G = values(p, eps)
    out = {"values": G.detach().numpy()}
    forces, virials = [], []
    for w in W:
        gp, ge = torch.autograd.grad((G * torch.as_tensor(w)).sum(), (p, eps), retain_graph=True)
        forces.append(-gp.numpy())
        virials.append(-ge.numpy())
    out["forces"], out["virials"] = np.stack(forces), np.stack(virials)
    if len(atoms) > SMALL:
        return out
    jp, je = torch.autograd.functional.jacobian(values, (pos, torch.zeros((3, 3), dtype=torch.float64)), vectorize=True)
    out["jacobian"] = jp.permute(0, 2, 3, 1).numpy()  # (c, f, n, a) -> (c, n, a, f)
    out["strain_grad"] = je.permute(0, 2, 3, 1).numpy()  # (i, f, a, b) -> (i, a, b, f)
    return out


@pytest.fixture(scope="module")
def torch_oracles():
    pytest.importorskip("torch")
    return {name: _torch_oracle(atoms, acsf, W) for name, atoms, acsf, W in variant_cases()}


def _not_runnable(variant: str) -> str | None:
    """Why this build or CPU cannot run ``variant`` (None: it can)."""
    info = alip.build_info()
    if variant not in info["kernel_variants"]:
        return f"this build has no {variant} variant"
    isas = ["baseline", "avx2", "avx512"]
    isa = info["cpu_isa"] if info["cpu_isa"] in isas else "baseline"
    if isas.index(variant) > isas.index(isa):
        return f"this CPU ({info['cpu_isa']}) cannot run {variant}"
    return None


@pytest.mark.parametrize("variant", ["baseline", "avx2", "avx512"])
def test_every_kernel_variant_matches_torch_autograd(variant, torch_oracles, tmp_path):
    reason = _not_runnable(variant)
    if reason:
        pytest.skip(reason)
    env = dict(os.environ, ALIP_KERNEL=variant)
    path = tmp_path / f"{variant}.npz"
    proc = subprocess.run(
        [sys.executable, "-c", VARIANT_SCRIPT, str(path), str(TESTS), str(TESTS / "core")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(path) as z:
        got = {k: z[k] for k in z.files}
    assert str(got.pop("variant")) == variant
    cases = {name: acsf for name, _, acsf, _ in variant_cases()}
    for name, oracle in torch_oracles.items():
        cols = two_window_columns(cases[name])
        for key in ("values", "jacobian", "strain_grad"):
            if key in oracle:
                assert_rel_cols(got[f"{name}/{key}"], oracle[key], 1e-10, f"{variant} {name} {key}", cols)
        # [0]: dE/dG on every column, [1]: on the two-window ones
        for key, ref in (("forces", "forces"), ("sparse_forces", "forces"), ("virials", "virials"),
                         ("strain_virials", "virials")):  # fmt: skip
            for k in range(2):
                assert_rel(got[f"{name}/{key}"][k], oracle[ref][k], 1e-10, f"{variant} {name} {key}[{k}]")


def test_rows_may_come_from_a_generator():
    """The rows are read once: a generator gives the same descriptor as a list."""
    rows = [(2.0, 1.0, 1.0, 2.3, 3.8), (0.3, 2.0, -1.0)]
    a = make_acsf(["Si"], 5.0, g4=[], g5=(r for r in rows))
    assert a.to_dict() == make_acsf(["Si"], 5.0, g4=[], g5=rows).to_dict()
