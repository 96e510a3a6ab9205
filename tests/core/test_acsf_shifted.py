"""Shifted angular functions: G4 / G5 with a radial shift rs (n2p2's angular functions with
r_shift), exp(-eta (r - rs)^2) per leg instead of exp(-eta r^2).

Values against the brute-force reference (reference_acsf.py, explicit loops) and the
pure-torch reference; position and strain gradients and the fused VJP against central
finite differences, on every kernel path: power-of-two zetas (the fused ladder), other
integer zetas (products of rungs) and a non-integer zeta (the chunked loops); shifted and
unshifted functions sharing an eta (separate radial groups). rs = 0 gives the unshifted
functions exactly.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import STRUCTURES, make_acsf, make_reference, torch_reference_values
from finite_differences import fd_forces, fd_virial
from test_acsf_gradients import H, assert_fd_close, dense_jacobian, energy_weights, fd_positions, fd_strain

import alip

# shifts on the first and second neighbor shells and one between; an unshifted function
# with the same eta as a shifted one; zetas 1, 2, 4 (ladder), 3 (product of rungs), 1.5
SHIFTED_G4 = [(0.5, 1.0, 1.0, 2.3), (1.0, 2.0, -1.0, 3.0), (0.5, 1.0, -1.0, 0.0), (0.8, 3.0, 1.0, 2.0)]
SHIFTED_G5 = [(0.7, 1.0, -1.0, 2.4), (0.03, 2.0, 1.0), (2.0, 4.0, 1.0, 3.5), (0.7, 1.0, 1.0)]
NONINTEGER_G4 = [(0.5, 1.5, -1.0, 2.3), (0.02, 2.0, 1.0)]  # the chunked VJP's G4 shift terms (r_12)
NONINTEGER_G5 = [(0.7, 1.5, -1.0, 2.4), (1.0, 2.0, 1.0, 3.0)]
POW2_G4 = [(0.5, 1.0, 1.0, 2.3), (1.0, 2.0, -1.0, 3.0)]
POW2_G5 = [(0.7, 1.0, -1.0, 2.4), (2.0, 4.0, 1.0, 3.5), (0.7, 1.0, 1.0)]
FAMILIES = {
    "products": (SHIFTED_G4, SHIFTED_G5),
    "pow2": (POW2_G4, POW2_G5),
    "noninteger": (NONINTEGER_G4, NONINTEGER_G5),
}


def shifted_acsf(species, cutoff, g4=SHIFTED_G4, g5=SHIFTED_G5):
    return make_acsf(species, cutoff, g4=g4, g5=g5)


def assert_rel(actual, expected, rtol, what):
    scale = np.abs(expected).max()
    assert scale > 1e-8, f"{what}: reference identically ~0"
    err = np.abs(actual - expected).max() / scale
    assert err < rtol, f"{what}: max |diff| / max |ref| = {err:.3e}"


@pytest.mark.parametrize("name", sorted(STRUCTURES))
def test_values_match_brute_force_reference(name):
    factory, species, cutoff = STRUCTURES[name]
    atoms = factory()
    for g4, g5 in FAMILIES.values():
        got = shifted_acsf(species, cutoff, g4, g5).compute(atoms)
        want = make_reference(species, cutoff, g4=g4, g5=g5).compute(atoms)
        assert_rel(got, want, 1e-10, f"{name} values")


def test_shift_changes_the_values_and_rs_zero_is_the_unshifted_function():
    factory, species, cutoff = STRUCTURES["si_rattled"]
    atoms = factory()
    plain = make_acsf(species, cutoff, g4=[(0.5, 2.0, 1.0)], g5=[(0.5, 2.0, -1.0)]).compute(atoms)
    zero = make_acsf(species, cutoff, g4=[(0.5, 2.0, 1.0, 0.0)], g5=[(0.5, 2.0, -1.0, 0.0)]).compute(atoms)
    shifted = make_acsf(species, cutoff, g4=[(0.5, 2.0, 1.0, 2.35)], g5=[(0.5, 2.0, -1.0, 2.35)]).compute(atoms)
    np.testing.assert_array_equal(plain, zero)
    n2 = shifted.shape[1] - 2
    # centred on the first shell, the window weights the 2.35 A neighbors by 1 instead of e^(-2.8)
    assert (shifted[:, n2:] > 10 * plain[:, n2:]).all()


def test_values_match_torch_reference():
    pytest.importorskip("torch")
    for name in ("si_triclinic", "sio_triclinic", "si_slab"):
        factory, species, cutoff = STRUCTURES[name]
        atoms = factory()
        acsf = shifted_acsf(species, cutoff)
        assert_rel(torch_reference_values(acsf, atoms), acsf.compute(atoms), 1e-12, f"{name} torch reference")


@pytest.mark.parametrize("name", ["si_primitive_rattled", "si_triclinic", "sic_zincblende", "sio_triclinic", "si_wire"])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_gradients_and_fused_vjp_vs_finite_differences(name, family):
    factory, species, cutoff = STRUCTURES[name]
    atoms = factory()
    g4, g5 = FAMILIES[family]
    acsf = shifted_acsf(species, cutoff, g4, g5)
    d = acsf.compute(atoms, gradients=True)
    assert_fd_close(dense_jacobian(d, len(atoms)), fd_positions(acsf, atoms), f"{name} position gradients")
    assert_fd_close(d.strain_grad, fd_strain(acsf, atoms), f"{name} strain gradients")
    # fused VJP (no Jacobian stored) against the same contraction by finite differences
    w = energy_weights(atoms, acsf.n_features)
    forces, virial = acsf.forces_and_virial(atoms, w)

    def energy(a):
        return float((acsf.compute(a) * w).sum())

    assert_fd_close(forces, fd_forces(energy, atoms, H), f"{name} fused forces")
    assert_fd_close(virial, fd_virial(energy, atoms, H), f"{name} fused virial")


def test_fused_vjp_with_stacked_right_hand_sides_equals_sparse_contraction():
    factory, species, cutoff = STRUCTURES["sio_triclinic"]
    atoms = factory()
    acsf = shifted_acsf(species, cutoff)
    d = acsf.compute(atoms, gradients=True)
    W = np.stack([energy_weights(atoms, acsf.n_features, seed=s) for s in range(3)])
    forces, virials = acsf.forces_and_virial(atoms, W)
    for k in range(3):
        f = np.zeros((len(atoms), 3))
        np.add.at(f, d.grad_neighbors, -np.einsum("raf,rf->ra", d.grad_values, W[k][d.grad_centers]))
        v = -np.einsum("iabf,if->ab", d.strain_grad, W[k])
        assert_rel(forces[k], f, 1e-11, "stacked forces")
        assert_rel(virials[k], v, 1e-11, "stacked virial")


def test_spec_rows_serialisation_and_labels():
    acsf = make_acsf(["Si"], 5.0, g2=[(1.0, 2.0)], g4=[(0.1, 1.0, 1.0)], g5=[(0.5, 2.0, -1.0, 2.35), (0.1, 1.0, 1.0)])
    assert acsf.g4.shape == (1, 5) and acsf.g5.shape == (2, 5)  # (eta, zeta, lambda, rs, rs2)
    d = json.loads(json.dumps(acsf.to_dict()))
    assert d["g4"] == [[0.1, 1.0, 1.0]]  # unshifted families keep the 3-column rows of earlier files
    assert d["g5"] == [[0.5, 2.0, -1.0, 2.35], [0.1, 1.0, 1.0, 0.0]]
    assert alip.ACSF.from_dict(d) == acsf
    labels = acsf.feature_labels()
    assert labels[-2] == "G5[Si-Si](eta=0.5,zeta=2,lambda=-1,rs=2.35)"
    assert labels[-1] == "G5[Si-Si](eta=0.1,zeta=1,lambda=+1)"


@pytest.mark.parametrize(
    "g5, match",
    [
        ([(0.5, 2.0, 1.0, -1.0)], "rs must be >= 0"),
        ([(0.5, 2.0, 1.0, float("nan"))], "finite"),
        ([(0.5, 2.0, 1.0, 2.0, 1.0, 3.0)], "3- to 5-tuples"),
        ([(0.5, 2.0)], "3- to 5-tuples"),
        ([(0.5, 2.0, 1.0, 2.0, -1.0)], "rs2 must be >= 0"),
    ],
)
def test_bad_shift_is_refused_with_the_reason(g5, match):
    with pytest.raises(ValueError, match=match):
        make_acsf(["Si"], 5.0, g5=g5)
