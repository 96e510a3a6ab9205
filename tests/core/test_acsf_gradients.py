"""Exact derivatives of the ACSF core against central finite differences of the values.

* sparse position gradients (rows format per docs/descriptor_api.md),
* strain gradients (positions and cell deformed together by I + eps),
* the fused vector-Jacobian product forces_and_virial,
* invariances: translation (sum rule / forces summing to zero), rotation (covariance of
  the gradients, symmetric strain gradients), permutation,
* batch == single for every returned array.

Finite differences: float64, central, h = 1e-5 A (or 1e-5 strain); tolerance 1e-6 of the
largest magnitude. Structures have no pair near the cutoff edge.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase.neighborlist import neighbor_list as ase_neighbor_list
from conftest import STRUCTURES, make_acsf
from finite_differences import fd_forces, fd_virial

H = 1e-5
FD_RTOL = 1e-6


# ------------------------------------------------------------------------- helpers
def dense_jacobian(desc, n_atoms):
    """(N, N, 3, F) from the sparse rows -- only ever for tiny test systems."""
    J = np.zeros((n_atoms, n_atoms, 3, desc.values.shape[1]))
    np.add.at(J, (desc.grad_centers, desc.grad_neighbors), desc.grad_values)
    return J


def fd_positions(acsf, atoms):
    """J_fd[c, n, a, f] = d values[c, f] / d positions[n, a] by central differences."""
    n = len(atoms)
    F = acsf.n_features
    J = np.zeros((n, n, 3, F))
    for k in range(n):
        for a in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[k, a] += H
            minus.positions[k, a] -= H
            J[:, k, a, :] = (acsf.compute(plus) - acsf.compute(minus)) / (2 * H)
    return J


def deformed(atoms, eps):
    out = atoms.copy()
    M = np.eye(3) + eps
    out.positions = atoms.positions @ M
    out.cell = atoms.cell[:] @ M
    return out


def fd_strain(acsf, atoms):
    """S_fd[i, a, b, f] = d values[i, f] / d eps_ab with r -> r (I + eps), h -> h (I + eps)."""
    out = np.zeros((len(atoms), 3, 3, acsf.n_features))
    for a in range(3):
        for b in range(3):
            e = np.zeros((3, 3))
            e[a, b] = H
            out[:, a, b, :] = (acsf.compute(deformed(atoms, e)) - acsf.compute(deformed(atoms, -e))) / (2 * H)
    return out


def assert_fd_close(analytic, fd, what):
    scale = np.abs(fd).max()
    assert scale > 1e-8, f"{what}: derivative identically ~0, test would be vacuous"
    err = np.abs(analytic - fd).max()
    assert err <= FD_RTOL * scale, f"{what}: max |analytic - FD| = {err:.3e}, scale {scale:.3e}"


def energy_weights(atoms, n_features, seed=0):
    return np.random.default_rng(seed).normal(size=(len(atoms), n_features))


def _acsf_for(case):
    _name, atoms, species, cutoff = case
    return make_acsf(species, cutoff), atoms


# ------------------------------------------------------------------------- format
def test_gradient_rows_format(fd_case):
    import alip

    name, atoms, species, cutoff = fd_case
    acsf = make_acsf(species, cutoff)
    d = acsf.compute(atoms, gradients=True)
    assert isinstance(d, alip.Descriptors)
    n, F = len(atoms), acsf.n_features
    nr = len(d.grad_centers)
    assert d.values.shape == (n, F) and d.values.dtype == np.float64
    v = acsf.compute(atoms)
    np.testing.assert_allclose(d.values, v, rtol=0, atol=1e-13 * np.abs(v).max())
    assert d.offsets.dtype == np.int64 and d.offsets.tolist() == [0, n]
    assert d.grad_values.shape == (nr, 3, F) and d.grad_values.dtype == np.float64
    assert d.grad_centers.dtype == np.int64 and d.grad_neighbors.dtype == np.int64
    assert d.grad_neighbors.shape == (nr,)
    assert d.strain_grad.shape == (n, 3, 3, F) and d.strain_grad.dtype == np.float64
    # grouped by center, then neighbour, no duplicate (center, neighbour) rows
    key = d.grad_centers * n + d.grad_neighbors
    assert np.all(np.diff(key) > 0), f"{name}: rows not strictly sorted by (center, neighbour)"
    # exactly the atoms within the cutoff of each center (any image), plus the self row
    ni, nj = ase_neighbor_list("ij", atoms, cutoff)
    for c in range(n):
        expected = set(nj[ni == c].tolist()) | {c}
        got = set(d.grad_neighbors[d.grad_centers == c].tolist())
        assert got == expected, f"{name}: center {c} rows {sorted(got)} != {sorted(expected)}"


# ------------------------------------------------------------------------- FD checks
def test_position_gradients_vs_fd(fd_case):
    acsf, atoms = _acsf_for(fd_case)
    d = acsf.compute(atoms, gradients=True)
    assert_fd_close(dense_jacobian(d, len(atoms)), fd_positions(acsf, atoms), f"positions {fd_case[0]}")


def test_strain_gradients_vs_fd(fd_case):
    acsf, atoms = _acsf_for(fd_case)
    d = acsf.compute(atoms, gradients=True)
    assert_fd_close(d.strain_grad, fd_strain(acsf, atoms), f"strain {fd_case[0]}")


def test_fused_forces_and_virial_vs_fd(fd_case):
    acsf, atoms = _acsf_for(fd_case)
    w = energy_weights(atoms, acsf.n_features)

    def energy(a):
        return float(np.sum(w * acsf.compute(a)))

    forces, virial = acsf.forces_and_virial(atoms, w)
    assert forces.shape == (len(atoms), 3) and virial.shape == (3, 3)
    f_fd = fd_forces(energy, atoms, H)
    w_fd = fd_virial(energy, atoms, H)
    assert_fd_close(forces, f_fd, f"fused forces {fd_case[0]}")
    assert_fd_close(virial, w_fd, f"fused virial {fd_case[0]}")


def test_fused_equals_sparse_contraction(fd_case):
    """forces_and_virial and the stored sparse gradients describe the same Jacobian."""
    acsf, atoms = _acsf_for(fd_case)
    w = energy_weights(atoms, acsf.n_features, seed=1)
    d = acsf.compute(atoms, gradients=True)
    forces, virial = acsf.forces_and_virial(atoms, w)
    f_sparse = np.zeros((len(atoms), 3))
    np.add.at(f_sparse, d.grad_neighbors, -np.einsum("raf,rf->ra", d.grad_values, w[d.grad_centers]))
    v_sparse = -np.einsum("iabf,if->ab", d.strain_grad, w)
    np.testing.assert_allclose(forces, f_sparse, rtol=0, atol=1e-11 * np.abs(f_sparse).max())
    np.testing.assert_allclose(virial, v_sparse, rtol=0, atol=1e-11 * np.abs(v_sparse).max())


@pytest.mark.parametrize("name", ["si_tiny_cell", "si_primitive"])
def test_strain_gradients_vs_fd_symmetric_cells(name):
    """One atom in a small triclinic cell (only self-images) and the ideal diamond cell:
    no position derivative to speak of, but the strain derivative is non-trivial."""
    factory, species, cutoff = STRUCTURES[name]
    atoms = factory()
    acsf = make_acsf(species, cutoff)
    assert_fd_close(acsf.compute(atoms, gradients=True).strain_grad, fd_strain(acsf, atoms), f"strain {name}")


def test_stress_matches_ase_convention():
    """ASE stress = -W / V equals (1/V) dE/d eps by finite differences (symmetric eps)."""
    from ase.stress import full_3x3_to_voigt_6_stress

    atoms = STRUCTURES["si_triclinic"][0]()
    acsf = make_acsf(["Si"], 5.0)
    w = energy_weights(atoms, acsf.n_features, seed=2)
    _f, virial = acsf.forces_and_virial(atoms, w)
    stress = full_3x3_to_voigt_6_stress(-virial / atoms.get_volume())
    fd = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            e = np.zeros((3, 3))
            e[a, b] += H / 2
            e[b, a] += H / 2
            fd[a, b] = (
                (np.sum(w * acsf.compute(deformed(atoms, e))) - np.sum(w * acsf.compute(deformed(atoms, -e))))
                / (2 * H)
                / atoms.get_volume()
            )
    np.testing.assert_allclose(stress, full_3x3_to_voigt_6_stress(fd), rtol=0, atol=1e-6 * np.abs(fd).max())


def test_polynomial_cutoff_gradients_vs_fd():
    atoms = STRUCTURES["sic_zincblende"][0]()
    acsf = make_acsf(["C", "Si"], 5.0, cutoff_function="polynomial")
    d = acsf.compute(atoms, gradients=True)
    assert_fd_close(dense_jacobian(d, len(atoms)), fd_positions(acsf, atoms), "polynomial positions")
    assert_fd_close(d.strain_grad, fd_strain(acsf, atoms), "polynomial strain")


# ------------------------------------------------------------------------- invariances
def test_forces_sum_to_zero(fd_case):
    """Translation invariance: for every center, the gradient rows sum to zero; so do
    the forces from the fused path."""
    acsf, atoms = _acsf_for(fd_case)
    d = acsf.compute(atoms, gradients=True)
    per_center = np.zeros((len(atoms), 3, acsf.n_features))
    np.add.at(per_center, d.grad_centers, d.grad_values)
    scale = np.abs(d.grad_values).max()
    np.testing.assert_allclose(per_center, 0.0, atol=1e-12 * scale * len(atoms))
    forces, _ = acsf.forces_and_virial(atoms, energy_weights(atoms, acsf.n_features))
    assert np.abs(forces).max() > 1e-6
    np.testing.assert_allclose(forces.sum(axis=0), 0.0, atol=1e-11 * np.abs(forces).max() * len(atoms))


def test_strain_gradient_symmetric_and_virial_symmetric(fd_case):
    """Rotation invariance: an antisymmetric eps is an infinitesimal rotation, so
    strain_grad[i, a, b] == strain_grad[i, b, a] and the virial is symmetric."""
    acsf, atoms = _acsf_for(fd_case)
    d = acsf.compute(atoms, gradients=True)
    s = d.strain_grad
    np.testing.assert_allclose(s, s.transpose(0, 2, 1, 3), atol=1e-11 * np.abs(s).max())
    _f, virial = acsf.forces_and_virial(atoms, energy_weights(atoms, acsf.n_features))
    np.testing.assert_allclose(virial, virial.T, atol=1e-11 * np.abs(virial).max())


def test_nonperiodic_strain_equals_position_moment():
    """Without periodicity, d G_i / d eps_ab = sum_j r_j,a d G_i / d r_j,b exactly."""
    atoms = STRUCTURES["sioh_molecule"][0]()
    acsf = make_acsf(["H", "O", "Si"], 4.0)
    d = acsf.compute(atoms, gradients=True)
    moment = np.zeros_like(d.strain_grad)
    np.add.at(moment, d.grad_centers, np.einsum("ra,rbf->rabf", atoms.positions[d.grad_neighbors], d.grad_values))
    np.testing.assert_allclose(d.strain_grad, moment, atol=1e-11 * np.abs(moment).max())


def _rotation(seed):
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q @ np.diag(np.sign(np.diag(r)))
    return q if np.linalg.det(q) > 0 else -q


@pytest.mark.parametrize("name", ["si_triclinic", "sio_triclinic", "si_slab"])
def test_gradients_rotate_covariantly(name):
    factory, species, cutoff = STRUCTURES[name]
    atoms = factory()
    acsf = make_acsf(species, cutoff)
    R = _rotation(5)
    turned = atoms.copy()
    turned.positions = atoms.positions @ R.T
    turned.cell = atoms.cell[:] @ R.T
    d0 = acsf.compute(atoms, gradients=True)
    d1 = acsf.compute(turned, gradients=True)
    np.testing.assert_array_equal(d1.grad_centers, d0.grad_centers)
    np.testing.assert_array_equal(d1.grad_neighbors, d0.grad_neighbors)
    g = np.abs(d0.grad_values).max()
    np.testing.assert_allclose(d1.grad_values, np.einsum("ab,rbf->raf", R, d0.grad_values), atol=1e-11 * g)
    s = np.abs(d0.strain_grad).max()
    np.testing.assert_allclose(d1.strain_grad, np.einsum("ac,icdf,bd->iabf", R, d0.strain_grad, R), atol=1e-11 * s)


def test_gradients_permutation_equivariant():
    atoms = STRUCTURES["sio_triclinic"][0]()
    acsf = make_acsf(["H", "O", "Si"], 4.5)
    perm = np.random.default_rng(6).permutation(len(atoms))
    inv = np.argsort(perm)
    J0 = dense_jacobian(acsf.compute(atoms, gradients=True), len(atoms))
    J1 = dense_jacobian(acsf.compute(atoms[perm], gradients=True), len(atoms))
    np.testing.assert_allclose(J1, J0[perm][:, perm], atol=1e-12 * np.abs(J0).max())
    np.testing.assert_allclose(J1[inv][:, inv], J0, atol=1e-12 * np.abs(J0).max())


# ------------------------------------------------------------------------- batching
def test_batch_gradients_equal_single():
    names = ["si_primitive", "sic_zincblende", "si_wire", "si_tiny_cell", "si_slab"]
    structs = [STRUCTURES[n][0]() for n in names]
    acsf = make_acsf(["C", "Si"], 5.0)
    b = acsf.compute(structs, gradients=True)
    off = np.cumsum([0] + [len(a) for a in structs])
    np.testing.assert_array_equal(b.offsets, off)
    singles = [acsf.compute(a, gradients=True) for a in structs]
    sv = np.concatenate([s.values for s in singles])
    np.testing.assert_allclose(b.values, sv, rtol=0, atol=1e-13 * np.abs(sv).max())
    np.testing.assert_array_equal(b.grad_centers, np.concatenate([s.grad_centers + o for s, o in zip(singles, off)]))
    np.testing.assert_array_equal(
        b.grad_neighbors, np.concatenate([s.grad_neighbors + o for s, o in zip(singles, off)])
    )
    np.testing.assert_allclose(b.grad_values, np.concatenate([s.grad_values for s in singles]), rtol=0, atol=1e-14)
    np.testing.assert_allclose(b.strain_grad, np.concatenate([s.strain_grad for s in singles]), rtol=0, atol=1e-14)

    w = np.random.default_rng(3).normal(size=(off[-1], acsf.n_features))
    forces, virials = acsf.forces_and_virial(structs, w)
    assert forces.shape == (off[-1], 3) and virials.shape == (len(structs), 3, 3)
    for k, a in enumerate(structs):
        f1, v1 = acsf.forces_and_virial(a, w[off[k] : off[k + 1]])
        np.testing.assert_allclose(forces[off[k] : off[k + 1]], f1, rtol=0, atol=1e-13 * max(1, np.abs(f1).max()))
        np.testing.assert_allclose(virials[k], v1, rtol=0, atol=1e-13 * max(1, np.abs(v1).max()))


def test_stacked_right_hand_sides_equal_one_call_each():
    """dE/dG of shape (K, N, F) (committee members) gives, per member, exactly the forces
    and virials of a separate call: one neighbor list and geometry serve all K."""
    from ase.build import bulk

    acsf = make_acsf(["Si"], 5.0)
    structures = [bulk("Si", "diamond", a=5.43, cubic=True), bulk("Si", "diamond", a=5.6)]
    structures[0].rattle(0.05, seed=11)
    n = sum(len(a) for a in structures)
    W = np.random.default_rng(5).normal(size=(3, n, acsf.n_features))
    forces, virials = acsf.forces_and_virial(structures, W)
    assert forces.shape == (3, n, 3) and virials.shape == (3, 2, 3, 3)
    for k in range(3):
        f, v = acsf.forces_and_virial(structures, W[k])
        np.testing.assert_array_equal(forces[k], f)
        np.testing.assert_array_equal(virials[k], v)
    f1, v1 = acsf.forces_and_virial(structures[0], W[:, :8])
    assert f1.shape == (3, 8, 3) and v1.shape == (3, 3, 3)
    np.testing.assert_array_equal(v1[2], acsf.forces_and_virial(structures[0], W[2, :8])[1])
    with pytest.raises(ValueError, match="dE_dG"):
        acsf.forces_and_virial(structures, W[:, :-1])


def test_forces_after_values_follow_any_change_of_the_structure():
    """The values and forces calls keep their thread's last neighbor list and reuse it for
    exactly the same positions, cell, pbc and cutoff (forces right after values): a moved
    atom, a changed cell or pbc, or another cutoff must get forces from its own list,
    bit for bit those of a call that follows an unrelated structure."""
    from ase.build import bulk

    a = bulk("Si", "diamond", a=5.43, cubic=True).repeat(2)
    a.rattle(0.05, seed=3)
    other = bulk("Si", "diamond", a=5.6, cubic=True)
    moved = a.copy()
    moved.positions[5] += [0.4, -0.3, 0.2]
    tiny = a.copy()
    tiny.positions[7, 0] += 1e-12
    strained = a.copy()
    strained.set_cell(a.cell[:] * 1.01, scale_atoms=False)
    open_z = a.copy()
    open_z.pbc = [True, True, False]
    W = np.random.default_rng(2).normal(size=(len(a), make_acsf(["Si"], 5.0).n_features))
    for cutoff in (5.0, 4.5):
        acsf = make_acsf(["Si"], cutoff)
        for b in (a, moved, tiny, strained, open_z):
            acsf.compute(other)  # another structure: b's forces come from b's own list
            want = acsf.forces_and_virial(b, W)
            make_acsf(["Si"], 5.0).compute(a)  # the list of a at cutoff 5 is now this thread's
            got = acsf.forces_and_virial(b, W)
            np.testing.assert_array_equal(got[0], want[0])
            np.testing.assert_array_equal(got[1], want[1])
