"""``alip.core.device`` on the CPU (split from the former test_cuda.py): the build flag agrees,
a build without CUDA fails cleanly from every GPU entry point, CPU tensors go to the CPU
core, and the autograd wrappers are exact (gradcheck, adjoint identities)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk
from conftest import STRUCTURES, make_acsf
from cuda_cases import (
    CASE_IDS,
    CASES,
    close,
    random_inputs,
    reference,
)

import alip
from alip.core import device as dev
from alip.core.batch import Batch


def test_build_info_reports_cuda_consistently():
    info = alip.build_info()
    assert info["cuda"] == dev.cuda_compiled() == alip._core.cuda.compiled()
    if not info["cuda"]:
        assert alip._core.cuda.describe() == "built without CUDA"
        assert alip._core.cuda.device_count() == 0
        assert not dev.cuda_available()


@pytest.mark.skipif(dev.cuda_available(), reason="a GPU is available: the GPU tests below cover it")
def test_gpu_entry_points_fail_cleanly_without_gpu():
    """Without CUDA in the build: the stub's "alip was built without CUDA" from every entry
    point. With CUDA but no GPU or driver: a RuntimeError naming that, never a crash."""
    core = alip._core
    acsf = make_acsf(["Si"], 5.0)
    si = bulk("Si", "diamond", a=5.431)
    via_device = [
        lambda: dev.compute(acsf, si, device="cuda"),
        lambda: dev.forces_and_virial(acsf, si, np.zeros((2, acsf.n_features)), device="cuda"),
        lambda: dev.jvp(acsf, si, displacement=torch.zeros(2, 3), device="cuda"),
    ]
    if not dev.cuda_compiled():
        direct = [
            lambda: core.cuda.build_neighbor_list(0, 0, 0, 0, 0, 1, 1, 5.0, 1, 0),
            lambda: core.cuda.AcsfKernels(acsf._core, 0),
        ]
        for call in direct + via_device:
            with pytest.raises(RuntimeError, match="alip was built without CUDA"):
                call()
        return
    with pytest.raises(RuntimeError, match="NVIDIA|CUDA device"):
        core.cuda.AcsfKernels(acsf._core, 0)
    with pytest.raises((RuntimeError, ValueError), match="NVIDIA|CUDA device|GPU memory"):
        core.cuda.build_neighbor_list(12345678, 0, 0, 0, 0, 1, 1, 5.0, 1, 0)
    for call in via_device:
        with pytest.raises(RuntimeError, match="no CUDA device|sees no GPU"):
            call()


# =========================================================================== dispatch (CPU)
def test_select_device():
    assert dev.select_device(torch.zeros(3)).type == "cpu"
    assert dev.select_device(np.zeros(3), None).type == "cpu"
    assert dev.select_device(torch.zeros(3), device="cpu").type == "cpu"
    with pytest.raises(ValueError, match="device must be"):
        dev.select_device(device="meta")


@pytest.mark.parametrize("name,atoms_list,acsf", CASES[:4] + CASES[-3:], ids=CASE_IDS[:4] + CASE_IDS[-3:])
def test_cpu_tensors_go_to_cpu_core(name, atoms_list, acsf):
    batch = Batch.from_atoms(atoms_list).to("cpu", acsf.species)
    G = dev.compute(acsf, batch)
    assert G.device.type == "cpu" and G.dtype == torch.float64
    assert np.array_equal(G.numpy(), acsf.compute(atoms_list))
    w, u, U = random_inputs(acsf, atoms_list)
    F, W = dev.forces_and_virial(acsf, batch, torch.from_numpy(w))
    F_ref, W_ref = acsf.forces_and_virial(atoms_list, w)
    # not bit-equal: with OpenMP, atoms of large cells are summed in a run-dependent order
    close(F.numpy(), F_ref, 1e-12)
    close(W.numpy(), W_ref.reshape(len(atoms_list), 3, 3), 1e-12)
    J = dev.jvp(acsf, batch, torch.from_numpy(u), torch.from_numpy(U))
    close(J.numpy(), reference(acsf, atoms_list, w, u, U)[3])
    # ASE input dispatches the same way
    assert np.array_equal(dev.compute(acsf, atoms_list).numpy(), acsf.compute(atoms_list))
    assert dev.compute(acsf, batch, dtype=torch.float32).dtype == torch.float32


def test_prepared_batch_reuses_one_list_cpu():
    _, atoms_list, acsf = CASES[CASE_IDS.index("batch_three_species")]
    w, u, U = (torch.from_numpy(x) for x in random_inputs(acsf, atoms_list, seed=8))
    p = dev.prepare(acsf, atoms_list)
    assert not p.on_gpu and p.device.type == "cpu"
    assert np.array_equal(p.values().numpy(), acsf.compute(atoms_list))
    F, W = p.forces_and_virial(w)
    F1, W1 = dev.forces_and_virial(acsf, atoms_list, w)
    close(F.numpy(), F1.numpy(), 1e-12)
    close(W.numpy(), W1.numpy(), 1e-12)
    close(p.jvp(u, U).numpy(), dev.jvp(acsf, atoms_list, u, U).numpy(), 1e-12)
    Fk, Wk = p.forces_and_virial(torch.stack([w, 2 * w]))  # committee members
    close(Fk[1].numpy(), 2 * F.numpy(), 1e-12)


def test_forces_adjoint_of_jvp_cpu():
    """<J u + J_eps U, w> = <u, -F(w)> + <U, -W(w)>: fused VJP and JVP are adjoint."""
    factory, species, cutoff = STRUCTURES["sio_triclinic"]
    atoms_list = [factory(), STRUCTURES["sioh_molecule"][0]()]
    acsf = make_acsf(species, cutoff)
    batch = Batch.from_atoms(atoms_list).to("cpu", acsf.species)
    w, u, U = (torch.from_numpy(x) for x in random_inputs(acsf, atoms_list, seed=3))
    F, W = dev.forces_and_virial(acsf, batch, w)
    J = dev.jvp(acsf, batch, u, U)
    lhs = float((J * w).sum())
    rhs = float(-(u * F).sum() - (U * W).sum())
    assert abs(lhs - rhs) <= 1e-10 * (abs(lhs) + 1)


def test_forces_differentiable_in_dE_dG_cpu():
    """Training on forces: gradcheck/gradgradcheck of (F, W) in dE/dG (committee dims too)."""
    factory, species, cutoff = STRUCTURES["sic_zincblende"]
    atoms = factory()
    acsf = make_acsf(species, cutoff, g2=[(0.5, 1.0)], g4=[(0.01, 2.0, -1.0)], g5=[(0.02, 1.0, 1.0)])
    batch = Batch.from_atoms(atoms).to("cpu", acsf.species)
    w = torch.randn(2, len(atoms), acsf.n_features, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda x: dev.forces_and_virial(acsf, batch, x), (w,))
    torch.autograd.gradgradcheck(lambda x: dev.forces_and_virial(acsf, batch, x), (w,))
    u = torch.randn(len(atoms), 3, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda x: dev.jvp(acsf, batch, displacement=x), (u,))


def test_acsf_values_autograd_cpu():
    """First derivatives in positions and cells (gradcheck), and force training through
    autograd.grad(E, positions, create_graph=True) reaching the weights."""
    factory, species, cutoff = STRUCTURES["si_triclinic"]
    atoms = factory()
    acsf = make_acsf(species, cutoff)
    batch = Batch.from_atoms(atoms).to("cpu", acsf.species)
    pos = batch.positions.clone().requires_grad_(True)
    cell = batch.cells.clone().requires_grad_(True)
    torch.autograd.gradcheck(lambda p, c: dev.acsf_values(acsf, p, batch, cells=c), (pos, cell), atol=1e-7)

    theta = torch.randn(acsf.n_features, dtype=torch.float64, requires_grad=True)
    G = dev.acsf_values(acsf, pos, batch)
    E = (torch.tanh(G) @ theta).sum()
    (F,) = torch.autograd.grad(-E, pos, create_graph=True)
    loss = (F**2).sum()
    (g_theta,) = torch.autograd.grad(loss, theta)
    # reference: F = -J^T dE/dG with dE/dG = (1 - tanh^2) theta, exact in theta
    Gd = torch.from_numpy(acsf.compute(atoms))

    def loss_of(th):
        wt = (1 - torch.tanh(Gd) ** 2) * th
        Fr, _ = dev.forces_and_virial(acsf, batch, wt)
        return (Fr**2).sum()

    (g_ref,) = torch.autograd.grad(loss_of(theta), theta)
    close(g_theta.detach().numpy(), g_ref.numpy())
    close(
        F.detach().numpy(), acsf.forces_and_virial(atoms, ((1 - np.tanh(Gd.numpy()) ** 2) * theta.detach().numpy()))[0]
    )
