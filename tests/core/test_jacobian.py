"""Forces from the stored, padded descriptor Jacobian (alip.core.jacobian): the compiled
contraction (shared_padded_forces, reading a data set's rows in place, with or without the
strain rows' virials) against the pure-PyTorch reference (padded_forces on the gathered rows,
the strain contraction of training) and the core's fused VJP, its backward against autograd's
of the reference and gradcheck, and bad input refused with a reason before anything is computed."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")  # torch is an optional extra of alip

from conftest import STRUCTURES, make_acsf  # noqa: E402

from alip import _core  # noqa: E402
from alip.core.jacobian import padded_forces, padded_gradients, shared_padded_forces  # noqa: E402
from alip.models.training import committee_virials  # noqa: E402

NAMES = ["si_triclinic", "sic_zincblende", "sioh_molecule", "si_slab", "si_conventional"]


def _data_set(dtype: torch.dtype, strain: bool = False):
    """Six structures of different sizes, species and boundaries, featurized together:
    (acsf, atoms list, offsets, padded rows, targets[, strain rows]). The last, 144 atoms,
    runs the contraction on several threads (batches of >= 128 atoms)."""
    big = STRUCTURES["si_conventional"][0]() * (3, 3, 2)
    big.rattle(0.05, seed=1)
    structures = [STRUCTURES[name][0]() for name in NAMES] + [big]
    acsf = make_acsf(["Si", "C", "O", "H"], 4.0)
    d = acsf.compute(structures, gradients=True)
    rows, targets = padded_gradients(
        torch.as_tensor(d.grad_values, dtype=dtype),
        torch.as_tensor(d.grad_centers),
        torch.as_tensor(d.grad_neighbors),
        int(d.offsets[-1]),
    )
    if strain:
        return acsf, structures, np.asarray(d.offsets), rows, targets, torch.as_tensor(d.strain_grad, dtype=dtype)
    return acsf, structures, np.asarray(d.offsets), rows, targets


def _batch(offsets: np.ndarray, idx: list[int]) -> torch.Tensor:
    """The set's atom index of every atom of the structures ``idx``, in that order."""
    return torch.from_numpy(np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in idx]))


def _gathered(rows: torch.Tensor, targets: torch.Tensor, atoms: torch.Tensor):
    """The reference's input: the batch's rows gathered, targets in batch numbering."""
    n, N = len(atoms), len(rows)
    t = targets[atoms]
    local = torch.where(t == N, n, t - (atoms - torch.arange(n))[:, None])
    return rows[atoms], local


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("K", [1, 5, 11])  # 11: two blocks of right-hand sides, the second partial
def test_matches_the_pytorch_reference_and_its_backward(dtype, K):
    _, _, offsets, rows, targets = _data_set(dtype)
    gen = torch.Generator().manual_seed(K)
    tol = 1e-12 if dtype == torch.float64 else 2e-5
    for idx in ([0, 1, 2, 3, 4, 5], [3, 0], [4], [5, 2, 1], [5]):  # whole set, shuffled subsets
        atoms = _batch(offsets, idx)
        g = torch.randn(K, len(atoms), rows.shape[-1], dtype=dtype, generator=gen, requires_grad=True)
        w = torch.randn(K, len(atoms), 3, dtype=dtype, generator=gen)
        F = shared_padded_forces(g, rows, targets, atoms)
        (grad,) = torch.autograd.grad((F * w).sum(), g)
        F_ref = padded_forces(g, *_gathered(rows, targets, atoms))
        (grad_ref,) = torch.autograd.grad((F_ref * w).sum(), g)
        assert F.dtype == dtype and F.shape == (K, len(atoms), 3)
        scale = F_ref.abs().max().item()
        assert (F - F_ref).abs().max().item() <= tol * scale, idx
        assert (grad - grad_ref).abs().max().item() <= tol * grad_ref.abs().max().item(), idx


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("K", [1, 5, 11])
def test_virials_in_the_same_pass_match_the_strain_contraction(dtype, K):
    """With the strain rows: the same forces, and virials per structure equal to training's
    PyTorch strain contraction (committee_virials) on the gathered strain rows; the backward
    of a loss on both equals autograd's of the references."""
    _, _, offsets, rows, targets, strain = _data_set(dtype, strain=True)
    gen = torch.Generator().manual_seed(10 + K)
    tol = 1e-12 if dtype == torch.float64 else 2e-5
    for idx in ([0, 1, 2, 3, 4, 5], [3, 0], [5, 2, 1], [4]):
        atoms = _batch(offsets, idx)
        structure = torch.from_numpy(np.repeat(np.arange(len(idx)), np.diff(offsets)[idx]))
        g = torch.randn(K, len(atoms), rows.shape[-1], dtype=dtype, generator=gen, requires_grad=True)
        w = torch.randn(K, len(atoms), 3, dtype=dtype, generator=gen)
        wv = torch.randn(K, len(idx), 3, 3, dtype=dtype, generator=gen)
        F, W = shared_padded_forces(g, rows, targets, atoms, strain, structure, len(idx))
        (grad,) = torch.autograd.grad((F * w).sum() + (W * wv).sum(), g)
        F_ref = padded_forces(g, *_gathered(rows, targets, atoms))
        W_ref = committee_virials(g, strain[atoms], structure, len(idx))
        (grad_ref,) = torch.autograd.grad((F_ref * w).sum() + (W_ref * wv).sum(), g)
        assert W.dtype == dtype and W.shape == (K, len(idx), 3, 3)
        assert (F - F_ref).abs().max().item() <= tol * F_ref.abs().max().item(), idx
        assert (W - W_ref).abs().max().item() <= tol * W_ref.abs().max().item(), idx
        assert (grad - grad_ref).abs().max().item() <= tol * grad_ref.abs().max().item(), idx
        _, W = shared_padded_forces(g, rows, targets, atoms, strain, structure, len(idx))
        (grad_w,) = torch.autograd.grad((W * wv).sum(), g)  # a loss on the virials alone
        W_ref = committee_virials(g, strain[atoms], structure, len(idx))
        (grad_w_ref,) = torch.autograd.grad((W_ref * wv).sum(), g)
        assert (grad_w - grad_w_ref).abs().max().item() <= tol * grad_w_ref.abs().max().item(), idx


