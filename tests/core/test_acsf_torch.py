"""The torch bridge alip.core.descriptors_torch: gradcheck/gradgradcheck in float64 of the
autograd function of positions and cell; sparse_forces / sparse_virial against the
fused C++ path and differentiable in dE_dG (what create_graph force training needs).
Kept tiny (2-3 atoms, few functions) so gradcheck runs in seconds."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")  # torch is an optional extra of alip

from conftest import STRUCTURES, make_acsf  # noqa: E402

TINY_G2 = [(0.5, 0.0), (0.3, 2.5)]
TINY_G4 = [(0.02, 2.0, -1.0), (0.01, 1.0, 1.0)]
TINY_G5 = [(0.01, 1.5, -1.0)]


def tiny(name="si_triclinic", cutoff=None):
    factory, species, default_cutoff = STRUCTURES[name]
    atoms = factory()
    acsf = make_acsf(species, cutoff or default_cutoff, g2=TINY_G2, g4=TINY_G4, g5=TINY_G5)
    return acsf, atoms


def as_tensors(atoms, requires_grad=True):
    pos = torch.tensor(atoms.positions, dtype=torch.float64, requires_grad=requires_grad)
    cell = torch.tensor(np.asarray(atoms.cell[:]), dtype=torch.float64, requires_grad=requires_grad)
    return pos, cell, atoms.get_atomic_numbers(), atoms.get_pbc()


def test_values_match_compute():
    from alip.core.descriptors_torch import acsf_torch

    acsf, atoms = tiny()
    pos, cell, z, pbc = as_tensors(atoms)
    G = acsf_torch(acsf, pos, cell, z, pbc)
    assert G.dtype == torch.float64 and tuple(G.shape) == (len(atoms), acsf.n_features)
    ref = acsf.compute(atoms)
    np.testing.assert_allclose(G.detach().numpy(), ref, rtol=0, atol=1e-13 * np.abs(ref).max())


@pytest.mark.parametrize("name", ["si_triclinic", "sic_zincblende", "sioh_molecule"])
def test_gradcheck_positions_and_cell(name):
    from alip.core.descriptors_torch import acsf_torch

    acsf, atoms = tiny(name, cutoff=3.5)
    pos, cell, z, pbc = as_tensors(atoms)
    if not atoms.pbc.any():
        cell = cell.detach()  # the cell of a molecule is not an input of the function

        def f(p):
            return acsf_torch(acsf, p, cell, z, pbc)

        assert torch.autograd.gradcheck(f, (pos,), eps=1e-6, atol=1e-7, rtol=1e-5)
    else:

        def f(p, c):
            return acsf_torch(acsf, p, c, z, pbc)

        assert torch.autograd.gradcheck(f, (pos, cell), eps=1e-6, atol=1e-7, rtol=1e-5)


def test_gradgradcheck_positions_and_cell():
    from alip.core.descriptors_torch import acsf_torch

    acsf, atoms = tiny("sic_zincblende", cutoff=3.5)
    pos, cell, z, pbc = as_tensors(atoms)

    def f(p, c):
        return acsf_torch(acsf, p, c, z, pbc)

    assert torch.autograd.gradgradcheck(f, (pos, cell), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_cell_gradient_is_strain_gradient():
    """With positions in fractional coordinates held fixed, d/d eps of G(r(I+eps), h(I+eps))
    = r^T dG/dr + h^T dG/dh; this must equal the C++ strain_grad (links torch's cell
    derivative to the contract's strain convention)."""
    from alip.core.descriptors_torch import acsf_torch

    acsf, atoms = tiny("sic_zincblende")
    pos, cell, z, pbc = as_tensors(atoms)
    w = torch.tensor(np.random.default_rng(0).normal(size=(len(atoms), acsf.n_features)))
    E = (acsf_torch(acsf, pos, cell, z, pbc) * w).sum()
    gp, gc = torch.autograd.grad(E, (pos, cell))
    dE_deps = pos.detach().T @ gp + cell.detach().T @ gc
    _f, virial = acsf.forces_and_virial(atoms, w.numpy())
    np.testing.assert_allclose(-dE_deps.numpy(), virial, rtol=0, atol=1e-10 * np.abs(virial).max())


def test_sparse_forces_and_virial_match_fused_path():
    from alip.core.descriptors_torch import sparse_forces, sparse_virial

    names = ["si_triclinic", "sic_zincblende", "si_wire"]
    structs = [STRUCTURES[n][0]() for n in names]
    acsf = make_acsf(["C", "Si"], 4.5, g2=TINY_G2, g4=TINY_G4, g5=TINY_G5)
    d = acsf.compute(structs, gradients=True)
    n = d.values.shape[0]
    w = np.random.default_rng(1).normal(size=(n, acsf.n_features))
    forces, virials = acsf.forces_and_virial(structs, w)
    tw = torch.tensor(w)
    F = sparse_forces(
        tw, torch.from_numpy(d.grad_values), torch.from_numpy(d.grad_centers), torch.from_numpy(d.grad_neighbors), n
    )
    structure_index = torch.from_numpy(np.repeat(np.arange(len(structs)), np.diff(d.offsets)))
    W = sparse_virial(tw, torch.from_numpy(d.strain_grad), structure_index, len(structs))
    assert tuple(F.shape) == (n, 3) and tuple(W.shape) == (len(structs), 3, 3)
    np.testing.assert_allclose(F.numpy(), forces, rtol=0, atol=1e-12 * np.abs(forces).max())
    np.testing.assert_allclose(W.numpy(), virials, rtol=0, atol=1e-12 * np.abs(virials).max())


def test_sparse_forces_gradcheck_in_dE_dG():
    from alip.core.descriptors_torch import sparse_forces, sparse_virial

    acsf, atoms = tiny("sic_zincblende")
    d = acsf.compute(atoms, gradients=True)
    gv, gc, gn = (torch.from_numpy(x) for x in (d.grad_values, d.grad_centers, d.grad_neighbors))
    sg = torch.from_numpy(d.strain_grad)
    idx = torch.zeros(len(atoms), dtype=torch.int64)
    w = torch.randn(len(atoms), acsf.n_features, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: sparse_forces(x, gv, gc, gn, len(atoms)), (w,))
    assert torch.autograd.gradcheck(lambda x: sparse_virial(x, sg, idx, 1), (w,))


def test_force_training_paths_agree():
    """A small MLP energy model: forces by double backprop through acsf_torch and by
    sparse_forces(dE/dG) agree, and so do the parameter gradients of a force loss
    (create_graph=True), which is what force training needs."""
    from alip.core.descriptors_torch import acsf_torch, sparse_forces

    acsf, atoms = tiny("sic_zincblende")
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(acsf.n_features, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1, bias=False)
    ).double()  # an output bias has no force
    target = torch.randn(len(atoms), 3, dtype=torch.float64)

    # path 1: autograd through the bridge
    pos, cell, z, pbc = as_tensors(atoms)
    G = acsf_torch(acsf, pos, cell, z, pbc)
    E = model(G).sum()
    F1 = -torch.autograd.grad(E, pos, create_graph=True)[0]
    loss1 = ((F1 - target) ** 2).sum()
    g1 = torch.autograd.grad(loss1, list(model.parameters()))

    # path 2: stored sparse gradients
    d = acsf.compute(atoms, gradients=True)
    G2 = torch.from_numpy(d.values).requires_grad_(True)
    E2 = model(G2).sum()
    dE_dG = torch.autograd.grad(E2, G2, create_graph=True)[0]
    F2 = sparse_forces(
        dE_dG,
        torch.from_numpy(d.grad_values),
        torch.from_numpy(d.grad_centers),
        torch.from_numpy(d.grad_neighbors),
        len(atoms),
    )
    loss2 = ((F2 - target) ** 2).sum()
    g2 = torch.autograd.grad(loss2, list(model.parameters()))

    np.testing.assert_allclose(F1.detach().numpy(), F2.detach().numpy(), rtol=0, atol=1e-12)
    for a, b in zip(g1, g2):
        assert torch.count_nonzero(a) > 0
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12)