def test_equals_the_fused_vjp_of_the_core():
    """Independent of the padded layout: the core's fused forces from positions and dE/dG."""
    acsf, structures, offsets, rows, targets = _data_set(torch.float64)
    K = 3
    g = np.random.default_rng(0).normal(size=(K, int(offsets[-1]), acsf.n_features))
    F = shared_padded_forces(torch.from_numpy(g), rows, targets, torch.arange(int(offsets[-1])))
    fused, _ = acsf.forces_and_virial(structures, g)
    np.testing.assert_allclose(F.numpy(), fused, rtol=0, atol=1e-11 * np.abs(fused).max())


def test_gradcheck():
    _, _, offsets, rows, targets, strain = _data_set(torch.float64, strain=True)
    atoms = _batch(offsets, [2, 0])
    g = torch.randn(2, len(atoms), rows.shape[-1], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: shared_padded_forces(x, rows, targets, atoms), (g,))
    structure = torch.from_numpy(np.repeat([0, 1], np.diff(offsets)[[2, 0]]))
    assert torch.autograd.gradcheck(lambda x: shared_padded_forces(x, rows, targets, atoms, strain, structure, 2), (g,))


def test_bad_input_is_refused_with_a_reason():
    _, _, offsets, rows, targets = _data_set(torch.float32)
    atoms = _batch(offsets, [1, 3])
    g = torch.zeros(2, len(atoms), rows.shape[-1])
    with pytest.raises(ValueError, match="dE_dG is torch.float64 but the Jacobian rows are torch.float32"):
        shared_padded_forces(g.double(), rows, targets, atoms)
    with pytest.raises(ValueError, match="outside the batch"):  # half a structure
        shared_padded_forces(g[:, :-1], rows, targets, atoms[:-1])
    with pytest.raises(ValueError, match="outside"):
        shared_padded_forces(g, rows, targets, atoms + 10**6)
    with pytest.raises(ValueError, match="dE_dG must have shape"):
        shared_padded_forces(g[:, :, :-1], rows, targets, atoms)
    strided = rows.transpose(0, 1).contiguous().transpose(0, 1)  # same shape and values, other layout
    with pytest.raises(ValueError, match="rows must be C-contiguous"):  # the Jacobian is never copied
        shared_padded_forces(g, strided, targets, atoms)
    with pytest.raises(ValueError, match="targets must be int64"):
        shared_padded_forces(g, rows, targets.int(), atoms)
    strain = torch.zeros(len(rows), 3, 3, rows.shape[-1])
    structure = torch.zeros(len(atoms), dtype=torch.int64)
    with pytest.raises(ValueError, match="strain needs structure"):
        shared_padded_forces(g, rows, targets, atoms, strain)
    with pytest.raises(ValueError, match="strain is torch.float64"):
        shared_padded_forces(g, rows, targets, atoms, strain.double(), structure, 1)
    with pytest.raises(ValueError, match="in structure 1, outside"):
        shared_padded_forces(g, rows, targets, atoms, strain, structure + 1, 1)
    with pytest.raises(ValueError, match="strain must have shape"):
        shared_padded_forces(g, rows, targets, atoms, strain[:-1], structure, 1)
    with pytest.raises(ValueError, match="strain must be a numpy array"):  # never a converted temporary
        _core.jacobian_forces(
            rows.numpy(), targets.numpy(), atoms.numpy(), g.numpy(), strain.tolist(), structure.numpy(), 1
        )
    bad = targets.clone()
    c = int(atoms[0])
    bad[c, 0] = len(rows)  # padding before a row
    with pytest.raises(ValueError, match="follows a padding row"):
        shared_padded_forces(g, rows, bad, atoms)
